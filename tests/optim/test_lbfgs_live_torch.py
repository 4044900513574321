"""lbfgs against a live torch.optim.LBFGS (``pytest -m torch``): random regularized
least-squares problems and configurations, float64: parameters, returned losses and
torch's evaluation counters after every step."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import optim

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


@pytest.mark.parametrize("seed", range(6))
def test_random_problem_matches_torch(seed):
    rng = np.random.default_rng(seed)
    m, n = (int(v) for v in rng.integers(3, 9, 2))
    a, y = rng.standard_normal((m, n)), rng.standard_normal(m)
    lam = float(rng.uniform(0.01, 1.0))
    w0 = rng.standard_normal(n) * 0.5
    kw = dict(lr=float(rng.choice([1.0, 0.5, 0.1])), max_iter=int(rng.integers(1, 25)),
              history_size=int(rng.integers(1, 10)),
              line_search_fn=None if rng.random() < 0.5 else "strong_wolfe")

    def loss(w, xp):
        return ((xp.asarray(a) @ w - xp.asarray(y)) ** 2).sum() + lam * (w ** 4).sum()

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tw = torch.tensor(w0, requires_grad=True)
        topt = torch.optim.LBFGS([tw], **kw)

        def closure():
            topt.zero_grad()
            value = loss(tw, torch)
            value.backward()
            return value

        opt = optim.lbfgs(**kw)
        params = {"w": jnp.asarray(w0)}
        state = opt.init(params)
        for _ in range(4):
            expected = float(topt.step(closure).detach())
            value, params, state = opt.step(lambda p: loss(p["w"], jnp), params, state)
            ref = tw.detach().numpy()
            np.testing.assert_allclose(np.asarray(params["w"]), ref, rtol=1e-10,
                                       atol=1e-10 * np.max(np.abs(ref)), err_msg=str(kw))
            np.testing.assert_allclose(float(value), expected, rtol=1e-10)
            torch_state = topt.state[tw]
            assert (state.func_evals, state.n_iter) == (torch_state["func_evals"],
                                                        torch_state["n_iter"]), kw
    finally:
        torch.set_default_dtype(old)


def test_bad_lr_is_torchs_error():
    with pytest.raises(ValueError) as theirs:
        torch.optim.LBFGS([torch.zeros(2, requires_grad=True)], lr=-0.5)
    with pytest.raises(ValueError) as ours:
        optim.lbfgs(lr=-0.5)
    assert str(ours.value) == str(theirs.value)
