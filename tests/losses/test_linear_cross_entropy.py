"""linear_cross_entropy without torch: equal to linear + cross_entropy for any chunk size,
under jit and vmap; the (N, C) logits are never live whole (XLA's memory analysis); torch's
errors and chunk-size rule. Against torch: test_reference.py (linear_cross_entropy.npz) and
test_live_torch_ctc_linear.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn.losses import LinearCrossEntropyOptions, cross_entropy, linear_cross_entropy

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.standard_normal((10, 4)))
A = jnp.asarray(RNG.standard_normal((7, 4)))
B = jnp.asarray(RNG.standard_normal(7))
Y = jnp.asarray(np.where(np.arange(10) == 3, -100, RNG.integers(0, 7, 10)))
W = jnp.asarray(RNG.uniform(0.5, 2.0, 7))


def test_every_chunk_size_equals_linear_then_cross_entropy_under_jit():
    kw = dict(weight=W, label_smoothing=0.1)

    def reference(x, a, b):
        return cross_entropy(x @ a.T + b[None, :], Y, **kw)

    # jitted: one compile each, not one per op
    expected, expected_grads = jax.jit(jax.value_and_grad(reference, argnums=(0, 1, 2)))(X, A, B)
    for rows in (None, 1, 3, 10):  # default, one row, a ragged last chunk, one chunk
        options = None if rows is None else LinearCrossEntropyOptions(batch_chunk_size=rows)

        @jax.jit
        def ours(x, a, b, options=options):
            return linear_cross_entropy(x, a, Y, linear_bias=b, options=options, **kw)

        value, grads = jax.jit(jax.value_and_grad(ours, argnums=(0, 1, 2)))(X, A, B)
        np.testing.assert_allclose(value, expected, rtol=1e-13)
        for g, e in zip(grads, expected_grads, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)


def test_vmap_over_problems():
    xs, ys = jnp.stack([X, 2 * X]), jnp.stack([Y, Y[::-1]])
    out = jax.vmap(lambda x, y: linear_cross_entropy(x, A, y, reduction="none"))(xs, ys)
    np.testing.assert_allclose(out[1], linear_cross_entropy(2 * X, A, Y[::-1],
                                                            reduction="none"), rtol=1e-13)


def test_logits_are_never_live_whole():
    n, d, C = 256, 8, 4096
    x = jnp.zeros((n, d), jnp.float32)
    a = jnp.zeros((C, d), jnp.float32)
    y = jnp.zeros(n, jnp.int32)
    logits_bytes = n * C * 4

    def temp_bytes(loss):
        step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        return step.lower(x, a, y).compile().memory_analysis().temp_size_in_bytes

    unchunked = temp_bytes(lambda x, a, y: cross_entropy(x @ a.T, y))
    chunked = temp_bytes(lambda x, a, y: linear_cross_entropy(x, a, y))  # 8 chunks
    assert unchunked >= logits_bytes  # the logits (and their gradient) are live at once
    assert chunked < logits_bytes / 2  # one chunk's logits, plus the weight gradient


def test_chunk_rule_is_torchs():
    # torch's LinearCrossEntropyOptions()._adjust on CPU float32: "aspect_ratio:2"
    from fnlearn.losses._linear_cross_entropy import _chunk_rows

    assert _chunk_rows(LinearCrossEntropyOptions(), 1024, 256, 32000) == 8
    assert _chunk_rows(LinearCrossEntropyOptions(chunking_method="aspect_ratio"),
                       1024, 256, 32000) == 16
    assert _chunk_rows(LinearCrossEntropyOptions(batch_chunk_size=3), 1024, 256, 32000) == 3
    assert _chunk_rows(None, 1024, 256, 32000) == 128
    with pytest.raises(ValueError, match="give different chunk sizes"):
        _chunk_rows(LinearCrossEntropyOptions(batch_chunk_size=3, chunking_method="aspect_ratio"),
                    1024, 256, 32000)
    with pytest.raises(ValueError, match="invalid chunking_method"):
        LinearCrossEntropyOptions(chunking_method="rows")
    with pytest.raises(ValueError, match="batch_chunk_size must be positive"):
        LinearCrossEntropyOptions(batch_chunk_size=0)


ERRORS = [
    (dict(input=X[None]), RuntimeError, "expected input with dimensionality 1 or 2, got 3"),
    (dict(linear_weight=A[0]), RuntimeError, "linear_weight with dimensionality at least 2"),
    (dict(linear_weight=A[:, :3]), RuntimeError, "got 4 and 3, respectively"),
    (dict(linear_bias=B[:3]), RuntimeError, r"expected linear_bias shape \(7,\), got \(3,\)"),
    (dict(input=X[0], linear_weight=A[:, None], target=Y[0]), RuntimeError,
     "requires batched input"),
    (dict(target=jnp.full((10, 7), 1 / 7), ignore_index=-100), RuntimeError,
     "ignore_index cannot be specified when target contains probabilities"),
    (dict(target=Y.at[0].set(7)), IndexError, r"^Target 7 is out of bounds\.$"),
    (dict(label_smoothing=1.5), ValueError, "label_smoothing must be between 0.0 and 1.0"),
]


@pytest.mark.parametrize(("change", "error", "match"), ERRORS, ids=[e[2][:30] for e in ERRORS])
def test_torch_errors(change, error, match):
    args = dict(input=X, linear_weight=A, target=Y) | change
    with pytest.raises(error, match=match):
        linear_cross_entropy(**args)
