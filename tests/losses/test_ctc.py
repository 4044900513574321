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
LP = jax.nn.log_softmax(jnp.asarray(RNG.standard_normal((T, N, C))), axis=-1)
TG = jnp.array([[1, 2, 2, 0], [3, 1, 0, 0], [4, 4, 4, 1]])
IL = jnp.array([8, 6, 7])
TL = jnp.array([3, 2, 4])


def test_jit_and_vmap_equal_eager_and_the_class_calls_the_function():
    eager = ctc_loss(LP, TG, IL, TL, reduction="none")
    jitted = jax.jit(lambda *a: ctc_loss(*a, reduction="none"))(LP, TG, IL, TL)
    np.testing.assert_allclose(jitted, eager, rtol=1e-14)
    # vmap over a leading axis of two problems: each one's value
    lp2, tg2 = jnp.stack([LP, LP[::-1]]), jnp.stack([TG, TG[::-1]])
    il2, tl2 = jnp.stack([IL, IL[::-1]]), jnp.stack([TL, TL[::-1]])
    batched = jax.jit(jax.vmap(lambda *a: ctc_loss(*a, reduction="none")))(lp2, tg2, il2, tl2)
    np.testing.assert_allclose(batched[0], eager, rtol=1e-14)
    np.testing.assert_allclose(batched[1], ctc_loss(LP[::-1], TG[::-1], IL[::-1], TL[::-1],
                                                    reduction="none"), rtol=1e-14)
    loss = CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    assert loss(LP, TG, IL, TL) == ctc_loss(LP, TG, IL, TL, reduction="sum", zero_infinity=True)
    # 'mean' divides each loss by its target length, then averages over the batch
    np.testing.assert_allclose(ctc_loss(LP, TG, IL, TL), jnp.mean(eager / TL.astype(eager.dtype)),
                               rtol=1e-14)


def test_optax_gives_the_same_per_sequence_loss_with_other_conventions():
    # optax: batch-first logits (it applies log_softmax), 0/1 paddings instead of lengths,
    # no reduction. Same 'none' loss; torch's 'mean' (over target lengths) is not optax's.
    logits = jnp.moveaxis(LP, 0, 1) * 1.7  # any logits: log_softmax(logits) are the log-probs
    lp = jnp.moveaxis(jax.nn.log_softmax(logits, axis=-1), 0, 1)
    logit_pad = (jnp.arange(T)[None, :] >= IL[:, None]).astype(lp.dtype)
    label_pad = (jnp.arange(4)[None, :] >= TL[:, None]).astype(lp.dtype)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes in float32 constants
        theirs = optax.losses.ctc_loss(logits, logit_pad, TG, label_pad, blank_id=0)
    ours = ctc_loss(lp, TG, IL, TL, reduction="none")
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert abs(float(ctc_loss(lp, TG, IL, TL)) - float(theirs.mean())) > 1e-3


ERRORS = [
    (dict(log_probs=LP[None]), RuntimeError, "Expected 3-dimensional tensor"),
    (dict(log_probs=jnp.zeros((0, N, C))), RuntimeError, "must not be empty"),
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
    (dict(targets=TG[:2]), RuntimeError, "Expected tensor to have size 3 at dimension 0"),
    (dict(targets=TG.at[0, 1].set(5)), IndexError, r"class indices in \[0, 5\), got 5"),
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
    out = f(LP, TG.at[0, 1].set(7), IL.at[1].set(9), TL)
    assert np.isnan(out[0]) and np.isnan(out[1]) and np.isfinite(out[2])
    g = jax.jit(jax.grad(lambda lp, tl: ctc_loss(lp, TG, IL, tl, reduction="sum")))(
        LP, TL.at[2].set(9))
    assert np.isnan(g[:, 2]).any() and np.isfinite(g[:, :2]).all()
