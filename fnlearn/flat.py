"""Parameters kept in one contiguous buffer per dtype, viewed as the original pytree.

An optimizer update is pure memory traffic, and on a tree of hundreds of leaves XLA runs one
set of kernels per leaf and passes every leaf through dispatch: on CPU that per-leaf overhead,
not bandwidth, dominates. :class:`Flat` stores a parameter pytree as
one 1-D buffer per dtype; any optimizer (fnlearn's or optax's) initialised on a ``Flat`` keeps
its state in the same layout, so an update is one set of kernels per dtype, whatever the number
of leaves. The model reads parameters through :meth:`Flat.tree`, whose views are ``split`` +
``reshape``; the gradient of a loss with respect to a ``Flat`` is again a ``Flat`` (the
transpose of ``split`` is a single ``concatenate``).

Elementwise update rules give the same results on a ``Flat`` and on the tree it holds (up to
float round-off: XLA may fuse the two layouts differently).

.. warning::
   A ``Flat`` makes the update alone faster (one set of kernels instead of one per leaf),
   but inside a whole train step the views and the gradient's ``concatenate`` move bytes of
   their own: on CPU that can cost more than the update saves, on a GPU (where dispatching
   every leaf's buffers costs more than the bytes) it is usually the fastest layout. The
   current figures are on the performance page (benchmarks/README.md); measure your model.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from fnlearn import optim
    >>> from fnlearn.flat import Flat
    >>> params = Flat.of({"w": jnp.ones((2, 3)), "b": jnp.zeros(3)})
    >>> opt = optim.adam(1e-3)
    >>> state = opt.init(params)                    # one exp_avg buffer, not one per leaf
    >>> loss = lambda f: jnp.sum(f.tree()["w"] ** 2)
    >>> grads = jax.grad(loss)(params)              # a Flat with the same layout
    >>> updates, state = opt.update(grads, state, params)
    >>> params = optim.apply_updates(params, updates)
    >>> params.tree()["w"].shape
    (2, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._typing import Array, Params


@dataclass(frozen=True)
class Layout:
    """Static description of where each leaf lives: hashable, so it is pytree aux data.

    ``groups[i]`` is the dtype of buffer ``i``; leaf ``j`` lives in buffer ``group[j]`` at
    ``[offset[j], offset[j] + size(shape[j]))``.
    """

    treedef: Any
    groups: tuple[str, ...]
    group: tuple[int, ...]
    offset: tuple[int, ...]
    shape: tuple[tuple[int, ...], ...]

    def sizes(self, g: int) -> list[int]:
        """Sizes of the leaves of buffer ``g``, in order."""
        return [int(np.prod(s, dtype=np.int64)) for k, s in zip(self.group, self.shape,
                                                                strict=True) if k == g]


@jax.tree_util.register_pytree_node_class
class Flat:
    """A parameter pytree stored as one contiguous 1-D buffer per dtype.

    Build one with :meth:`Flat.of`; read the original tree with :meth:`tree`. The buffers are
    the pytree leaves, so ``jax.grad``, ``jax.jit`` (with donation), optimizers, checkpointing
    and sharding see a handful of large arrays instead of hundreds of small ones.
    """

    __slots__ = ("buffers", "layout")

    def __init__(self, buffers: tuple[Array, ...], layout: Layout):
        self.buffers = tuple(buffers)
        self.layout = layout

    @classmethod
    def of(cls, tree: Params) -> Flat:
        """Copy ``tree``'s leaves into one buffer per dtype (leaf order = ``jax.tree`` order)."""
        leaves, treedef = jax.tree.flatten(tree)
        if not leaves:
            raise ValueError("Flat.of: tree has no array leaves")
        leaves = [jnp.asarray(x) for x in leaves]
        groups: list[str] = []
        group, offset, fill = [], [], []
        for x in leaves:
            name = jnp.dtype(x.dtype).name
            if name not in groups:
                groups.append(name)
                fill.append(0)
            g = groups.index(name)
            group.append(g)
            offset.append(fill[g])
            fill[g] += x.size
        layout = Layout(treedef, tuple(groups), tuple(group), tuple(offset),
                        tuple(tuple(x.shape) for x in leaves))
        buffers = []
        for g, name in enumerate(groups):
            members = [x.ravel() for x, k in zip(leaves, group, strict=True) if k == g]
            # always a new, strongly typed buffer: donating it never deletes a caller's array
            buffers.append(jnp.array(members[0] if len(members) == 1 else
                                     jnp.concatenate(members), dtype=name, copy=True))
        return cls(tuple(buffers), layout)

    def tree(self) -> Params:
        """The parameter pytree, as views of the buffers (``split`` + ``reshape``)."""
        lay = self.layout
        pieces: list[list[Array]] = []
        for g, buf in enumerate(self.buffers):
            sizes = lay.sizes(g)
            pieces.append(list(jnp.split(buf, np.cumsum(sizes)[:-1].tolist())) if len(sizes) > 1
                          else [buf])
        taken = [0] * len(pieces)
        leaves = []
        for g, shape in zip(lay.group, lay.shape, strict=True):
            leaves.append(pieces[g][taken[g]].reshape(shape))
            taken[g] += 1
        return lay.treedef.unflatten(leaves)

    def like(self, tree: Params) -> Flat:
        """``tree`` (same structure, shapes and dtypes as :meth:`tree`) in this layout."""
        other = Flat.of(tree)
        if other.layout != self.layout:
            raise ValueError("Flat.like: tree does not match this layout "
                             "(structure, shapes or dtypes differ)")
        return other

    @property
    def size(self) -> int:
        """Total number of parameters."""
        return sum(int(b.size) for b in self.buffers)

    def tree_flatten(self):
        return self.buffers, self.layout

    @classmethod
    def tree_unflatten(cls, layout: Layout, buffers) -> Flat:
        return cls(tuple(buffers), layout)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}[{b.shape[0] if hasattr(b, 'shape') else '?'}]"
                          for n, b in zip(self.layout.groups, self.buffers, strict=True))
        return f"Flat({parts}, leaves={len(self.layout.shape)})"
