"""Pytree plumbing shared by all optimizers: write the rule for one array, lift it once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax


def tree_map_tuple(fn: Callable[..., tuple], tree: Any, *rest: Any, n_out: int) -> tuple:
    """Apply ``fn`` leafwise over ``tree`` and ``rest``; ``fn`` returns an ``n_out``-tuple.

    Returns a tuple of ``n_out`` trees with ``tree``'s structure. A tree in ``rest`` that is
    ``None`` (an unused buffer) gives ``None`` leaves to ``fn``; an output column whose leaves
    are all ``None`` comes back as ``None``, so unused buffers stay ``None`` in the state.

    Example::

        >>> f = lambda g, m: (2 * g, m if m is None else m + g)
        >>> tree_map_tuple(f, {"a": 1.0}, None, n_out=2)
        ({'a': 2.0}, None)
    """
    leaves, treedef = jax.tree.flatten(tree)
    columns = [[None] * len(leaves) if r is None else treedef.flatten_up_to(r) for r in rest]
    outs = [fn(*args) for args in zip(leaves, *columns, strict=True)]
    if not outs:
        return tuple(treedef.unflatten([]) for _ in range(n_out))
    result = []
    for col in zip(*outs, strict=True):
        result.append(None if all(x is None for x in col) else treedef.unflatten(list(col)))
    if len(result) != n_out:
        raise ValueError(f"fn returned {len(result)} outputs per leaf, expected n_out={n_out}")
    return tuple(result)
