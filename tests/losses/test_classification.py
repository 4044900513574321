"""Classification losses: bad input, out-of-range targets, all-ignored gradients, dtypes,
jit/vmap, and the optax cross-checks (agreements and the documented differences).

Values against torch are in test_reference.py (committed data) and
test_live_torch_classification.py (live, marker ``torch``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.special import softmax

from fnlearn import losses
from fnlearn.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    check_targets,
    cross_entropy,
    multi_margin_loss,
    multilabel_margin_loss,
    multilabel_soft_margin_loss,
    nll_loss,
    soft_margin_loss,
)
from tests._tiers import one_in

# numpy first, then device arrays: module-level jnp work would compile programs at collection
RNG = np.random.default_rng(0)
_x = RNG.standard_normal((4, 5))
_p = RNG.uniform(0.05, 0.95, (4, 5))
X = jnp.asarray(_x)  # logits (N, C) = (4, 5)
P = jnp.asarray(_p)  # probabilities
Y = jnp.array([0, 3, 1, 4])  # class indices
W = jnp.asarray(RNG.uniform(0.5, 2.0, 5))  # class weights
SOFT = jnp.asarray(softmax(RNG.standard_normal((4, 5)), axis=1))
SIGNS = jnp.asarray(RNG.choice([-1.0, 1.0], (4, 5)))
_ml = np.array([[3, 0, -1, 1, 2], [1, -1, 0, 0, 0], [4, 3, 2, 1, 0], [-1, 0, 0, 0, 0]])
ML = jnp.asarray(_ml)


def _zeros(shape, dtype=np.float64):
    return jnp.asarray(np.zeros(shape, dtype))


def _ones(shape, dtype=np.float64):
    return jnp.asarray(np.ones(shape, dtype))


def _close(a, b, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol,
                               atol=atol)


# --------------------------------------------------------------------------------------------
# Bad input raises at trace time, naming the argument
# --------------------------------------------------------------------------------------------

BAD = [
    ("ce-float-index-target", cross_entropy, (X, jnp.array([0.0, 1.0, 2.0, 3.0])), {},
     TypeError, "target"),
    ("ce-integer-probability-target", cross_entropy, (X, _zeros((4, 5), jnp.int32)), {},
     TypeError, "target"),
    ("ce-bool-target", cross_entropy, (X, jnp.array([True, False, True, True])), {},
     TypeError, "target"),
    ("ce-weight-wrong-length", cross_entropy, (X, Y), dict(weight=_ones(3)),
     ValueError, "weight"),
    ("ce-weight-2d", cross_entropy, (X, Y), dict(weight=_ones((5, 1))), ValueError, "weight"),
    ("ce-integer-weight", cross_entropy, (X, Y), dict(weight=_ones(5, jnp.int32)),
     TypeError, "weight"),
    ("ce-batch-mismatch", cross_entropy, (X, jnp.array([0, 1])), {}, ValueError, "batch_size"),
    ("ce-spatial-mismatch", cross_entropy, (_zeros((2, 5, 3, 4)), _zeros((2, 2, 4), int)),
     {}, ValueError, "spatial"),
    ("ce-target-extra-dim", cross_entropy, (X, _zeros((4, 1), int)), {}, ValueError, "target"),
    ("ce-unbatched-target-of-shape-2", cross_entropy, (jnp.asarray(_x[0]), jnp.array([1, 2])), {},
     ValueError, "target"),
    ("ce-scalar-input", cross_entropy, (jnp.float32(1.0), jnp.int32(0)), {}, ValueError, "input"),
    ("ce-integer-input", cross_entropy, (_zeros((4, 5), int), Y), {}, TypeError, "input"),
    ("ce-label-smoothing-above-1", cross_entropy, (X, Y), dict(label_smoothing=1.5),
     ValueError, "label_smoothing"),
    ("ce-label-smoothing-negative", cross_entropy, (X, Y), dict(label_smoothing=-0.1),
     ValueError, "label_smoothing"),
    ("ce-probabilities-with-ignore-index", cross_entropy, (X, SOFT), dict(ignore_index=3),
     ValueError, "ignore_index"),
    ("ce-float-ignore-index", cross_entropy, (X, Y), dict(ignore_index=1.0),
     TypeError, "ignore_index"),
    ("ce-bad-reduction", cross_entropy, (X, Y), dict(reduction="avg"),
     ValueError, "avg is not a valid value for reduction"),
    ("nll-float-target", nll_loss, (X, _zeros(4)), {}, TypeError, "target"),
    ("nll-probability-shaped-target", nll_loss, (X, _zeros((4, 5), int)), {},
     ValueError, "target"),
    ("nll-weight-wrong-length", nll_loss, (X, Y), dict(weight=_ones(6)), ValueError, "weight"),
    ("nll-batch-mismatch", nll_loss, (X, _zeros(6, int)), {}, ValueError, "batch_size"),
    ("nll-spatial-mismatch", nll_loss, (_zeros((2, 5, 3)), _zeros((2, 4), int)), {},
     ValueError, "spatial"),
    ("bce-shape-mismatch", binary_cross_entropy, (P, jnp.asarray(_p[:, :1])), {},
     ValueError, "target"),
    ("bce-integer-target", binary_cross_entropy, (P, _ones((4, 5), int)), {},
     TypeError, "target"),
    ("bce-weight-enlarges-shape", binary_cross_entropy, (P, P), dict(weight=_ones((3, 4, 5))),
     ValueError, "weight"),
    ("bce-weight-not-broadcastable", binary_cross_entropy, (P, P), dict(weight=_ones(4)),
     ValueError, "weight"),
    ("bce-bad-reduction", binary_cross_entropy, (P, P), dict(reduction="elementwise"),
     ValueError, "reduction"),
    ("bcelogits-shape-mismatch", binary_cross_entropy_with_logits, (X, jnp.asarray(_p[0])), {},
     ValueError, "target"),
    ("bcelogits-pos-weight-wrong-length", binary_cross_entropy_with_logits, (X, P),
     dict(pos_weight=_ones(3)), ValueError, "pos_weight"),
    ("bcelogits-weight-wrong-shape", binary_cross_entropy_with_logits, (X, P),
     dict(weight=_ones((2, 4, 5))), ValueError, "weight"),
    ("bcelogits-integer-target", binary_cross_entropy_with_logits, (X, _ones((4, 5), int)),
     {}, TypeError, "target"),
    ("softmargin-target-not-broadcastable", soft_margin_loss, (X, _ones(3)), {},
     ValueError, "target"),
    ("softmargin-target-larger-than-input", soft_margin_loss, (jnp.asarray(_x[0]), SIGNS), {},
     ValueError, "target"),
    ("multilabelsoftmargin-scalar-input", multilabel_soft_margin_loss,
     (jnp.float32(1.0), jnp.float32(1.0)), {}, ValueError, "input"),
    ("multilabelsoftmargin-weight-wrong-length", multilabel_soft_margin_loss, (X, P),
     dict(weight=_ones(3)), ValueError, "weight"),
    ("multimargin-p-3", multi_margin_loss, (X, Y), dict(p=3), ValueError, "p == 1 and p == 2"),
    ("multimargin-weight-2d", multi_margin_loss, (X, Y), dict(weight=_ones((5, 1))),
     ValueError, "weight"),
    ("multimargin-weight-wrong-length", multi_margin_loss, (X, Y), dict(weight=_ones(3)),
     ValueError, "weight"),
    ("multimargin-batch-mismatch", multi_margin_loss, (X, jnp.array([1, 2])), {},
     ValueError, "target"),
    ("multimargin-float-target", multi_margin_loss, (X, _zeros(4)), {}, TypeError, "target"),
    ("multimargin-3d-input", multi_margin_loss, (_zeros((2, 3, 5)), _zeros(2, int)), {},
     ValueError, "input"),
    ("multilabelmargin-target-shape", multilabel_margin_loss, (X, jnp.asarray(_ml[:, :3])), {},
     ValueError, "target"),
    ("multilabelmargin-float-target", multilabel_margin_loss, (X, _zeros((4, 5))), {},
     TypeError, "target"),
]


@pytest.mark.parametrize(("fn", "args", "kwargs", "exc", "match"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_input_raises_at_trace_time(fn, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        jax.jit(lambda *a: fn(*a, **kwargs))(*args)


def test_label_smoothing_bounds_are_inclusive():
    for e in (0.0, 1.0):
        assert np.isfinite(cross_entropy(X, Y, label_smoothing=e))


# --------------------------------------------------------------------------------------------
# Out-of-range class indices: nan (value and that sample's gradient), eager checker
# --------------------------------------------------------------------------------------------


def _jit(fn, **kw):
    """``fn`` under jit: values are tracers, nothing can raise."""
    return jax.jit(lambda *a: fn(*a, **kw))


def test_out_of_range_targets_raise_eagerly_as_torch():
    t = jnp.array([0, 5, -1, -100])
    for fn in (cross_entropy, nll_loss):
        with pytest.raises(IndexError, match=r"^Target 5 is out of bounds\.$"):
            fn(X, t)
        with pytest.raises(IndexError, match=r"^Target -1 is out of bounds\.$"):
            fn(X, t.at[1].set(0))
        with pytest.raises(IndexError, match="Target -100 is out of bounds"):
            fn(X, jnp.array([0, 1, 2, -100]), ignore_index=2)
        with pytest.raises(IndexError, match="Target 5 is out of bounds"):  # eager grad
            jax.grad(lambda x, fn=fn: fn(x, t))(X)
        fn(X, t.at[1].set(0).at[2].set(1))  # ignore_index is not checked
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):  # spatial
        cross_entropy(jnp.zeros((2, 3, 2)), jnp.array([[0, 1], [3, 2]]))
    with pytest.raises(RuntimeError, match="^target out of range$"):
        multi_margin_loss(X, jnp.array([0, 5, 2, 1]))
    with pytest.raises(RuntimeError, match="^argument #2 'target' is out of range$"):
        multilabel_margin_loss(X, ML.at[1, 4].set(5))


def test_out_of_range_targets_give_nan_under_jit_not_a_finite_number():
    t = jnp.array([0, 5, -1, -100])  # valid, too large, negative (not ignored), ignored
    for fn in (cross_entropy, nll_loss):
        for kw in ({}, dict(weight=W)):
            none = np.asarray(jax.jit(lambda x, t, fn=fn, kw=kw: fn(x, t, reduction="none",
                                                                   **kw))(X, t))
            assert np.isfinite(none[0]) and np.isnan(none[1]) and np.isnan(none[2])
            assert none[3] == 0
            for r in ("mean", "sum"):
                assert np.isnan(_jit(fn, reduction=r, **kw)(X, t)), (fn.__name__, kw, r)
            g = np.asarray(jax.jit(jax.grad(lambda x, t, fn=fn, kw=kw: fn(x, t, **kw)))(X, t))
            # nan reaches the bad sample's gradient (all of its logits through log_softmax,
            # the gathered entry for nll_loss), never another sample's.
            assert np.isfinite(g[0]).all() and np.isnan(g[1]).any() and np.isnan(g[2]).any()
            assert (g[3] == 0).all()
    # With label smoothing too (the smoothing term alone would be finite).
    assert np.isnan(_jit(cross_entropy, label_smoothing=1.0, reduction="none")(X, t)[1])
    # ignore_index set to a real class: -100 is no longer ignored and is out of range.
    assert np.isnan(_jit(cross_entropy, ignore_index=2)(X, jnp.array([0, 1, 2, -100])))
    # Spatial input: one bad pixel poisons its entry only.
    x3, t3 = jnp.zeros((2, 3, 2)), jnp.array([[0, 1], [3, 2]])
    _close(np.isnan(_jit(cross_entropy, reduction="none")(x3, t3)), [[False, False],
                                                                     [True, False]])


def test_margin_losses_out_of_range_targets_give_nan_under_jit():
    l = _jit(multi_margin_loss, reduction="none")(X, jnp.array([0, 5, 2, -1]))
    _close(np.isnan(l), [False, True, False, True])
    g = np.asarray(jax.jit(jax.grad(lambda x: multi_margin_loss(x, jnp.array([0, 5, 2, 1]))))(X))
    assert np.isnan(g[1]).any() and np.isfinite(g[[0, 2, 3]]).all()
    # multilabel: a value outside [-1, C) anywhere in a row (even after the first -1).
    t = ML.at[1, 4].set(5).at[2, 0].set(-2)
    l = _jit(multilabel_margin_loss, reduction="none")(X, t)
    _close(np.isnan(l), [False, True, True, False])


def test_bce_values_outside_unit_interval_raise_eagerly_and_give_nan_under_jit():
    x = jnp.array([0.5, 1.5, -0.1, 0.5])
    y = jnp.array([0.5, 0.5, 0.5, 1.2])
    msg = r"^all elements of {} should be between 0 and 1"
    with pytest.raises(RuntimeError, match=msg.format("input")):
        binary_cross_entropy(x, y)
    with pytest.raises(RuntimeError, match=msg.format("input")):  # eager grad: values known
        jax.grad(lambda x: binary_cross_entropy(x, y))(x)
    with pytest.raises(RuntimeError, match=msg.format("target")):
        binary_cross_entropy(y.at[3].set(0.5), y)
    with pytest.raises(RuntimeError, match=msg.format("input")):  # nan fails torch's check
        binary_cross_entropy(x.at[1].set(jnp.nan), y)
    l = jax.jit(lambda x, y: binary_cross_entropy(x, y, reduction="none"))(x, y)
    _close(np.isnan(l), [False, True, True, True])
    g = jax.jit(jax.grad(binary_cross_entropy))(x, y)  # y traced too: a constant is checked
    _close(np.isnan(g), [False, True, True, True])


def test_check_targets_raises_like_torch():
    with pytest.raises(IndexError, match=r"^Target 5 is out of bounds\.$"):
        check_targets(X, jnp.array([0, 5, 1, -100]))
    with pytest.raises(IndexError, match=r"^Target -1 is out of bounds\.$"):
        check_targets(X, jnp.array([0, -1, 1, -100]))
    with pytest.raises(IndexError, match="Target -100 is out of bounds"):
        check_targets(X, jnp.array([0, 1, 1, -100]), ignore_index=None)
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):  # class axis 1
        check_targets(jnp.zeros((2, 3, 7)), jnp.array([[0, 1, 2, 3, 0, 0, 0]] * 2))
    with pytest.raises(IndexError, match="Target 5 is out of bounds"):  # unbatched
        check_targets(X[0], jnp.array(5))
    with pytest.raises(ValueError, match="batch_size"):
        check_targets(X, jnp.array([0, 1]))
    with pytest.raises(TypeError, match="target"):
        check_targets(X, jnp.zeros(4))
    with pytest.raises(TypeError, match="concrete"):
        jax.jit(lambda t: check_targets(X, t))(Y)
    assert check_targets(X, jnp.array([0, 4, 2, -100])) is None
    assert check_targets(X, jnp.array([0, 4, 2, 7]), ignore_index=7) is None
    assert check_targets(np.zeros((4, 5)), np.array([0, 4, 2, 1])) is None


# --------------------------------------------------------------------------------------------
# The weighted mean, all targets ignored, smoothing
# --------------------------------------------------------------------------------------------


def test_all_ignored_mean_is_nan_with_zero_gradient():
    t = jnp.full(4, -100)
    configs = [
        (cross_entropy, {}),
        (cross_entropy, dict(weight=W)),
        (cross_entropy, dict(weight=W, label_smoothing=0.3)),
        (nll_loss, dict(weight=W)),
    ]
    for fn, kw in configs:
        value, g = jax.jit(jax.value_and_grad(lambda x, fn=fn, kw=kw: fn(x, t, **kw)))(X)
        assert np.isnan(value), (fn.__name__, kw)
        assert np.array_equal(g, np.zeros_like(g)), (fn.__name__, kw)
        total, none = jax.jit(lambda x, fn=fn, kw=kw: (fn(x, t, reduction="sum", **kw),
                                                      fn(x, t, reduction="none", **kw)))(X)
        assert total == 0 and np.array_equal(none, np.zeros(4))
    # Spatial, ignore_index set to a real class.
    x3, t3 = jnp.asarray(RNG.standard_normal((2, 3, 2))), jnp.full((2, 2), 1)
    value, g = jax.jit(jax.value_and_grad(lambda x: cross_entropy(x, t3, ignore_index=1)))(x3)
    assert np.isnan(value) and not np.any(g)


def test_zero_total_weight_without_ignoring_is_nan_like_torch():
    # Not all ignored, but the present classes weigh 0: torch gives 0/0 = nan, gradient nan.
    w = jnp.array([0.0, 1.0, 1.0, 1.0, 1.0])
    value, g = jax.value_and_grad(lambda x: cross_entropy(x, jnp.zeros(4, int), weight=w))(X)
    assert np.isnan(value) and np.isnan(g).all()


def test_weighted_mean_divides_by_summed_weight_of_non_ignored_targets():
    t = jnp.array([0, -100, 1, 4])
    lp = jax.nn.log_softmax(X, axis=1)
    nll = -lp[jnp.arange(4), jnp.maximum(t, 0)]
    keep = t != -100
    w_t = W[jnp.maximum(t, 0)]
    expected = jnp.sum(jnp.where(keep, w_t * nll, 0)) / jnp.sum(jnp.where(keep, w_t, 0))
    _close(cross_entropy(X, t, weight=W), expected)
    # Smoothing: the smoothing term shares the same denominator (pytorch#104776).
    e = 0.2
    smooth = -jnp.sum(lp * W[None, :], axis=1)
    expected = ((1 - e) * jnp.sum(jnp.where(keep, w_t * nll, 0))
                + e / 5 * jnp.sum(jnp.where(keep, smooth, 0))) / jnp.sum(jnp.where(keep, w_t, 0))
    _close(cross_entropy(X, t, weight=W, label_smoothing=e), expected)
    # Probability targets: the weighted mean is the plain mean over N.
    _close(cross_entropy(X, SOFT, weight=W),
           jnp.mean(cross_entropy(X, SOFT, weight=W, reduction="none")))


def test_traced_label_smoothing_and_margin():
    f = jax.jit(lambda e: cross_entropy(X, Y, weight=W, label_smoothing=e))
    _close(f(0.1), cross_entropy(X, Y, weight=W, label_smoothing=0.1))
    _close(f(0.0), cross_entropy(X, Y, weight=W))
    d = jax.grad(lambda e: cross_entropy(X, Y, label_smoothing=e))(0.1)
    assert np.isfinite(d)
    g = jax.jit(lambda m: multi_margin_loss(X, Y, margin=m))
    _close(g(0.5), multi_margin_loss(X, Y, margin=0.5))


def test_legacy_size_average_and_reduce_override_reduction():
    with pytest.warns(UserWarning, match="reduction='sum'"):
        out = cross_entropy(X, Y, size_average=False)
    _close(out, cross_entropy(X, Y, reduction="sum"))
    with pytest.warns(UserWarning, match="reduction='none'"):
        out = binary_cross_entropy(P, P, reduce=False)
    _close(out, binary_cross_entropy(P, P, reduction="none"))


# --------------------------------------------------------------------------------------------
# Gradients: torch's BCE gradient, finite at extreme logits, forward mode
# --------------------------------------------------------------------------------------------


def test_bce_gradient_is_torchs_formula():
    x = jnp.array([0.0, 1.0, 1e-50, 0.3, 0.0])
    y = jnp.array([1.0, 0.0, 1.0, 0.2, 0.0])
    total = lambda x, y: binary_cross_entropy(x, y, reduction="sum")  # noqa: E731

    @jax.jit  # one compile for all four derivatives, not one per op
    def derivatives(x, y, p):
        # forward mode and second order go through the same custom rule
        return (jax.grad(total)(x, y), jax.grad(total, argnums=1)(x, y),
                jax.jacfwd(total)(x, y), jax.hessian(binary_cross_entropy)(p, p))

    g, gy, g_fwd, hessian = derivatives(x, y, P[0])
    xn, yn = np.asarray(x), np.asarray(y)
    eps = float(np.float32(1e-12))
    _close(g, (xn - yn) / np.maximum(xn * (1 - xn), eps), rtol=1e-15)
    assert g[0] < -9e11 and g[1] > 9e11 and g[4] == 0
    _close(gy[2:4], np.log1p(-xn[2:4]) - np.log(xn[2:4]))
    _close(g_fwd, g, rtol=1e-15)
    assert np.isfinite(hessian).all()


@pytest.mark.parametrize("dtype", one_in(2, 1, ["float32", "bfloat16"]))
def test_extreme_logits_give_finite_loss_and_gradient(dtype):
    x = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype)
    y = jnp.array([[1.0, 0.0, 0.5], [1.0, 1.0, 0.0]], dtype)
    fns = [
        lambda x: binary_cross_entropy_with_logits(x, y, pos_weight=jnp.ones(3, dtype) * 2),
        lambda x: cross_entropy(x, jnp.array([1, 0]), label_smoothing=0.1),
        lambda x: cross_entropy(x, y),
        lambda x: soft_margin_loss(x, jnp.sign(y - 0.5)),
        lambda x: multilabel_soft_margin_loss(x, y),
    ]
    for f in fns:
        value, g = jax.jit(jax.value_and_grad(f))(x)
        assert np.isfinite(np.asarray(value, np.float32)) and np.isfinite(
            np.asarray(g, np.float32)).all()


@pytest.mark.parametrize(("shape", "dtype"), one_in(3, 1, [
    pytest.param(shape, dtype, id=f"{'x'.join(map(str, shape))}-{dtype}")
    for shape in [(5,), (16, 7), (4, 3, 2, 5)] for dtype in ["float32", "float64"]]))
def test_cross_entropy_is_log_softmax_then_gather_bit_for_bit(shape, dtype):
    """cross_entropy never materializes log_softmax, yet computes the same floats as
    ``-take(log_softmax(x))`` (what torch computes), including confident predictions where
    ``logsumexp(x) - x_y`` would cancel."""
    rng = np.random.default_rng(0)
    axis = 0 if len(shape) == 1 else 1
    c = shape[axis]
    y = rng.integers(0, c, () if len(shape) == 1 else (shape[0], *shape[2:]))
    # about half the positions confident: the target's logit 40 above the others
    confident = np.expand_dims((rng.random(y.shape) < 0.5) | (y.ndim == 0), axis)
    x = np.moveaxis(rng.standard_normal(shape) * 3, axis, -1)
    x = np.moveaxis(x + 40 * (np.arange(c) == y[..., None]) * np.moveaxis(confident, axis, -1),
                    -1, axis)
    x, y = jnp.asarray(x, dtype), jnp.asarray(y)
    lp = jax.nn.log_softmax(jnp.moveaxis(x, axis, -1), axis=-1)
    want = -jnp.take_along_axis(lp, y[..., None], axis=-1)[..., 0]
    got = cross_entropy(x, y, reduction="none")
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert (np.asarray(got) < 1e-12).any() and (np.asarray(got) > 1e-3).any() | (y.ndim == 0)


def test_soft_margin_is_stable_where_torch_overflows():
    # torch computes log1p(exp(-y x)): inf at -y x = 1e4; the softplus here gives 1e4.
    _close(soft_margin_loss(jnp.array([-1e4]), jnp.array([1.0]), reduction="none"), [1e4])


# --------------------------------------------------------------------------------------------
# dtypes, jit, vmap
# --------------------------------------------------------------------------------------------

CALLS = {
    "binary_cross_entropy": lambda x, d: binary_cross_entropy(
        jax.nn.sigmoid(x), P.astype(d), weight=W.astype(d)),
    "binary_cross_entropy_with_logits": lambda x, d: binary_cross_entropy_with_logits(
        x, P.astype(d), pos_weight=W.astype(d)),
    "cross_entropy": lambda x, d: cross_entropy(x, Y, weight=W.astype(d), label_smoothing=0.1),
    "cross_entropy_probs": lambda x, d: cross_entropy(x, SOFT.astype(d)),
    "nll_loss": lambda x, d: nll_loss(jax.nn.log_softmax(x, axis=1), Y.at[1].set(-100)),
    "soft_margin_loss": lambda x, d: soft_margin_loss(x, SIGNS.astype(d)),
    "multilabel_soft_margin_loss": lambda x, d: multilabel_soft_margin_loss(
        x, (SIGNS > 0).astype(d), weight=W.astype(d)),
    "multi_margin_loss": lambda x, d: multi_margin_loss(x, Y, p=2, weight=W.astype(d)),
    "multilabel_margin_loss": lambda x, d: multilabel_margin_loss(x, ML),
}


@pytest.mark.parametrize("dtype", one_in(3, 2, ["float64", "float32", "bfloat16"]))
def test_result_dtype_and_gradient_dtype(dtype):
    x = X.astype(dtype)
    for name, call in CALLS.items():
        value, g = jax.jit(jax.value_and_grad(lambda x, call=call: call(x, dtype)))(x)
        assert value.dtype == jnp.dtype(dtype), name
        assert g.dtype == jnp.dtype(dtype), name
        if dtype != "float64":  # lower precision agrees with float64 to its own precision
            ref = jax.jit(call, static_argnums=1)(X, "float64")
            tol = 2e-2 if dtype == "bfloat16" else 1e-5
            _close(value, ref, rtol=tol, atol=tol)


def test_unreduced_dtype_follows_widest_floating_argument():
    # torch promotes a float64 target with a float32 input where its composite ops do.
    # (eval_shape: the dtypes are decided at trace time, no program needs compiling)
    x32 = jax.ShapeDtypeStruct(X.shape, jnp.float32)
    out = jax.eval_shape(binary_cross_entropy_with_logits, x32, P)
    assert out.dtype == jnp.float64
    assert jax.eval_shape(cross_entropy, x32, SOFT).dtype == jnp.float64
    assert jax.eval_shape(lambda x: cross_entropy(x, Y, weight=W), x32).dtype == jnp.float32


@pytest.mark.parametrize("name", one_in(3, 0, CALLS))  # all of them in the exhaustive tier
def test_jit_equals_eager_and_vmap_equals_loop(name):
    xs = RNG.standard_normal((3, 4, 5))
    f = lambda x: CALLS[name](x, "float64")  # noqa: E731
    jf = jax.jit(f)
    _close(jf(X), f(X), rtol=1e-14)
    _close(jax.jit(jax.vmap(f))(xs), np.stack([jf(x) for x in xs]), rtol=1e-14, atol=1e-14)


def test_vmap_over_targets_with_none_and_spatial_shapes():
    xs = RNG.standard_normal((3, 4, 5))
    ts = RNG.integers(0, 5, (3, 4))
    f = lambda x, t: cross_entropy(x, t, weight=W, reduction="none")  # noqa: E731
    jf = jax.jit(f)  # one program for the loop, one for vmap, not one per op
    _close(jax.jit(jax.vmap(f))(xs, ts),
           np.stack([jf(x, t) for x, t in zip(xs, ts, strict=True)]))


def test_class_index_target_dtypes():
    for dt in ("int8", "uint8", "int32", "int64"):
        _close(cross_entropy(X, Y.astype(dt), weight=W), cross_entropy(X, Y, weight=W))


def test_all_classification_losses_are_exported():
    for name in ("binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
                 "nll_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
                 "multi_margin_loss", "multilabel_margin_loss", "check_targets"):
        assert name in losses.__all__ and callable(getattr(losses, name))


# --------------------------------------------------------------------------------------------
# optax: the same numbers where it computes the same thing ...
# --------------------------------------------------------------------------------------------


def test_optax_sigmoid_binary_cross_entropy_equals_bce_with_logits_none():
    _close(binary_cross_entropy_with_logits(X, P, reduction="none"),
           optax.losses.sigmoid_binary_cross_entropy(X, P), rtol=1e-14)
    # and, away from 0 and 1, probability-space BCE on sigmoid(x)
    _close(binary_cross_entropy(jax.nn.sigmoid(X), P, reduction="none"),
           optax.losses.sigmoid_binary_cross_entropy(X, P), rtol=1e-12)


def test_optax_integer_label_cross_entropy_equals_unweighted_none():
    x3 = jnp.asarray(RNG.standard_normal((2, 5, 3)))
    t3 = jnp.asarray(RNG.integers(0, 5, (2, 3)))

    @jax.jit  # one compile for both sides, not one per op
    def both(x3, t3, x, y):
        return ((cross_entropy(x3, t3, reduction="none"),
                 optax.losses.softmax_cross_entropy_with_integer_labels(x3, t3, axis=1)),
                (cross_entropy(x, y),
                 optax.losses.softmax_cross_entropy_with_integer_labels(x, y).mean()))

    for ours, theirs in both(x3, t3, X, Y):
        _close(ours, theirs, rtol=1e-14)


def test_optax_softmax_cross_entropy_equals_probability_targets():
    _close(cross_entropy(X, SOFT, reduction="none"),
           optax.losses.softmax_cross_entropy(X, SOFT), rtol=1e-14)


def test_optax_smooth_labels_equals_torch_label_smoothing_without_weight():
    e = 0.2
    smoothed = optax.smooth_labels(jax.nn.one_hot(Y, 5, dtype=X.dtype), e)
    _close(cross_entropy(X, Y, label_smoothing=e, reduction="none"),
           optax.losses.softmax_cross_entropy(X, smoothed), rtol=1e-14)
    _close(cross_entropy(X, SOFT, label_smoothing=e, reduction="none"),
           optax.losses.softmax_cross_entropy(X, optax.smooth_labels(SOFT, e)), rtol=1e-14)


def test_optax_equivalents_of_the_soft_margin_losses():
    _close(soft_margin_loss(X, SIGNS, reduction="none"),
           optax.losses.sigmoid_binary_cross_entropy(SIGNS * X, jnp.ones_like(X)), rtol=1e-14)
    _close(multilabel_soft_margin_loss(X, P, reduction="none"),
           optax.losses.sigmoid_binary_cross_entropy(X, P).mean(-1), rtol=1e-14)


# --------------------------------------------------------------------------------------------
# ... and tests that the documented differences exist, with their reason
# --------------------------------------------------------------------------------------------


def test_optax_integer_labels_have_no_ignore_index_and_give_nan_for_minus_100():
    # optax has no ignore_index: the conventional -100 padding label is out of range -> nan.
    t = Y.at[1].set(-100)
    optax_l = optax.losses.softmax_cross_entropy_with_integer_labels(X, t)
    assert np.isnan(optax_l[1])
    ours = cross_entropy(X, t, reduction="none")
    assert ours[1] == 0 and np.isfinite(cross_entropy(X, t))
    # Out-of-range labels: optax's is nan even eagerly (optax#1185); ours raises torch's
    # IndexError on concrete arrays and is nan only under jit, where nothing can raise.
    assert np.isnan(optax.losses.softmax_cross_entropy_with_integer_labels(X, Y.at[0].set(5))[0])
    with pytest.raises(IndexError, match=r"^Target 5 is out of bounds\.$"):
        cross_entropy(X, Y.at[0].set(5), reduction="none")
    jitted = jax.jit(lambda x, y: cross_entropy(x, y, reduction="none"))
    assert np.isnan(jitted(X, Y.at[0].set(5))[0])


def test_optax_has_no_class_weight_so_the_weighted_mean_differs():
    # torch's weighted mean sum(w_y l) / sum(w_y) is not the mean of optax's per-sample loss.
    plain = optax.losses.softmax_cross_entropy_with_integer_labels(X, Y).mean()
    weighted = cross_entropy(X, Y, weight=W)
    assert abs(float(weighted - plain)) > 1e-3
    w_y = W[Y]
    _close(weighted, jnp.sum(w_y * optax.losses.softmax_cross_entropy_with_integer_labels(X, Y))
           / jnp.sum(w_y), rtol=1e-14)


def test_optax_sigmoid_bce_on_logit_has_no_log_clamp():
    # probability 0 with target 1: torch (and fnlearn) clamp the log at -100; optax via the
    # logit gives inf.
    p, y = jnp.array([0.0, 1.0]), jnp.array([1.0, 0.0])
    _close(binary_cross_entropy(p, y, reduction="none"), [100.0, 100.0])
    optax_l = optax.losses.sigmoid_binary_cross_entropy(jnp.log(p) - jnp.log1p(-p), y)
    assert not np.isfinite(optax_l).any()


def test_optax_multiclass_hinge_loss_is_a_different_loss():
    # optax: Crammer-Singer, max_j (x_j + 1 - [j = y]) - x_y; torch: mean over j != y of hinges.
    optax_l = optax.losses.multiclass_hinge_loss(X, Y)
    ours = multi_margin_loss(X, Y, reduction="none")
    assert np.max(np.abs(np.asarray(optax_l - ours))) > 0.1
    x_y = X[jnp.arange(4), Y]
    hinge = jnp.maximum(0, 1 - x_y[:, None] + X).at[jnp.arange(4), Y].set(0)
    _close(ours, hinge.sum(1) / 5, rtol=1e-14)
    _close(optax_l, (X + 1 - jax.nn.one_hot(Y, 5, dtype=X.dtype)).max(1) - x_y, rtol=1e-14)
