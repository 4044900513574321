"""muon against live torch (``pytest -m torch``): random configurations, torch's Muon as it
is (Newton-Schulz in bfloat16; fnlearn's default) and with its Newton-Schulz in float64
(fnlearn's ``ns_dtype=float64``); constructor errors message for message."""

from __future__ import annotations

from unittest import mock

import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import optim
from tests.optim.muon_cases import ns_float64
from tests.optim.test_muon import BF16_TOL, TOL, _deviation, run

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

import torch.optim._muon as torch_muon  # noqa: E402

SHAPES = ((5, 3), (3, 8), (4, 4))
STEPS = 15


def draw(rng) -> dict:
    kw = dict(lr=float(np.exp(rng.uniform(np.log(1e-3), np.log(0.1)))),
              weight_decay=float(rng.choice([0.0, rng.uniform(0, 0.5)])),
              momentum=float(rng.uniform(0.0, 0.99)), nesterov=bool(rng.random() < 0.5),
              adjust_lr_fn=rng.choice([None, "original", "match_rms_adamw"]))
    if rng.random() < 0.3:
        kw["ns_steps"] = int(rng.integers(1, 8))
    return kw


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("seed", range(4))
def test_random_configuration_matches_torch(seed, dtype):
    rng = np.random.default_rng(seed)
    kw = draw(rng)
    p0 = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [np.stack([rng.standard_normal(s) * np.exp(rng.uniform(-2, 2)) for _ in range(STEPS)])
             .astype(dtype) for s in SHAPES]
    old = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        for ns, patch in (("bf16", torch_muon._zeropower_via_newtonschulz), ("f64", ns_float64)):
            params = [torch.tensor(p, requires_grad=True) for p in p0]
            opt = torch.optim.Muon(params, **kw)
            trajectory = [[] for _ in SHAPES]
            with mock.patch.object(torch_muon, "_zeropower_via_newtonschulz", patch):
                for k in range(STEPS):
                    for p, g in zip(params, grads, strict=True):
                        p.grad = torch.tensor(g[k])
                    opt.step()
                    for i, p in enumerate(params):
                        trajectory[i].append(p.detach().numpy().copy())
            extra = {"ns_dtype": jnp.float64} if ns == "f64" else {}
            ours = run({**kw, **extra}, p0, grads, dtype)
            tol = TOL[dtype] if ns == "f64" else BF16_TOL
            for i in range(len(SHAPES)):
                dev = _deviation(ours[i], np.stack(trajectory[i]))
                assert dev < tol, f"{kw} ({ns} Newton-Schulz, {dtype}): {dev}"
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize("kwargs", [dict(lr=-1.0), dict(momentum=-0.5),
                                    dict(weight_decay=-0.1), dict(adjust_lr_fn="rms")])
def test_bad_hyperparameters_raise_torchs_error(kwargs):
    with pytest.raises(ValueError) as theirs:
        torch.optim.Muon([torch.zeros((2, 2), requires_grad=True)], **kwargs)
    with pytest.raises(ValueError) as ours:
        optim.muon(**kwargs)
    assert str(ours.value) == str(theirs.value)
