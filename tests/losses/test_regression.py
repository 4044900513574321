"""mse_loss, l1_loss, smooth_l1_loss, huber_loss: optax cross-checks, torch's corner cases,
bad input, dtypes, jit/grad/vmap. (Values against torch: test_reference.py.)"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn.losses import huber_loss, l1_loss, mse_loss, smooth_l1_loss
from tests._tiers import each_with_one

FNS = {"mse_loss": mse_loss, "l1_loss": l1_loss, "smooth_l1_loss": smooth_l1_loss,
       "huber_loss": huber_loss}
rng = np.random.default_rng(0)
X = jnp.asarray(rng.standard_normal((3, 4)))
Y = jnp.asarray(rng.standard_normal((3, 4)))
W = jnp.asarray(rng.uniform(0.1, 1.0, (3, 4)))


def test_mse_none_equals_optax_squared_error():
    expected = optax.losses.squared_error(X, Y)
    np.testing.assert_array_equal(mse_loss(X, Y, reduction="none"), expected)


@pytest.mark.parametrize("delta", [1.0, 0.3, 2.5], ids=lambda d: f"delta{d}")
def test_huber_none_equals_optax_huber(delta):
    np.testing.assert_allclose(
        huber_loss(X, Y, reduction="none", delta=delta),
        optax.losses.huber_loss(X, Y, delta=delta), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0], ids=lambda b: f"beta{b}")
def test_smooth_l1_none_equals_optax_huber_over_beta(beta):
    np.testing.assert_allclose(
        smooth_l1_loss(X, Y, reduction="none", beta=beta),
        optax.losses.huber_loss(X, Y, delta=beta) / beta, rtol=1e-14)


def test_huber_is_delta_times_smooth_l1():
    np.testing.assert_allclose(huber_loss(X, Y, delta=0.7), 0.7 * smooth_l1_loss(X, Y, beta=0.7),
                               rtol=1e-14)


def test_weighted_mean_denominators():
    """mse/l1 divide by sum(w); huber takes the plain mean of w*l (torch 2.13)."""
    e2, e1 = (X - Y) ** 2, jnp.abs(X - Y)
    np.testing.assert_allclose(mse_loss(X, Y, weight=W), jnp.sum(W * e2) / jnp.sum(W), rtol=1e-14)
    np.testing.assert_allclose(l1_loss(X, Y, weight=W), jnp.sum(W * e1) / jnp.sum(W), rtol=1e-14)
    h = optax.losses.huber_loss(X, Y)
    np.testing.assert_allclose(huber_loss(X, Y, weight=W), jnp.mean(W * h), rtol=1e-14)
    assert abs(float(huber_loss(X, Y, weight=W)) - float(jnp.sum(W * h) / jnp.sum(W))) > 1e-3
    for fn in (mse_loss, l1_loss, huber_loss):
        np.testing.assert_allclose(fn(X, Y, weight=W, reduction="sum"),
                                   jnp.sum(fn(X, Y, weight=W, reduction="none")), rtol=1e-14)


def test_smooth_l1_beta_zero_is_l1_also_traced():
    x = X.at[0, 0].set(Y[0, 0])  # a tie: torch's l1 gradient there is 0
    for beta in (0.0, jnp.float64(0.0)):
        np.testing.assert_array_equal(smooth_l1_loss(x, Y, beta=beta), l1_loss(x, Y))
    value, grad = jax.jit(jax.value_and_grad(lambda x, b: smooth_l1_loss(x, Y, beta=b)))(x, 0.0)
    np.testing.assert_array_equal(value, l1_loss(x, Y))
    np.testing.assert_array_equal(grad, jax.grad(l1_loss)(x, Y))
    assert grad[0, 0] == 0.0


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_broadcast_target_warns_in_jax_terms(name):
    text = ("Using a target of shape (4, 1) that is different to the input's shape (4, 5). "
            "This will likely lead to incorrect results due to broadcasting. Please ensure "
            "they have the same shape.")
    x, y = jnp.ones((4, 5)), jnp.arange(4.0)[:, None]
    with pytest.warns(UserWarning, match=re.escape(text)) as record:
        out = FNS[name](x, y, reduction="none")
    assert record[0].filename == __file__  # the warning points at the caller
    assert out.shape == (4, 5)
    FNS[name](x, jnp.ones((4, 5)))  # same shape: no warning (warnings are errors here)


@pytest.mark.parametrize(("kwargs", "reduction"), [
    ({"size_average": False}, "sum"), ({"reduce": False}, "none"),
    ({"size_average": True, "reduce": True}, "mean")], ids=["size_average-False", "reduce-False",
                                                           "both-True"])
def test_legacy_size_average_reduce(kwargs, reduction):
    msg = f"size_average and reduce args will be deprecated, please use reduction='{reduction}'"
    with pytest.warns(UserWarning, match=re.escape(msg)):
        out = mse_loss(X, Y, **kwargs, reduction="mean")
    np.testing.assert_array_equal(out, mse_loss(X, Y, reduction=reduction))


def test_positional_order_is_torchs():
    with pytest.warns(UserWarning, match="size_average"):
        out = smooth_l1_loss(X, Y, None, False, "mean", 0.5)  # reduce=False wins, as torch
    assert out.shape == (3, 4)
    np.testing.assert_array_equal(huber_loss(X, Y, "sum", 0.5), huber_loss(X, Y, reduction="sum",
                                                                         delta=0.5))


BAD = [
    ("mse_loss", dict(reduction="avg"), ValueError, "avg is not a valid value for reduction"),
    ("huber_loss", dict(reduction="batchmean"), ValueError, "batchmean is not a valid value"),
    ("l1_loss", dict(input=jnp.arange(12).reshape(3, 4)), TypeError, "input must be a floating"),
    ("mse_loss", dict(weight=jnp.ones(4)), ValueError, "weight must have input's shape"),
    ("huber_loss", dict(weight=jnp.ones((1, 4))), ValueError, "weight must have input's shape"),
    ("l1_loss", dict(target=jnp.ones(3)), ValueError, r"target of shape \(3,\) cannot be broadcast "
                                                      r"to input of shape \(3, 4\)"),
    ("smooth_l1_loss", dict(beta=-0.5), ValueError, "negative values for beta"),
    ("huber_loss", dict(delta=0.0), ValueError, "non-positive values for delta"),
    ("huber_loss", dict(delta=-1.0), ValueError, "non-positive values for delta"),
]


@pytest.mark.parametrize(("name", "kwargs", "exc", "match"), BAD,
                         ids=[f"{b[0]}-{b[3][:30]}" for b in BAD])
def test_bad_input_raises_naming_the_argument(name, kwargs, exc, match):
    args = {"input": X, "target": Y, **kwargs}
    with pytest.raises(exc, match=match):
        FNS[name](**args)


# each loss in one dtype by default (in turn), every pair in the exhaustive tier
@pytest.mark.parametrize(("name", "dtype"),
                         each_with_one(FNS, ["bfloat16", "float32", "float64"]))
def test_dtype_kept_and_grad(name, dtype):
    x, y = X.astype(dtype), Y.astype(dtype)
    assert FNS[name](x, y).dtype == dtype
    assert FNS[name](x, y, reduction="none").dtype == dtype
    g = jax.jit(jax.grad(FNS[name]))(x, y)  # one compile, not one per op
    assert g.dtype == dtype and bool(jnp.all(jnp.isfinite(g)))
    assert FNS[name](x, jnp.arange(12).reshape(3, 4)).dtype == dtype  # integer target is cast


def test_mixed_dtypes_follow_torch():
    x32, y64 = X.astype(jnp.float32), Y
    assert mse_loss(x32, y64).dtype == jnp.float64  # promoted
    assert smooth_l1_loss(x32, y64).dtype == jnp.float64
    assert huber_loss(x32, y64).dtype == jnp.float32  # torch's huber kernel: input's dtype
    assert huber_loss(x32, Y.astype(jnp.float32), weight=W).dtype == jnp.float64
    assert mse_loss(X.astype(jnp.bfloat16), Y.astype(jnp.float32)).dtype == jnp.float32


@pytest.mark.parametrize("name", list(FNS))
def test_jit_and_vmap(name):
    fn = FNS[name]
    np.testing.assert_allclose(jax.jit(fn)(X, Y), fn(X, Y), rtol=1e-14)
    per_row = jax.vmap(fn)(X, Y)  # each row reduced on its own
    np.testing.assert_allclose(per_row, [fn(X[i], Y[i]) for i in range(3)], rtol=1e-14)


def test_traced_hyperparameters_and_weight():
    """beta, delta and weight may be tracers (e.g. under optax.inject_hyperparams)."""
    f = jax.jit(lambda b, d, w: (smooth_l1_loss(X, Y, beta=b), huber_loss(X, Y, delta=d, weight=w),
                                 mse_loss(X, Y, weight=w)))
    out = f(0.5, 0.7, W)
    np.testing.assert_allclose(out[0], smooth_l1_loss(X, Y, beta=0.5), rtol=1e-14)
    np.testing.assert_allclose(out[1], huber_loss(X, Y, delta=0.7, weight=W), rtol=1e-14)
    np.testing.assert_allclose(out[2], mse_loss(X, Y, weight=W), rtol=1e-14)
