"""clip_grad_norm / clip_grad_value against an installed torch.nn.utils (``pytest -m torch``):
random gradient trees, every norm type, clipping active and inactive, float64 and float32."""

from __future__ import annotations

import zlib

import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from fnlearn.optim import clip_grad_norm, clip_grad_value  # noqa: E402

pytestmark = pytest.mark.torch

NORM_TYPES = [2.0, 1.0, float("inf"), "inf", 3.5, 0.5, 0.0, -1.0, float("-inf")]
TOL = {"float64": 1e-12, "float32": 2e-6}


def _torch_clip(arrays, max_norm, norm_type, error_if_nonfinite=False):
    params = [torch.zeros(a.shape, dtype=torch.from_numpy(a).dtype, requires_grad=True)
              for a in arrays]
    for p, a in zip(params, arrays, strict=True):
        p.grad = torch.from_numpy(a.copy())
    total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type, error_if_nonfinite)
    return [p.grad.numpy() for p in params], float(total)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=[str(p) for p in NORM_TYPES])
def test_clip_grad_norm_matches_torch(norm_type, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{norm_type}-{dtype}".encode()))
    for _ in range(3):
        scale = 10 ** rng.uniform(-3, 2)
        arrays = [np.asarray(rng.standard_normal(s) * scale, dtype) for s in [(3, 4), (5,), ()]]
        arrays[0][0, 0] = 0.0  # a zero entry (matters for p = 0 and p < 0)
        for max_norm in (float(rng.uniform(0.01, 5.0)), 1e6, 0.0):
            want, want_total = _torch_clip(arrays, max_norm, norm_type)
            got, total = clip_grad_norm([jnp.asarray(a) for a in arrays], max_norm, norm_type)
            np.testing.assert_allclose(float(total), want_total, rtol=TOL[dtype])
            for g, w in zip(got, want, strict=True):
                assert g.dtype == jnp.dtype(dtype)
                np.testing.assert_allclose(np.asarray(g), w, rtol=TOL[dtype], atol=1e-30)


def test_nonfinite_behaviour_and_error_match_torch():
    for bad in (np.nan, np.inf):
        arrays = [np.array([1.0, bad]), np.array([2.0, -3.0])]
        want, want_total = _torch_clip(arrays, 1.0, 2.0)
        got, total = clip_grad_norm([jnp.asarray(a) for a in arrays], 1.0)
        np.testing.assert_array_equal(float(total), want_total)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(np.asarray(g), w)
        for norm_type in (2.0, "inf"):
            with pytest.raises(RuntimeError) as torch_error:
                _torch_clip(arrays, 1.0, norm_type, error_if_nonfinite=True)
            with pytest.raises(RuntimeError) as ours:
                clip_grad_norm([jnp.asarray(a) for a in arrays], 1.0, norm_type, True)
            assert str(ours.value) == str(torch_error.value)


def test_clip_grad_value_matches_torch():
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal((4, 3)) * 3, np.array([np.nan, 0.5, -7.0])]
    params = [torch.zeros(a.shape, dtype=torch.float64, requires_grad=True) for a in arrays]
    for p, a in zip(params, arrays, strict=True):
        p.grad = torch.from_numpy(a.copy())
    torch.nn.utils.clip_grad_value_(params, 1.25)
    got = clip_grad_value([jnp.asarray(a) for a in arrays], 1.25)
    for g, p in zip(got, params, strict=True):
        np.testing.assert_array_equal(np.asarray(g), p.grad.numpy())
    assert jax.tree.structure(got) == jax.tree.structure([0, 0])
