"""ctc_loss without torch: jit and vmap equal eager, the class, torch's errors, nan under jit,
and optax's ctc_loss (the same per-sequence loss, other conventions). Values and gradients
against torch: test_reference.py (ctc.npz) and test_live_torch_ctc.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn.losses import CTCLoss, ctc_loss

T, N, C = 8, 3, 5
RNG = np.random.default_rng(0)
# numpy first, then device arrays: module-level jnp work would compile programs at collection
_x = RNG.standard_normal((T, N, C))
_lp = _x - _x.max(-1, keepdims=True)
_lp = _lp - np.log(np.exp(_lp).sum(-1, keepdims=True))  # log_softmax over the classes
_tg = np.array([[1, 2, 2, 0], [3, 1, 0, 0], [4, 4, 4, 1]])
_il, _tl = np.array([8, 6, 7]), np.array([3, 2, 4])
LP, TG, IL, TL = map(jnp.asarray, (_lp, _tg, _il, _tl))


def _with(a, index, value):
    """A device copy of the numpy array ``a`` with ``a[index] = value`` (numpy: no program)."""
    a = a.copy()
    a[index] = value
    return jnp.asarray(a)


def test_jit_and_vmap_equal_eager_and_the_class_calls_the_function():
    eager = ctc_loss(LP, TG, IL, TL, reduction="none")
    jitted = jax.jit(lambda *a: ctc_loss(*a, reduction="none"))
    np.testing.assert_allclose(jitted(LP, TG, IL, TL), eager, rtol=1e-14)
    # vmap over a leading axis of two problems: each one's value
    rev = [a[::-1] for a in (_lp, _tg, _il, _tl)]
    stacked = [np.stack([a, r]) for a, r in zip((_lp, _tg, _il, _tl), rev, strict=True)]
    batched = np.asarray(jax.jit(jax.vmap(lambda *a: ctc_loss(*a, reduction="none")))(*stacked))
    np.testing.assert_allclose(batched[0], eager, rtol=1e-14)
    np.testing.assert_allclose(batched[1], jitted(*rev), rtol=1e-14)
    loss = CTCLoss(blank=0, reduction="sum", zero_infinity=True)

    @jax.jit  # one compile for the class and the reductions, not one per op
    def reduced(*a):
        return (loss(*a), ctc_loss(*a, reduction="sum", zero_infinity=True), ctc_loss(*a))

    by_class, by_function, mean = reduced(LP, TG, IL, TL)
    np.testing.assert_array_equal(by_class, by_function)
    # 'mean' divides each loss by its target length, then averages over the batch
    np.testing.assert_allclose(mean, np.mean(np.asarray(eager) / _tl), rtol=1e-14)


def test_optax_gives_the_same_per_sequence_loss_with_other_conventions():
    # optax: batch-first logits (it applies log_softmax), 0/1 paddings instead of lengths,
    # no reduction. Same 'none' loss; torch's 'mean' (over target lengths) is not optax's.
    logits = np.moveaxis(_lp, 0, 1) * 1.7  # any logits: log_softmax(logits) are the log-probs
    logit_pad = (np.arange(T)[None, :] >= _il[:, None]).astype(np.float64)
    label_pad = (np.arange(4)[None, :] >= _tl[:, None]).astype(np.float64)

    @jax.jit  # one compile for both sides, not one per op
    def both(logits, logit_pad, label_pad):
        lp = jnp.moveaxis(jax.nn.log_softmax(logits, axis=-1), 0, 1)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes in float32 constants
            theirs = optax.losses.ctc_loss(logits, logit_pad, TG, label_pad, blank_id=0)
        return ctc_loss(lp, TG, IL, TL, reduction="none"), ctc_loss(lp, TG, IL, TL), theirs

    ours, ours_mean, theirs = map(np.asarray, both(logits, logit_pad, label_pad))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert abs(float(ours_mean) - float(theirs.mean())) > 1e-3


ERRORS = [
    (dict(log_probs=jnp.asarray(_lp[None])), RuntimeError, "Expected 3-dimensional tensor"),
    (dict(log_probs=jnp.asarray(np.zeros((0, N, C)))), RuntimeError, "must not be empty"),
    (dict(input_lengths=jnp.array([8, 6])), RuntimeError, "input_lengths must be of size batch"),
    (dict(target_lengths=jnp.array([3, 2])), RuntimeError, "target_lengths must be of size"),
    (dict(input_lengths=jnp.array([8.0, 6.0, 7.0])), RuntimeError, "must be integral"),
    (dict(blank=5), RuntimeError, "blank must be in label range"),
    (dict(input_lengths=jnp.array([9, 6, 7])), RuntimeError,
     "Expected input_lengths to have value at most 8, but got value 9"),
    (dict(input_lengths=jnp.array([8, -1, 7])), RuntimeError,
     "Expected input_lengths to have value at least 0, but got value -1"),
    (dict(target_lengths=jnp.array([3, -1, 4])), RuntimeError,
     "Expected target_lengths to have value at least 0, but got value -1"),
    (dict(target_lengths=jnp.array([3, 2, 5])), RuntimeError,
     "Expected tensor to have size at least 5 at dimension 1, but got size 4"),
    (dict(targets=jnp.array([1, 2, 2, 3, 1])), RuntimeError,
     "Expected tensor to have size 9 at dimension 0, but got size 5"),
    (dict(targets=jnp.asarray(_tg[:2])), RuntimeError,
     "Expected tensor to have size 3 at dimension 0"),
    (dict(targets=_with(_tg, (0, 1), 5)), IndexError, r"class indices in \[0, 5\), got 5"),
    (dict(reduction="avg"), ValueError, "avg is not a valid value for reduction"),
]


@pytest.mark.parametrize(("change", "error", "match"), ERRORS,
                         ids=[e[2][:30] for e in ERRORS])
def test_torch_errors(change, error, match):
    args = dict(log_probs=LP, targets=TG, input_lengths=IL, target_lengths=TL) | change
    with pytest.raises(error, match=match):
        ctc_loss(**args)


def test_bad_values_give_nan_under_jit_for_that_sequence_only():
    f = jax.jit(lambda *a: ctc_loss(*a, reduction="none"))
    out = np.asarray(f(LP, _with(_tg, (0, 1), 7), _with(_il, 1, 9), TL))
    assert np.isnan(out[0]) and np.isnan(out[1]) and np.isfinite(out[2])
    g = np.asarray(jax.jit(jax.grad(lambda lp, tl: ctc_loss(lp, TG, IL, tl, reduction="sum")))(
        LP, _with(_tl, 2, 9)))
    assert np.isnan(g[:, 2]).any() and np.isfinite(g[:, :2]).all()
