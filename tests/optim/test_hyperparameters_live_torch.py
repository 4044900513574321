"""Hyperparameters as arrays against live torch, for every optimizer: random values given to
fnlearn as 0-d and one-element arrays and to torch as tensors of the same shape (where torch's
step takes that shape; else 0-d), parameters compared after every step; and every refusal
checked against torch's own: the same exception class for a string, None, a two-element
array, ``betas=0.9``, and a negative 0-d lr."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import optim
from tests.optim.hyperparameter_cases import CASES, IDS, draw

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

STEPS = 5
NO_FOREACH = {"adafactor", "muon"}  # torch's Adafactor and Muon take no foreach argument


@pytest.fixture(autouse=True)
def _torch_float64():
    """torch keeps some scalar state (NAdam's mu_product, ASGD's eta and mu) in its default
    dtype: float64 here, as a float64 comparison needs."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _torch_opt(case, param, values):
    kwargs = dict(values) if case.name in NO_FOREACH else {**values, "foreach": False}
    return getattr(torch.optim, case.torch)([param], **kwargs)


def _shapes(case, rng):
    """Per scalar hyperparameter: () or (1,) (one-element only where torch's step takes it)."""
    return {k: (1,) if k in case.one_element and rng.random() < 0.5 else ()
            for k in case.scalars}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_array_hyperparameters_match_torch(case, seed):
    rng = np.random.default_rng(seed)
    values = draw(case, rng)
    shapes = _shapes(case, rng)
    ours = {k: (tuple(jnp.asarray(x) for x in v) if k in case.pairs
                else jnp.asarray(v).reshape(shapes[k])) for k, v in values.items()}
    theirs = {k: (tuple(torch.tensor(x, dtype=torch.float64) for x in v)
                  if k == "betas" else v if k in case.pairs
                  else torch.tensor(v, dtype=torch.float64).reshape(shapes[k]))
              for k, v in values.items()}
    p0 = rng.standard_normal((3, 2))
    grads = rng.standard_normal((STEPS, 3, 2)) * np.exp(rng.uniform(-2, 2, (STEPS, 1, 1)))
    param = torch.tensor(p0, requires_grad=True)
    topt = _torch_opt(case, param, theirs)
    opt = getattr(optim, case.name)(**ours)
    params = jnp.asarray(p0)
    state = opt.init(params)
    for g in grads:
        param.grad = torch.tensor(g)
        topt.step()
        updates, state = opt.update(jnp.asarray(g), state, params)
        params = optim.apply_updates(params, updates)
        np.testing.assert_allclose(params, param.detach().numpy(), rtol=1e-10, atol=1e-13)


def _raises(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the class is what is compared
        return type(e)
    return None


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_refusals_are_torchs(case):
    factory = getattr(optim, case.name)
    bad = {"string": ("0.001", "0.001"), "None": (None, None),
           "two elements": (jnp.array([1e-3, 1e-3]), torch.tensor([1e-3, 1e-3])),
           "negative 0-d": (jnp.array(-1e-3), torch.tensor(-1e-3))}
    for what, (ours, theirs) in bad.items():
        expected = _raises(lambda t=theirs: _torch_opt(
            case, torch.zeros(3, 2, requires_grad=True), {"lr": t}))
        assert expected is not None, f"torch accepts lr={what}"
        with pytest.raises(expected):
            factory(lr=ours)
    if "betas" in case.pairs:
        expected = _raises(lambda: _torch_opt(case, torch.zeros(3, 2, requires_grad=True),
                                              {"betas": 0.9}))
        with pytest.raises(expected):
            factory(betas=0.9)
