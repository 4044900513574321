"""fnlearn.optim.swa_utils against a live torch.optim.swa_utils.AveragedModel
(``pytest -m torch``): random decays and parameter sequences, every averaging function."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn.optim import swa_utils

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch.optim import swa_utils as torch_swa  # noqa: E402

TOL = {"float64": 1e-10, "float32": 1e-5}


def _kwargs(kind: str, decay: float, module):
    return {"swa": {}, "ema": {"avg_fn": module.get_ema_avg_fn(decay)},
            "ema-multi": {"multi_avg_fn": module.get_ema_multi_avg_fn(decay)},
            "swa-multi": {"multi_avg_fn": module.get_swa_multi_avg_fn()}}[kind]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["swa", "ema", "ema-multi", "swa-multi"])
def test_random_sequences_match_torch(kind, dtype):
    rng = np.random.default_rng(["swa", "ema", "ema-multi", "swa-multi"].index(kind))
    decay = float(rng.uniform(0.5, 0.9999))
    shape = tuple(int(s) for s in rng.integers(1, 5, 2))
    seq = [rng.standard_normal(shape).astype(dtype) for _ in range(12)]
    old = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        model = torch.nn.Linear(1, 1, bias=False)
        model.weight = torch.nn.Parameter(torch.zeros(shape))
        averaged = torch_swa.AveragedModel(model, **_kwargs(kind, decay, torch_swa))
        avg = swa_utils.averaged_model(**_kwargs(kind, decay, swa_utils))
        state = avg.init({"weight": jnp.zeros(shape, dtype)})
        for x in seq:
            with torch.no_grad():
                model.weight.copy_(torch.tensor(x))
            averaged.update_parameters(model)
            state = avg.update(state, {"weight": jnp.asarray(x)})
            ref = averaged.module.weight.detach().numpy()
            np.testing.assert_allclose(np.asarray(state.params["weight"]), ref, rtol=TOL[dtype],
                                       atol=TOL[dtype] * np.max(np.abs(ref)))
        assert int(state.n_averaged) == int(averaged.n_averaged) == len(seq)
    finally:
        torch.set_default_dtype(old)


def test_decay_errors_are_torchs():
    for bad in (-0.5, 2.0):
        for name in ("get_ema_avg_fn", "get_ema_multi_avg_fn"):
            with pytest.raises(ValueError) as theirs:
                getattr(torch_swa, name)(bad)
            with pytest.raises(ValueError) as ours:
                getattr(swa_utils, name)(bad)
            assert str(ours.value) == str(theirs.value)
