"""Mini-batches over in-memory arrays: the seed's ``iterate_batches``, reshuffled per epoch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding

from ._typing import Array
from ._validate import is_int


def iterate_batches(
    arrays: Any,
    batch_size: int,
    *,
    shuffle: bool = False,
    key: Array | None = None,
    drop_last: bool = False,
    sharding: NamedSharding | None = None,
) -> Iterator[Any]:
    """JAX counterpart of ``torch.utils.data.DataLoader(TensorDataset(...), batch_size, ...)``.

    One pass over ``arrays`` (one epoch) in mini-batches, each with the structure of ``arrays``::

        for x, y in iterate_batches((x_train, y_train), batch_size=32, shuffle=True,
                                    key=jax.random.fold_in(key, epoch)):
            ...

    ``arrays`` is a tuple or dict (any pytree) of arrays sharing the leading dimension ``N``;
    every sample appears exactly once per epoch. Without ``shuffle`` the batches are the
    consecutive slices ``[0:B], [B:2B], ...``; with ``shuffle`` the order is
    ``jax.random.permutation(key, N)``, so it is fixed by the key: pass
    ``jax.random.fold_in(key, epoch)`` to reshuffle every epoch deterministically (this is what
    :func:`fnlearn.train.fit` does, and what makes a resumed run repeat the same batches).
    The last batch has ``N % B`` samples unless ``drop_last``, as in torch.

    With ``sharding`` (e.g. a :class:`fnlearn.sharding.Plan`'s ``plan.batch``, the leading
    dimension split over the mesh's data axis) each batch is one global ``jax.Array`` of ``B``
    rows laid out on the mesh. In a multi-process run every process holds the whole of
    ``arrays`` and iterates with the same ``key``; each copies only the rows its own devices
    hold (``jax.process_index()``'s part of the global batch) and the global array is
    assembled with ``jax.make_array_from_process_local_data``. The batches are then the same
    as without ``sharding``, on any number of processes.

    Args:
      arrays: a tuple, dict (or any pytree) of arrays with a common leading dimension.
      batch_size: ``B``, a positive integer.
      shuffle: visit the samples in a random order drawn from ``key``.
      key: a JAX PRNG key (``jax.random.key(seed)`` or a raw ``PRNGKey``); needed with
        ``shuffle``, ignored without it.
      drop_last: skip the last batch when it is smaller than ``batch_size``.
      sharding: a ``jax.sharding.NamedSharding`` for every batch leaf (its first entry splits
        the leading dimension); ``None``: arrays as JAX places them.

    Returns:
      An iterator over ``ceil(N / B)`` batches (``floor(N / B)`` with ``drop_last``), each a
      pytree like ``arrays`` of JAX arrays with leading dimension ``B`` (the last may be smaller).

    Raises:
      ValueError: at call time (not at the first ``next``), when ``batch_size`` is not a
        positive integer, ``arrays`` holds no arrays or a scalar, the leading dimensions differ,
        or ``shuffle`` is set without a ``key``; with ``sharding``, a ``batch_size`` (or a last
        batch, unless ``drop_last``) that the mesh axes splitting it do not divide evenly.

    Example::

        >>> x, y = jnp.arange(10.0).reshape(5, 2), jnp.arange(5)
        >>> [b[1].tolist() for b in iterate_batches((x, y), 2)]
        [[0, 1], [2, 3], [4]]
    """
    if not is_int(batch_size, 1):
        raise ValueError(
            f"batch_size should be a positive integer value, but got batch_size={batch_size!r}"
        )
    if shuffle and key is None:
        raise ValueError("shuffle=True needs a JAX PRNG key: pass key=jax.random.key(seed)")
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(arrays)
    if not with_paths:
        raise ValueError("arrays holds no arrays: pass a tuple or dict of arrays, e.g. (x, y)")
    names = ["arrays" + jax.tree_util.keystr(path) for path, _ in with_paths]
    leaves = [jnp.asarray(leaf) for _, leaf in with_paths]
    for name, leaf in zip(names, leaves, strict=True):
        if leaf.ndim == 0:
            raise ValueError(f"{name} is a scalar; every array needs a leading dimension")
    n = leaves[0].shape[0]
    if any(leaf.shape[0] != n for leaf in leaves):
        pairs = zip(names, leaves, strict=True)
        sizes = ", ".join(f"{name}: {leaf.shape[0]}" for name, leaf in pairs)
        raise ValueError(f"all arrays must share the leading dimension, got {sizes}")
    order = jax.random.permutation(key, n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    if sharding is not None:
        _check_split(sharding, batch_size, stop % batch_size)

    def batches() -> Iterator[Any]:
        for start in range(0, stop, batch_size):
            if order is None:
                batch = [leaf[start : start + batch_size] for leaf in leaves]
            else:
                index = order[start : start + batch_size]
                batch = [jnp.take(leaf, index, axis=0) for leaf in leaves]
            if sharding is not None:
                batch = [_global(sharding, x) for x in batch]
            yield treedef.unflatten(batch)

    return batches()


def _check_split(sharding: NamedSharding, batch_size: int, last: int) -> None:
    """A ValueError unless the mesh axes splitting the batch divide every batch's size."""
    spec = sharding.spec
    axes = () if len(spec) == 0 or spec[0] is None else (
        spec[0] if isinstance(spec[0], tuple) else (spec[0],))
    parts = int(np.prod([sharding.mesh.shape[a] for a in axes]))
    for size, what in ((batch_size, "batch_size"), (last, "the last batch")):
        if size % parts:
            hint = " (pass drop_last=True to skip it)" if what == "the last batch" else ""
            raise ValueError(
                f"{what} ({size}) must be divisible by mesh axis {spec[0]!r} of size {parts}, "
                f"which splits every batch{hint}"
            )


def _global(sharding: NamedSharding, batch: Array) -> jax.Array:
    """One global array on ``sharding`` from ``batch`` (the whole batch, the same on every
    process): this process copies only the rows its devices hold."""
    shape = batch.shape
    rows = [index[0] for index in sharding.addressable_devices_indices_map(shape).values()]
    start = min(r.start or 0 for r in rows)
    stop = max(shape[0] if r.stop is None else r.stop for r in rows)
    local = np.asarray(batch[start:stop])
    return jax.make_array_from_process_local_data(sharding, local, shape)
