"""hinge_embedding_loss, margin_ranking_loss, cosine_embedding_loss, triplet_margin_loss,
triplet_margin_with_distance_loss and pairwise_distance: optax cross-checks and the
documented differences, torch's corner cases, bad input, dtypes, jit/grad/vmap."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn.losses import (
    TripletMarginWithDistanceLoss,
    cosine_embedding_loss,
    hinge_embedding_loss,
    margin_ranking_loss,
    pairwise_distance,
    triplet_margin_loss,
    triplet_margin_with_distance_loss,
)
from tests._tiers import each_with_one

rng = np.random.default_rng(2)
A, P, N = (jnp.asarray(rng.standard_normal((5, 4))) for _ in range(3))
S = jnp.asarray(rng.choice([-1, 1], 5))  # labels


# --- hinge_embedding_loss ---------------------------------------------------------------------

def test_hinge_embedding_other_labels_get_both_terms():
    x = jnp.array([0.3, 0.3, 0.3, 2.0])
    out = hinge_embedding_loss(x, jnp.array([1, -1, 0, -1]), reduction="none")
    np.testing.assert_allclose(out, [0.3, 0.7, 1.0, 0.0], rtol=1e-15)


def test_hinge_embedding_differs_from_optax_hinge_loss():
    """optax.losses.hinge_loss is max(0, 1 - y x), another loss (documented)."""
    x = A[:, 0]
    ours = hinge_embedding_loss(x, S, reduction="none")
    theirs = optax.losses.hinge_loss(x, S.astype(x.dtype))
    assert float(jnp.max(jnp.abs(ours - theirs))) > 0.1


def test_hinges_pass_the_gradient_at_the_corner_as_torch_clamp_min():
    g = jax.grad(hinge_embedding_loss)(jnp.array([1.0]), jnp.array([-1]))  # margin - x = 0
    np.testing.assert_array_equal(g, [-1.0])
    g1, g2 = jax.grad(margin_ranking_loss, argnums=(0, 1))(
        jnp.array([0.5]), jnp.array([0.5]), jnp.array([1.0]))
    np.testing.assert_array_equal((g1, g2), ([-1.0], [1.0]))


# --- margin_ranking_loss ----------------------------------------------------------------------

def test_margin_ranking_formula_and_integer_target():
    x1, x2 = A[:, 0], A[:, 1]
    expected = jnp.maximum(0.0, -S.astype(x1.dtype) * (x1 - x2) + 0.3)
    np.testing.assert_allclose(margin_ranking_loss(x1, x2, S, margin=0.3, reduction="none"),
                               expected, rtol=1e-15)
    np.testing.assert_allclose(margin_ranking_loss(x1, x2, S.astype(jnp.float64), margin=0.3),
                               jnp.mean(expected), rtol=1e-15)


@pytest.mark.parametrize(("shapes", "match"), [
    (((6,), (1, 6), (6,)), r"same number of dimensions.*input1: \(6,\), input2: \(1, 6\)"),
    (((6,), (6,), ()), r"target: \(\)"),
    (((6,), (5,), (6,)), r"input1 \(6,\), input2 \(5,\), target \(6,\)"),
], ids=["ndim-input2", "ndim-target", "size"])
def test_margin_ranking_bad_shapes(shapes, match):
    with pytest.raises(ValueError, match=match):
        margin_ranking_loss(*(jnp.ones(s) for s in shapes))


# --- cosine_embedding_loss --------------------------------------------------------------------

def test_cosine_positive_pairs_match_optax_cosine_distance_closely():
    ours = cosine_embedding_loss(A, P, jnp.ones(5), reduction="none")
    theirs = optax.losses.cosine_distance(A, P)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-11)


def test_cosine_zero_vector_gives_one_where_optax_gives_nan():
    z = jnp.zeros((1, 4))
    assert float(cosine_embedding_loss(z, P[:1], jnp.array([1]))) == 1.0
    assert bool(jnp.isnan(optax.losses.cosine_distance(z, P[:1]))[0])
    g = jax.grad(cosine_embedding_loss, argnums=(0, 1))(z, P[:1], jnp.array([1]))
    assert all(bool(jnp.all(jnp.isfinite(gi))) for gi in g)


def test_cosine_labels_and_margin():
    cos = jnp.sum(A * P, 1) / jnp.sqrt(jnp.sum(A * A, 1) * jnp.sum(P * P, 1))
    y = jnp.array([1, -1, 0, 2, -1])
    out = cosine_embedding_loss(A, P, y, margin=-0.1, reduction="none")
    expected = jnp.where(y == 1, 1 - cos, jnp.where(y == -1, jnp.maximum(cos + 0.1, 0), 0.0))
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    unbatched = cosine_embedding_loss(A[1], P[1], jnp.array(-1), margin=-0.1)
    np.testing.assert_allclose(unbatched, out[1], rtol=1e-15)


@pytest.mark.parametrize(("x1", "x2", "y", "match"), [
    ((5, 4), (5, 4), (5, 1), "target must be 0-D or 1-D"),
    ((1, 4, 3), (1, 4, 3), (1,), "a 1-D target expects 2-D input1 and input2"),
    ((4, 3), (4, 3), (), "a 0-D target expects 1-D input1 and input2"),
    ((4, 3), (5, 3), (4,), r"input2 of shape \(5, 3\) cannot be broadcast to input1"),
], ids=["2d-target", "3d-inputs", "0d-target-2d-inputs", "batch-mismatch"])
def test_cosine_bad_shapes(x1, x2, y, match):
    with pytest.raises(ValueError, match=match):
        cosine_embedding_loss(jnp.ones(x1), jnp.ones(x2), jnp.ones(y))


# --- triplet_margin_loss ----------------------------------------------------------------------

def _torch_distance(u, v, p, eps=1e-6):
    return np.sum(np.abs(np.asarray(u - v) + eps) ** p, axis=-1) ** (1 / p)


@pytest.mark.parametrize("p", [1, 2, 3, 1.5], ids=lambda p: f"p{p}")
def test_triplet_formula(p):
    expected = np.maximum(_torch_distance(A, P, p) - _torch_distance(A, N, p) + 1.0, 0)
    np.testing.assert_allclose(triplet_margin_loss(A, P, N, p=p, reduction="none"), expected,
                               rtol=1e-12)


def test_triplet_swap_uses_the_smaller_negative_distance():
    d_an, d_pn = _torch_distance(A, N, 2), _torch_distance(P, N, 2)
    expected = np.maximum(_torch_distance(A, P, 2) - np.minimum(d_an, d_pn) + 2.0, 0)
    out = triplet_margin_loss(A, P, N, margin=2.0, swap=True, reduction="none")
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert np.any(d_pn < d_an)  # the swap mattered for this data


def test_triplet_p2_matches_optax_only_approximately():
    ours = triplet_margin_loss(A, P, N, reduction="none")
    theirs = optax.losses.triplet_margin_loss(A, P, N)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert float(jnp.max(jnp.abs(ours - theirs))) > 1e-9  # eps sits elsewhere in optax


def test_triplet_p1_and_p3_differ_from_optax():
    """optax takes no absolute value: p=1 is wrong by O(1), odd p gives nan (documented)."""
    d1 = jnp.abs(triplet_margin_loss(A, P, N, p=1, reduction="none")
                 - optax.losses.triplet_margin_loss(A, P, N, norm_degree=1))
    assert float(jnp.max(d1)) > 0.5
    ours3 = triplet_margin_loss(A, P, N, p=3, reduction="none")
    assert bool(jnp.all(jnp.isfinite(ours3)))
    assert bool(jnp.any(jnp.isnan(optax.losses.triplet_margin_loss(A, P, N, norm_degree=3))))


@pytest.mark.parametrize("p", [1, 2, 3, 0.5, math.inf], ids=lambda p: f"p{p}")
def test_triplet_zero_distance_has_zero_gradient(p):
    g = jax.grad(triplet_margin_loss, argnums=1)(A, A, N, margin=5.0, p=p, eps=0.0)
    assert bool(jnp.all(jnp.isfinite(g)))
    np.testing.assert_array_equal(g, jnp.zeros_like(g))


def test_triplet_special_norms():
    d = np.asarray(A - N) + 1e-6
    inf = triplet_margin_loss(A, A, N, p=math.inf, margin=9.0, eps=1e-6, reduction="none")
    np.testing.assert_allclose(inf, 9.0 + 1e-6 - np.max(np.abs(d), -1), rtol=1e-12)
    zero = triplet_margin_loss(A, A, N, p=0, margin=9.0, eps=0.0, reduction="none")
    np.testing.assert_allclose(zero, 9.0 - 4.0, rtol=1e-15)  # nonzeros counted


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    (dict(margin=0.0), ValueError, "margin must be greater than 0, got 0.0"),
    (dict(margin=-1.0), ValueError, "margin must be greater than 0"),
    (dict(negative=jnp.ones(4)), ValueError, "anchor 2D, positive 2D and negative 1D"),
    (dict(positive=jnp.ones((3, 4))), ValueError, r"anchor \(5, 4\), positive \(3, 4\)"),
    (dict(p=jnp.asarray(2.0)), TypeError, "p must be a Python number"),
    (dict(anchor=jnp.ones((5, 4), jnp.int32)), TypeError, "anchor must be a floating"),
    (dict(reduction="avg"), ValueError, "avg is not a valid value for reduction"),
], ids=["margin0", "margin-negative", "ndim", "batch", "p-array", "int-anchor", "reduction"])
def test_triplet_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        triplet_margin_loss(**{"anchor": A, "positive": P, "negative": N, **kwargs})


# --- all four: dtypes, jit, vmap ------------------------------------------------------------

CALLS = {
    "hinge_embedding_loss": lambda a, p, n: hinge_embedding_loss(a[:, 0], S, margin=0.5),
    "margin_ranking_loss": lambda a, p, n: margin_ranking_loss(a[:, 0], p[:, 0], S, margin=0.1),
    "cosine_embedding_loss": lambda a, p, n: cosine_embedding_loss(a, p, S, margin=0.2),
    "triplet_margin_loss": lambda a, p, n: triplet_margin_loss(a, p, n, swap=True),
    "triplet_margin_loss-p1": lambda a, p, n: triplet_margin_loss(a, p, n, p=1),
}


# each loss in one dtype by default (in turn), every pair in the exhaustive tier
@pytest.mark.parametrize(("name", "dtype"),
                         each_with_one(CALLS, ["bfloat16", "float32", "float64"]))
def test_dtype_kept_and_grad(name, dtype):
    args = [x.astype(dtype) for x in (A, P, N)]
    assert CALLS[name](*args).dtype == dtype
    grads = jax.jit(jax.grad(CALLS[name], argnums=(0, 1)))(*args)  # one compile, not per op
    assert all(g.dtype == dtype and bool(jnp.all(jnp.isfinite(g))) for g in grads)


def test_mixed_dtypes_follow_torch():
    a32 = A.astype(jnp.float32)
    assert triplet_margin_loss(a32, P, N).dtype == jnp.float64
    assert cosine_embedding_loss(a32, P, S).dtype == jnp.float64
    assert margin_ranking_loss(a32[:, 0], a32[:, 1], S.astype(jnp.float64)).dtype == jnp.float64
    assert margin_ranking_loss(a32[:, 0], a32[:, 1], S).dtype == jnp.float32
    assert hinge_embedding_loss(a32[:, 0], S.astype(jnp.float64)).dtype == jnp.float32


@pytest.mark.parametrize("name", ["cosine_embedding_loss", "triplet_margin_loss"])
def test_jit_and_vmap_over_unbatched_pairs(name):
    fn = {"cosine_embedding_loss": lambda a, p, n, s: cosine_embedding_loss(a, p, s),
          "triplet_margin_loss": lambda a, p, n, s: triplet_margin_loss(a, p, n)}[name]
    batched = fn(A, P, N, S)
    np.testing.assert_allclose(jax.jit(fn)(A, P, N, S), batched, rtol=1e-14)
    per_pair = jax.vmap(fn)(A, P, N, S)  # the unbatched (D,) form with a 0-d target
    np.testing.assert_allclose(jnp.mean(per_pair), batched, rtol=1e-14)


def test_traced_margins():
    f = jax.jit(lambda m: (hinge_embedding_loss(A[:, 0], S, margin=m),
                           margin_ranking_loss(A[:, 0], P[:, 0], S, margin=m),
                           cosine_embedding_loss(A, P, S, margin=m - 0.5),
                           triplet_margin_loss(A, P, N, margin=m, eps=m * 1e-6)))
    out = f(0.7)
    np.testing.assert_allclose(out[0], hinge_embedding_loss(A[:, 0], S, margin=0.7), rtol=1e-14)
    np.testing.assert_allclose(out[1], margin_ranking_loss(A[:, 0], P[:, 0], S, margin=0.7),
                               rtol=1e-14)
    np.testing.assert_allclose(out[2], cosine_embedding_loss(A, P, S, margin=0.7 - 0.5),
                               rtol=1e-14)
    np.testing.assert_allclose(out[3], triplet_margin_loss(A, P, N, margin=0.7, eps=0.7e-6),
                               rtol=1e-14)


# --- pairwise_distance, triplet_margin_with_distance_loss -----------------------------------

@pytest.mark.parametrize("p", [1, 2, 3, 1.5], ids=lambda p: f"p{p}")
def test_pairwise_distance_formula_keepdim_and_broadcast(p):
    np.testing.assert_allclose(pairwise_distance(A, P, p=p), _torch_distance(A, P, p),
                               rtol=1e-12)
    assert pairwise_distance(A, P, keepdim=True).shape == (5, 1)
    row = _torch_distance(np.asarray(A), np.asarray(P[0]), p)
    np.testing.assert_allclose(pairwise_distance(A, P[0], p=p), row,
                               rtol=1e-12)  # a row against a batch, as torch broadcasts
    assert pairwise_distance(A[0], P[0]).shape == ()
    np.testing.assert_allclose(pairwise_distance(jnp.asarray(1.0), jnp.asarray(3.0)),
                               2.0 - 1e-6, rtol=1e-15)  # 0-d: |x1 - x2 + eps| (torch)


def test_triplet_with_default_distance_is_triplet_margin_loss():
    """torch's default distance is PairwiseDistance() (p=2, eps=1e-6): values and gradients
    equal triplet_margin_loss's (which the reference data checks against torch)."""
    for swap in (False, True):
        for reduction in ("none", "mean", "sum"):
            ours = triplet_margin_with_distance_loss(A, P, N, margin=1.5, swap=swap,
                                                     reduction=reduction)
            theirs = triplet_margin_loss(A, P, N, margin=1.5, swap=swap, reduction=reduction)
            np.testing.assert_allclose(ours, theirs, rtol=1e-15)
    g = jax.grad(lambda a: triplet_margin_with_distance_loss(a, P, N, margin=1.5))(A)
    np.testing.assert_allclose(g, jax.grad(lambda a: triplet_margin_loss(a, P, N, margin=1.5))(A),
                               rtol=1e-15)


