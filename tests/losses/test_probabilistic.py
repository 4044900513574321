"""kl_div, poisson_nll_loss, gaussian_nll_loss: optax cross-checks, torch's corner cases
(batchmean, Stirling mask, var shapes and clamp), bad input, dtypes, jit/grad/vmap."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.special import log_softmax, softmax

from fnlearn.losses import gaussian_nll_loss, kl_div, poisson_nll_loss
from tests._tiers import each_with_one

rng = np.random.default_rng(1)


# scipy, not jax.nn: module-level jnp work would compile programs at collection
LOGP = jnp.asarray(log_softmax(rng.standard_normal((4, 5)), axis=-1))
Q = jnp.asarray(softmax(rng.standard_normal((4, 5)), axis=-1))
X = jnp.asarray(rng.standard_normal((4, 3)))
T = jnp.asarray(rng.standard_normal((4, 3)))
V = jnp.asarray(rng.uniform(0.2, 2.0, (4, 3)))
COUNTS = jnp.asarray([[0.0, 1.0, 2.0], [5.0, 0.0, 1.0], [3.0, 1.5, 0.5], [1.0, 7.0, 0.0]])

KL_MEAN = ("reduction: 'mean' divides the total loss by both the batch size and the support "
           "size.'batchmean' divides only by the batch size, and aligns with the KL div math "
           "definition.'mean' will be changed to behave the same as 'batchmean' in the next "
           "major release.")


# --- kl_div ---------------------------------------------------------------------------------

def test_kl_batchmean_equals_optax_mean():
    np.testing.assert_allclose(kl_div(LOGP, Q, reduction="batchmean"),
                               jnp.mean(optax.losses.kl_divergence(LOGP, Q)), rtol=1e-14)
    logq = jnp.log(Q)
    np.testing.assert_allclose(
        kl_div(LOGP, logq, reduction="batchmean", log_target=True),
        jnp.mean(optax.losses.kl_divergence_with_log_targets(LOGP, logq)), rtol=1e-14)


def test_kl_none_sum_and_mean_with_torchs_warning():
    pointwise = Q * jnp.log(Q) - Q * LOGP
    np.testing.assert_allclose(kl_div(LOGP, Q, reduction="none"), pointwise, rtol=1e-14)
    np.testing.assert_allclose(kl_div(LOGP, Q, reduction="sum"), jnp.sum(pointwise), rtol=1e-14)
    with pytest.warns(UserWarning, match=re.escape(KL_MEAN)):
        mean = kl_div(LOGP, Q)  # the default reduction is torch's 'mean'
    np.testing.assert_allclose(mean, jnp.mean(pointwise), rtol=1e-14)


def test_kl_batchmean_divides_by_dim0_only():
    x3, t3 = LOGP.reshape(2, 2, 5), Q.reshape(2, 2, 5)
    np.testing.assert_allclose(kl_div(x3, t3, reduction="batchmean"),
                               kl_div(x3, t3, reduction="sum") / 2, rtol=1e-14)
    x0, t0 = LOGP[0, 0], Q[0, 0]  # 0-d input: the plain sum, as torch
    np.testing.assert_array_equal(kl_div(x0, t0, reduction="batchmean"),
                                  kl_div(x0, t0, reduction="sum"))


def test_kl_zero_target_is_zero_negative_target_is_nan():
    out = kl_div(LOGP[0, :3], jnp.array([0.0, -0.5, 0.5]), reduction="none")
    assert out[0] == 0.0 and jnp.isnan(out[1]) and jnp.isfinite(out[2])
    g = jax.grad(lambda x: kl_div(x, jnp.array([0.0, 0.5, 0.5]), reduction="sum"))(LOGP[0, :3])
    assert bool(jnp.all(jnp.isfinite(g))) and g[0] == 0.0


def test_kl_target_broadcasts_silently():
    out = kl_div(LOGP, Q[0], reduction="batchmean")  # warnings are errors here
    np.testing.assert_allclose(out, kl_div(LOGP, jnp.broadcast_to(Q[0], (4, 5)),
                                           reduction="batchmean"), rtol=1e-14)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    (dict(reduction="avg"), ValueError, "avg is not a valid value for reduction"),
    (dict(target=jnp.ones((4, 5), jnp.int32)), TypeError, "target must be a floating"),
    (dict(input=jnp.zeros((4, 5), jnp.int32)), TypeError, "input must be a floating"),
    (dict(target=jnp.ones(4)), ValueError, "target of shape"),
], ids=["reduction", "int-target", "int-input", "shape"])
def test_kl_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        kl_div(**{"input": LOGP, "target": Q, "reduction": "batchmean", **kwargs})


# --- poisson_nll_loss -------------------------------------------------------------------------

def _stirling(t):
    return np.where(t > 1, t * np.log(np.where(t > 1, t, 1)) - t
                    + 0.5 * np.log(2 * math.pi * np.where(t > 1, t, 1)), 0.0)


@pytest.mark.parametrize("full", [False, True], ids=["plain", "full"])
def test_poisson_formulas_and_stirling_mask(full):
    x, t = np.asarray(X), np.asarray(COUNTS)
    extra = _stirling(t) if full else 0.0
    np.testing.assert_allclose(poisson_nll_loss(X, COUNTS, full=full, reduction="none"),
                               np.exp(x) - t * x + extra, rtol=1e-14)
    rate = jnp.abs(X) + 0.1
    np.testing.assert_allclose(
        poisson_nll_loss(rate, COUNTS, log_input=False, full=full, eps=1e-3, reduction="none"),
        np.asarray(rate) - t * np.log(np.asarray(rate) + 1e-3) + extra, rtol=1e-14)


def test_poisson_full_target_gradient_finite_at_zero_counts():
    """torch gives nan for d/dtarget at a zero count with full=True; fnlearn gives the masked 0."""
    g = jax.grad(lambda t: poisson_nll_loss(X, t, full=True, reduction="sum"))(COUNTS)
    assert bool(jnp.all(jnp.isfinite(g)))
    np.testing.assert_allclose(g[0, 0], -X[0, 0], rtol=1e-14)  # only the -t*x term


def test_poisson_integer_target_and_bad_input():
    np.testing.assert_array_equal(poisson_nll_loss(X, COUNTS.astype(jnp.int32)),
                                  poisson_nll_loss(X, jnp.floor(COUNTS)))
    with pytest.raises(ValueError, match="mean2 is not a valid value for reduction"):
        poisson_nll_loss(X, COUNTS, reduction="mean2")
    with pytest.raises(TypeError, match="input must be a floating"):
        poisson_nll_loss(jnp.ones(3, jnp.int32), jnp.ones(3))
    with pytest.raises(ValueError, match="target of shape"):
        poisson_nll_loss(X, jnp.ones(4))


# --- gaussian_nll_loss ------------------------------------------------------------------------

def _gauss(x, t, v, full=False):
    vc = np.maximum(v, 1e-6)
    return 0.5 * (np.log(vc) + (x - t) ** 2 / vc) + (0.5 * math.log(2 * math.pi) if full else 0)


@pytest.mark.parametrize(("var_shape", "expand"), [
    ((4, 3), lambda v: v), ((4,), lambda v: v[:, None]), ((4, 1), lambda v: v),
    ((1, 3), lambda v: v)], ids=["same", "input-shape-minus-last", "column", "row"])
@pytest.mark.parametrize("full", [False, True], ids=["plain", "full"])
def test_gaussian_accepted_var_shapes(var_shape, expand, full):
    v = rng.uniform(0.2, 2.0, var_shape)
    out = gaussian_nll_loss(X, T, jnp.asarray(v), full=full, reduction="none")
    np.testing.assert_allclose(out, _gauss(np.asarray(X), np.asarray(T), expand(v), full),
                               rtol=1e-14)


def test_gaussian_python_number_var_and_0d_var_for_1d_input():
    np.testing.assert_allclose(gaussian_nll_loss(X, T, 0.5),
                               gaussian_nll_loss(X, T, jnp.full((4, 3), 0.5)), rtol=1e-15)
    np.testing.assert_allclose(gaussian_nll_loss(X[0], T[0], jnp.asarray(0.5)),
                               gaussian_nll_loss(X[0], T[0], 0.5), rtol=1e-15)


@pytest.mark.parametrize("var_shape", [(), (3,), (2, 3), (4, 3, 1), (1, 1)],
                         ids=lambda s: f"var{s}")
def test_gaussian_rejected_var_shapes(var_shape):
    with pytest.raises(ValueError, match="var is of incorrect size"):
        gaussian_nll_loss(X, T, jnp.ones(var_shape))


def test_gaussian_negative_var_raises_when_concrete():
    with pytest.raises(ValueError, match="var has negative entry"):
        gaussian_nll_loss(X, T, V.at[1, 2].set(-0.1))
    with pytest.raises(ValueError, match="var has negative entry"):
        gaussian_nll_loss(X, T, -1.0)
    with pytest.raises(ValueError, match="var has negative entry"):  # before the size check
        gaussian_nll_loss(X, T, -jnp.ones(7))
    closed_over = V.at[0, 0].set(-1.0)
    with pytest.raises(ValueError, match="var has negative entry"):
        jax.jit(lambda x: gaussian_nll_loss(x, T, closed_over))(X)


def test_gaussian_negative_traced_var_is_clamped_documented():
    """Under jit a traced var cannot be checked: a negative entry is clamped to eps."""
    v = V.at[0, 0].set(-1.0)
    out = jax.jit(gaussian_nll_loss)(X, T, v)
    np.testing.assert_allclose(out, gaussian_nll_loss(X, T, V.at[0, 0].set(1e-6)), rtol=1e-14)


def test_gaussian_clamp_passes_gradient_straight_through():
    eps = 1e-3
    v = V.at[0, :].set(jnp.array([1e-9, 0.0, 5e-4]))
    g = jax.grad(gaussian_nll_loss, argnums=2)(X, T, v, eps=eps, reduction="sum")
    vc = jnp.maximum(v, eps)
    np.testing.assert_allclose(g, 0.5 * (1 / vc - (X - T) ** 2 / vc**2), rtol=1e-12)
    assert bool(jnp.all(g[0] != 0))  # jnp.maximum alone would give 0 below eps


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    (dict(reduction="avg"), ValueError, "avg is not a valid value for reduction"),
    (dict(var=jnp.ones((4, 3), jnp.int32)), TypeError, "var must be a floating"),
    (dict(input=jnp.ones((4, 3), jnp.int32)), TypeError, "input must be a floating"),
    (dict(target=jnp.ones((5, 3))), ValueError, r"input \(4, 3\), target \(5, 3\) and var"),
], ids=["reduction", "int-var", "int-input", "target-shape"])
def test_gaussian_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gaussian_nll_loss(**{"input": X, "target": T, "var": V, **kwargs})


# --- all three: dtypes, jit, vmap -------------------------------------------------------------

CALLS = {
    "kl_div": lambda x, t, v: kl_div(x, t, reduction="batchmean"),
    "kl_div-log_target": lambda x, t, v: kl_div(x, t, reduction="sum", log_target=True),
    "poisson_nll_loss": lambda x, t, v: poisson_nll_loss(x, jnp.abs(t), full=True),
    "poisson_nll_loss-rate": lambda x, t, v: poisson_nll_loss(v, jnp.abs(t), log_input=False),
    "gaussian_nll_loss": lambda x, t, v: gaussian_nll_loss(x, t, v, full=True),
}


# each loss in one dtype by default (in turn), every pair in the exhaustive tier
@pytest.mark.parametrize(("name", "dtype"),
                         each_with_one(CALLS, ["bfloat16", "float32", "float64"]))
def test_dtype_kept_and_grad(name, dtype):
    args = [a.astype(dtype) for a in (X, T, V)]
    assert CALLS[name](*args).dtype == dtype
    grads = jax.jit(jax.grad(CALLS[name], argnums=(0, 2)))(*args)  # one compile, not per op
    assert all(g.dtype == dtype and bool(jnp.all(jnp.isfinite(g))) for g in grads)


@pytest.mark.parametrize("name", list(CALLS))
def test_jit_and_vmap(name):
    fn = CALLS[name]
    np.testing.assert_allclose(jax.jit(fn)(X, T, V), fn(X, T, V), rtol=1e-14)
    np.testing.assert_allclose(jax.vmap(fn)(X, T, V), [fn(X[i], T[i], V[i]) for i in range(4)],
                               rtol=1e-14)


def test_traced_eps():
    f = jax.jit(lambda e: (gaussian_nll_loss(X, T, V, eps=e),
                           poisson_nll_loss(V, jnp.abs(T), log_input=False, eps=e)))
    out = f(0.5)
    np.testing.assert_allclose(out[0], gaussian_nll_loss(X, T, V, eps=0.5), rtol=1e-14)
    np.testing.assert_allclose(out[1], poisson_nll_loss(V, jnp.abs(T), log_input=False, eps=0.5),
                               rtol=1e-14)
