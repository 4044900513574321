"""fnlearn.data.iterate_batches: coverage of every sample, order, determinism, errors."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn.data import iterate_batches


def _dataset(n):
    """x[i] = (i, -i), y[i] = i: a sample's index is readable from any batch."""
    idx = np.arange(n)
    return np.stack([idx, -idx], axis=1).astype(np.float64), idx


@pytest.mark.parametrize("n, batch_size", [(10, 3), (12, 4), (5, 8), (7, 1)],
                         ids=["partial", "exact", "one-small-batch", "batch-of-one"])
@pytest.mark.parametrize("drop_last", [False, True], ids=["keep-last", "drop-last"])
@pytest.mark.parametrize("shuffle", [False, True], ids=["in-order", "shuffled"])
def test_every_sample_exactly_once_per_epoch(n, batch_size, drop_last, shuffle):
    x, y = _dataset(n)
    key = jax.random.key(0) if shuffle else None
    batches = list(iterate_batches((x, y), batch_size, shuffle=shuffle, key=key,
                                   drop_last=drop_last))
    full, rest = divmod(n, batch_size)
    assert len(batches) == full + (rest > 0 and not drop_last)
    sizes = [len(b[1]) for b in batches]
    assert sizes[:full] == [batch_size] * full
    seen = np.concatenate([np.asarray(b[1]) for b in batches]) if batches else np.array([])
    for bx, by in batches:  # rows stay aligned across arrays
        np.testing.assert_array_equal(np.asarray(bx)[:, 0], np.asarray(by))
    if drop_last:
        assert len(seen) == full * batch_size and len(set(seen.tolist())) == len(seen)
    else:
        assert sorted(seen.tolist()) == list(range(n))
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))


def test_shuffle_is_a_permutation_fixed_by_the_key():
    _, y = _dataset(50)
    key = jax.random.key(7)

    def order(k):
        return np.concatenate([np.asarray(b) for (b,) in iterate_batches((y,), 8, shuffle=True,
                                                                         key=k)])

    np.testing.assert_array_equal(order(key), np.asarray(jax.random.permutation(key, 50)))
    np.testing.assert_array_equal(order(key), order(jax.random.key(7)))
    epochs = [order(jax.random.fold_in(key, e)) for e in range(3)]
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    np.testing.assert_array_equal(epochs[1], order(jax.random.fold_in(key, 1)))
    np.testing.assert_array_equal(order(jax.random.PRNGKey(7)),  # raw uint32 keys work too
                                  np.asarray(jax.random.permutation(jax.random.PRNGKey(7), 50)))


class _Pair(NamedTuple):
    image: np.ndarray
    label: np.ndarray


@pytest.mark.parametrize(
    "make, check",
    [
        (lambda x, y: (x, y), lambda b: isinstance(b, tuple) and len(b) == 2),
        (lambda x, y: {"x": x, "y": y}, lambda b: isinstance(b, dict) and set(b) == {"x", "y"}),
        (lambda x, y: _Pair(x, y), lambda b: isinstance(b, _Pair)),
        (lambda x, y: x, lambda b: isinstance(b, jax.Array) and b.shape == (4, 2)),
    ],
    ids=["tuple", "dict", "namedtuple", "single-array"],
)
def test_batches_keep_the_structure_and_dtypes(make, check):
    x, y = _dataset(9)
    batches = list(iterate_batches(make(x, jnp.asarray(y, dtype=jnp.int32)), 4))
    assert len(batches) == 3 and all(check(b) for b in batches[:2])
    leaves = jax.tree.leaves(batches[0])
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    assert leaves[0].dtype == jnp.float64
    if len(leaves) == 2:
        assert leaves[1].dtype == jnp.int32
    assert jax.tree.leaves(batches[-1])[0].shape[0] == 1


def test_empty_dataset_gives_no_batches():
    assert list(iterate_batches((np.zeros((0, 3)), np.zeros(0)), 4)) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(arrays=(np.zeros((5, 2)), np.zeros(4)), batch_size=2),
         r"share the leading dimension, got arrays\[0\]: 5, arrays\[1\]: 4"),
        (dict(arrays={"x": np.zeros((3, 2)), "y": np.zeros(2)}, batch_size=2),
         r"arrays\['x'\]: 3, arrays\['y'\]: 2"),
        (dict(arrays=(np.zeros(3),), batch_size=0),
         "batch_size should be a positive integer value, but got batch_size=0"),
        (dict(arrays=(np.zeros(3),), batch_size=-2), "batch_size=-2"),
        (dict(arrays=(np.zeros(3),), batch_size=2.0), "batch_size=2.0"),
        (dict(arrays=(np.zeros(3),), batch_size=True), "batch_size=True"),
        (dict(arrays=(np.zeros(3),), batch_size=2, shuffle=True), "shuffle=True needs a JAX"),
        (dict(arrays=(), batch_size=2), "holds no arrays"),
        (dict(arrays=(np.zeros(3), np.float64(1.0)), batch_size=2),
         r"arrays\[1\] is a scalar"),
    ],
    ids=["lengths-differ", "lengths-differ-dict", "batch-size-0", "batch-size-negative",
         "batch-size-float", "batch-size-bool", "shuffle-without-key", "empty", "scalar"],
)
def test_bad_input_raises_at_call_time(kwargs, match):
    with pytest.raises(ValueError, match=match):
        iterate_batches(**kwargs)  # no next(): the error comes before iteration starts
