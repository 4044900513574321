"""Live randomized comparisons of Adamax, NAdam, RAdam, Adadelta, ASGD, Rprop and Adafactor
with torch.

Each test draws a configuration (every option of the algorithm) and a gradient sequence from
a fixed seed, runs torch and fnlearn side by side and compares the parameters after every
step and every torch state key (``opt.state[p][key]``) with the fnlearn state field of the
same name: max |fnlearn - torch| / max |torch| per array, float64 below 1e-10, float32 below
1e-5. torch's scalar state (``step``, NAdam's ``mu_product``, ASGD's ``eta`` / ``mu``) takes
torch's default dtype, set here to the dtype of the run. Constructor errors are compared
message for message.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import optim

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

TOL = {"float64": 1e-10, "float32": 1e-5}
STEPS = 30
SHAPES = ((2, 3), (4,))
TORCH_NAME = {"adamax": "Adamax", "nadam": "NAdam", "radam": "RAdam",
              "adadelta": "Adadelta", "asgd": "ASGD", "rprop": "Rprop",
              "adafactor": "Adafactor"}


def _log_uniform(rng, low, high):
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def draw(name: str, rng: np.random.Generator) -> dict:
    """A random configuration using every option of ``name``."""
    lr = _log_uniform(rng, 1e-3, 1e-1)
    wd = 0.0 if rng.random() < 0.3 else _log_uniform(rng, 1e-3, 0.5)
    maximize = bool(rng.random() < 0.5)
    betas = (float(rng.uniform(0.0, 0.95)), float(rng.uniform(0.5, 0.9999)))
    eps = _log_uniform(rng, 1e-10, 1e-2)
    if name == "adamax":
        return dict(lr=lr, betas=betas, eps=eps, weight_decay=wd, maximize=maximize)
    if name == "nadam":
        psi = 0.0 if rng.random() < 0.3 else _log_uniform(rng, 1e-4, 0.1)
        return dict(lr=lr, betas=betas, eps=eps, weight_decay=wd, momentum_decay=psi,
                    decoupled_weight_decay=bool(rng.random() < 0.5), maximize=maximize)
    if name == "radam":
        return dict(lr=lr, betas=betas, eps=eps, weight_decay=wd,
                    decoupled_weight_decay=bool(rng.random() < 0.5), maximize=maximize)
    if name == "adadelta":
        return dict(lr=_log_uniform(rng, 0.1, 2.0), rho=float(rng.uniform(0.0, 1.0)),
                    eps=_log_uniform(rng, 1e-8, 1e-2), weight_decay=wd, maximize=maximize)
    if name == "asgd":
        t0 = 1e6 if rng.random() < 0.3 else float(rng.integers(0, 20))
        return dict(lr=lr, lambd=_log_uniform(rng, 1e-5, 1e-1), alpha=float(rng.uniform(0.1, 1)),
                    t0=t0, weight_decay=wd, maximize=maximize)
    if name == "rprop":
        etas = (float(rng.uniform(0.1, 0.9)), float(rng.uniform(1.05, 2.0)))
        sizes = (_log_uniform(rng, 1e-6, 1e-3), _log_uniform(rng, 0.05, 50.0))
        return dict(lr=lr, etas=etas, step_sizes=sizes, maximize=maximize)
    if name == "adafactor":
        eps1 = None if rng.random() < 0.5 else _log_uniform(rng, 1e-8, 1e-2)
        return dict(lr=_log_uniform(rng, 1e-3, 1.0), beta2_decay=float(rng.uniform(-1.0, -0.1)),
                    eps=(eps1, _log_uniform(rng, 1e-4, 1.0)), d=float(rng.uniform(1.0, 4.0)),
                    weight_decay=wd, maximize=maximize)
    raise ValueError(name)


@contextlib.contextmanager
def torch_default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def deviations(name: str, kwargs: dict, dtype: str, seed: int) -> dict[str, float]:
    """max |fnlearn - torch| / max |torch| over the steps, for params and each state key."""
    rng = np.random.default_rng(seed)
    p0 = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[(rng.standard_normal(s) * _log_uniform(rng, 0.1, 10.0)).astype(dtype)
              for s in SHAPES] for _ in range(STEPS)]
    tdt = getattr(torch, dtype)
    with torch_default_dtype(tdt):
        tparams = [torch.tensor(p, dtype=tdt, requires_grad=True) for p in p0]
        topt = getattr(torch.optim, TORCH_NAME[name])(tparams, **kwargs)
        torch_traj = []
        for k in range(STEPS):
            for p, g in zip(tparams, grads[k], strict=True):
                p.grad = torch.tensor(g, dtype=tdt)
            topt.step()
            keys = {key for p in tparams for key in topt.state[p]}  # Adafactor: per shape
            torch_traj.append({"params": [p.detach().numpy().copy() for p in tparams]}
                              | {key: [np.asarray(topt.state[p][key], np.float64).copy()
                                       for p in tparams if key in topt.state[p]]
                                 for key in keys})

    opt = getattr(optim, name)(**kwargs)
    params = [jnp.asarray(p) for p in p0]
    state = opt.init(params)
    rows = []
    for k in range(STEPS):  # eager: op-by-op dispatch is cheaper here than a compile
        updates, state = opt.update([jnp.asarray(g) for g in grads[k]], state, params)
        params = optim.apply_updates(params, updates)
        rows.append((params, state))
    traj, states = jax.tree.map(lambda *xs: jnp.stack(xs), *rows)
    assert all(leaf.dtype == np.dtype(dtype) for leaf in traj)
    worst: dict[str, float] = {}
    for key in torch_traj[0]:
        field = traj if key == "params" else getattr(states, key)
        leaves = jax.tree.leaves(field)
        if len(leaves) == 1 and np.ndim(leaves[0]) == 1:  # one scalar for every parameter
            leaves = leaves * len(SHAPES)
        for i, leaf in enumerate(leaves):
            ours = np.asarray(leaf, np.float64)
            ref = np.stack([row[key][i] for row in torch_traj]).reshape(ours.shape)
            dev = float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-300))
            worst[key] = max(worst.get(key, 0.0), dev)
    return worst


CONFIGS = [(name, i) for name in TORCH_NAME for i in range(3)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("name", "i"), CONFIGS, ids=[f"{n}-{i}" for n, i in CONFIGS])
def test_random_configuration_matches_torch(name, i, dtype):
    seed = 1000 * list(TORCH_NAME).index(name) + i
    kwargs = draw(name, np.random.default_rng(seed))
    worst = deviations(name, kwargs, dtype, seed)
    assert set(worst) > {"params", "step"}
    bad = {k: v for k, v in worst.items() if not v < TOL[dtype]}
    assert not bad, f"{name}({kwargs}) deviates from torch ({dtype}): {bad}"


BAD = [
    ("adamax", dict(lr=-1.0)), ("adamax", dict(eps=-1e-8)), ("adamax", dict(betas=(1.0, 0.9))),
    ("adamax", dict(betas=(0.9, -0.5))), ("adamax", dict(weight_decay=-0.1)),
    ("adamax", dict(lr=float("nan"))),
    ("nadam", dict(lr=-1.0)), ("nadam", dict(eps=-1.0)), ("nadam", dict(betas=(-0.1, 0.9))),
    ("nadam", dict(betas=(0.9, 1.0))), ("nadam", dict(weight_decay=-1)),
    ("nadam", dict(momentum_decay=-4e-3)),
    ("radam", dict(lr=-1.0)), ("radam", dict(eps=-1.0)), ("radam", dict(betas=(1.5, 0.9))),
    ("radam", dict(betas=(0.9, 1.0))), ("radam", dict(weight_decay=-0.1)),
    ("adadelta", dict(lr=-1.0)), ("adadelta", dict(rho=1.5)), ("adadelta", dict(rho=-0.1)),
    ("adadelta", dict(eps=-1e-6)), ("adadelta", dict(weight_decay=-0.1)),
    ("asgd", dict(lr=-1.0)), ("asgd", dict(weight_decay=-0.1)),
    ("rprop", dict(lr=-1.0)), ("rprop", dict(etas=(0.5, 0.9))), ("rprop", dict(etas=(0.0, 1.2))),
    ("rprop", dict(etas=(1.0, 1.2))), ("rprop", dict(etas=(0.5, 1.0))),
    ("adafactor", dict(lr=-1.0)), ("adafactor", dict(beta2_decay=0.5)),
    ("adafactor", dict(eps=(-1e-3, 1e-3))), ("adafactor", dict(eps=(None, -1.0))),
    ("adafactor", dict(d=0.5)), ("adafactor", dict(weight_decay=-0.1)),
]


@pytest.mark.parametrize(("name", "kwargs"), BAD,
                         ids=[f"{n}-{'-'.join(map(str, kw.items()))}" for n, kw in BAD])
def test_bad_hyperparameters_raise_torchs_error(name, kwargs):
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, TORCH_NAME[name])([torch.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError) as ours:
        getattr(optim, name)(**kwargs)
    assert str(ours.value) == str(theirs.value)


GOOD = [("adadelta", dict(rho=1.0)), ("adadelta", dict(rho=0.0)), ("asgd", dict(lambd=-1.0)),
        ("asgd", dict(alpha=-1.0)), ("rprop", dict(step_sizes=(1.0, 0.1)))]


@pytest.mark.parametrize(("name", "kwargs"), GOOD,
                         ids=[f"{n}-{'-'.join(map(str, kw.items()))}" for n, kw in GOOD])
def test_values_torch_accepts_are_accepted(name, kwargs):
    getattr(torch.optim, TORCH_NAME[name])([torch.zeros(2, requires_grad=True)], **kwargs)
    getattr(optim, name)(**kwargs)