def _l1(x, y):
    return jnp.sum(jnp.abs(x - y), axis=-1)


def test_triplet_with_a_custom_distance():
    d_ap, d_an, d_pn = (np.sum(np.abs(np.asarray(u - v)), -1) for u, v in ((A, P), (A, N), (P, N)))
    out = triplet_margin_with_distance_loss(A, P, N, distance_function=_l1, margin=2.0,
                                            reduction="none")
    np.testing.assert_allclose(out, np.maximum(d_ap - d_an + 2.0, 0), rtol=1e-14)
    out = triplet_margin_with_distance_loss(A, P, N, distance_function=_l1, margin=2.0,
                                            swap=True, reduction="sum")
    np.testing.assert_allclose(out, np.sum(np.maximum(d_ap - np.minimum(d_an, d_pn) + 2.0, 0)),
                               rtol=1e-14)


def test_triplet_with_distance_under_jit_vmap_and_as_a_class():
    loss = TripletMarginWithDistanceLoss(distance_function=_l1, margin=2.0, swap=True)
    expected = triplet_margin_with_distance_loss(A, P, N, distance_function=_l1, margin=2.0,
                                                 swap=True)
    np.testing.assert_allclose(jax.jit(loss)(A, P, N), expected, rtol=1e-15)
    per_row = jax.vmap(lambda a, p, n: loss(a, p, n))(A, P, N)
    assert per_row.shape == (5,)
    np.testing.assert_allclose(jnp.mean(per_row), expected, rtol=1e-14)
    assert loss.margin == 2.0 and loss.distance_function is _l1
    assert triplet_margin_with_distance_loss(A.astype(jnp.float32), P.astype(jnp.float32),
                                             N.astype(jnp.float32)).dtype == jnp.float32
    assert triplet_margin_with_distance_loss(A.astype(jnp.bfloat16), P.astype(jnp.bfloat16),
                                             N.astype(jnp.bfloat16)).dtype == jnp.bfloat16


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    (dict(margin=0.0), ValueError, "margin must be greater than 0, got 0.0"),
    (dict(negative=jnp.ones(4)), ValueError, "anchor 2D, positive 2D and negative 1D"),
    (dict(distance_function="l1"), TypeError, "distance_function must be callable"),
    (dict(anchor=jnp.ones((5, 4), jnp.int32)), TypeError, "anchor must be a floating"),
    (dict(reduction="avg"), ValueError, "avg is not a valid value for reduction"),
], ids=["margin0", "ndim", "not-callable", "int-anchor", "reduction"])
def test_triplet_with_distance_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        triplet_margin_with_distance_loss(
            **{"anchor": A, "positive": P, "negative": N, **kwargs})


def test_triplet_with_distance_class_checks_at_construction():
    with pytest.raises(ValueError, match="TripletMarginWithDistanceLoss: expected margin to be "
                                         "greater than 0, got -1.0 instead"):
        TripletMarginWithDistanceLoss(margin=-1.0)
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        TripletMarginWithDistanceLoss(reduction="avg")
    with pytest.raises(TypeError):
        TripletMarginWithDistanceLoss(_l1)  # keyword-only, as torch's
