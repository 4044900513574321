"""Complex parameters against live torch (``pytest -m torch``): every optimizer's trajectory
and state (each torch state key, complex buffers compared as ``view_as_real``), and a complex
model trained by ``make_train_step`` against torch's autograd loop. complex128 rtol 1e-10 (torch's
default dtype set to float64, so its scalar state is float64 too), complex64 rtol 1e-5."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import optim, train
from tests.optim.test_complex import CONFIGS, IDS, REAL, complex_problem, view_as_real

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

TOL = {"complex128": 1e-10, "complex64": 1e-5}
TORCH_NAME = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop",
              "adagrad": "Adagrad", "adamax": "Adamax", "nadam": "NAdam", "radam": "RAdam",
              "adadelta": "Adadelta", "asgd": "ASGD", "rprop": "Rprop"}


def _as_real(x) -> np.ndarray:
    x = np.asarray(x)
    return view_as_real(x) if np.iscomplexobj(x) else x.astype(np.float64)


def _deviation(ours, ref) -> float:
    ours, ref = _as_real(ours), _as_real(ref)
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-300))


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_complex_trajectory_matches_torch(name, kwargs, dtype):
    p0, grads = complex_problem(dtype)
    old = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, REAL[dtype]))
    try:
        tparams = [torch.tensor(p, requires_grad=True) for p in p0]
        topt = getattr(torch.optim, TORCH_NAME[name])(tparams, **kwargs)
        torch_traj = []
        for g in grads:
            for p, x in zip(tparams, g, strict=True):
                p.grad = torch.tensor(x)
            topt.step()
            torch_traj.append([p.detach().numpy().copy() for p in tparams])
        torch_state = {key: [np.asarray(topt.state[p][key]).copy() for p in tparams]
                       for key in topt.state[tparams[0]]}
    finally:
        torch.set_default_dtype(old)

    opt = getattr(optim, name)(**kwargs)
    params = [jnp.asarray(p) for p in p0]
    state = opt.init(params)
    worst = {}
    for g, ref in zip(grads, torch_traj, strict=True):
        updates, state = opt.update([jnp.asarray(x) for x in g], state, params)
        params = optim.apply_updates(params, updates)
        for ours, theirs in zip(params, ref, strict=True):
            assert ours.dtype == np.dtype(dtype)
            worst["params"] = max(worst.get("params", 0.0), _deviation(ours, theirs))
    for key, refs in torch_state.items():
        leaves = jax.tree.leaves(getattr(state, key))
        if len(leaves) == 1 and len(refs) > 1:  # one scalar for every parameter
            leaves = leaves * len(refs)
        for ours, theirs in zip(leaves, refs, strict=True):
            worst[key] = max(worst.get(key, 0.0), _deviation(ours, theirs))
    assert set(worst) > {"params"}  # and every state key torch keeps
    bad = {k: v for k, v in worst.items() if not v < TOL[dtype]}
    assert not bad, f"{name}({kwargs}) on {dtype} deviates from torch: {bad}"


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_complex_model_trains_as_in_torch(dtype):
    """A complex linear model ``y = X w + b``, loss mean |y - t|^2, Adam with weight decay:
    ``make_train_step`` (jax.grad, conjugated to torch's ``.grad``) against torch's loop."""
    rng = np.random.default_rng(3)

    def c(*shape):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)

    x, t, w0, b0 = c(16, 4), c(16), c(4), c(1)
    steps, kwargs = 15, dict(lr=0.05, weight_decay=0.01, amsgrad=True)

    old = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, REAL[dtype]))
    try:
        tw, tb = (torch.tensor(a, requires_grad=True) for a in (w0, b0))
        topt = torch.optim.Adam([tw, tb], **kwargs)
        tx, tt = torch.tensor(x), torch.tensor(t)
        torch_w = []
        for _ in range(steps):
            topt.zero_grad()
            loss = torch.mean(torch.abs(tx @ tw + tb - tt) ** 2)
            loss.backward()
            topt.step()
            torch_w.append((tw.detach().numpy().copy(), tb.detach().numpy().copy()))
    finally:
        torch.set_default_dtype(old)

    def loss_fn(params, batch):
        xb, tb_ = batch
        return jnp.mean(jnp.abs(xb @ params["w"] + params["b"] - tb_) ** 2)

    opt = optim.adam(**kwargs)
    step = train.make_train_step(loss_fn, opt, donate=False)
    state = train.TrainState.create({"w": jnp.asarray(w0), "b": jnp.asarray(b0)}, opt)
    for ref_w, ref_b in torch_w:
        state, _ = step(state, (jnp.asarray(x), jnp.asarray(t)))
        assert _deviation(state.params["w"], ref_w) < TOL[dtype]
        assert _deviation(state.params["b"], ref_b) < TOL[dtype]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, "inf", 0.0])
@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_clip_grad_norm_of_complex_grads_matches_torch(norm_type, dtype):
    """A tree with a complex and a real leaf (of the same precision): the total norm and the
    clipped gradients as torch.nn.utils.clip_grad_norm_ leaves them."""
    p0, grads = complex_problem(dtype, seed=5)
    real = np.random.default_rng(6).standard_normal(3).astype(REAL[dtype])
    tree = [jnp.asarray(g) for g in grads[0]] + [jnp.asarray(real)]
    tparams = [torch.zeros(np.shape(g), dtype=getattr(torch, str(np.asarray(g).dtype)),
                           requires_grad=True) for g in tree]
    for p, g in zip(tparams, tree, strict=True):
        p.grad = torch.tensor(np.asarray(g))
    total = torch.nn.utils.clip_grad_norm_(tparams, 0.5, float(norm_type))
    clipped, ours = optim.clip_grad_norm(tree, 0.5, norm_type)
    assert _deviation(ours, total.numpy()) < TOL[dtype]
    for a, p in zip(clipped, tparams, strict=True):
        assert a.dtype == np.asarray(p.grad).dtype
        assert _deviation(a, p.grad.numpy()) < TOL[dtype]
    with pytest.raises(NotImplementedError, match="clamp is not supported for complex"):
        torch.nn.utils.clip_grad_value_(tparams, 1.0)
    with pytest.raises(NotImplementedError, match="clamp is not supported for complex"):
        optim.clip_grad_value(tree, 1.0)
