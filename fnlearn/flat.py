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

Padding: ``Flat.of(tree, multiple=N)`` (or :meth:`Flat.padded`) lengthens every buffer with
zeros to a multiple of ``N``, so that it splits evenly over ``N`` devices
(:meth:`fnlearn.sharding.Plan.put` pads to its data axis this way). The tail belongs to no
parameter: :meth:`Flat.tree` never reads it, so the gradient there is exactly zero, and every
elementwise rule keeps a zero parameter with a zero gradient at zero (weight decay of 0 is 0,
``0 / (sqrt(0) + eps)`` is 0); rules that need whole parameters (Adafactor, Muon) run on the
views, and a negative-order gradient norm (where a zero would be the minimum) skips the tail.
What a user reads back never has it: :meth:`Flat.tree` and :func:`trees` (what the torch
interop converts), :func:`unpadded` (used by :func:`fnlearn.sharding.gather` and
:mod:`fnlearn.checkpoint`, so a checkpoint restores onto any number of devices), :attr:`Flat.size`.

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

import dataclasses
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
    ``[offset[j], offset[j] + size(shape[j]))``. Each buffer's length is its leaves' total
    rounded up to a multiple of ``multiple``; the rest is zero padding.
    """

    treedef: Any
    groups: tuple[str, ...]
    group: tuple[int, ...]
    offset: tuple[int, ...]
    shape: tuple[tuple[int, ...], ...]
    multiple: int = 1

    def sizes(self, g: int) -> list[int]:
        """Sizes of the leaves of buffer ``g``, in order."""
        return [int(np.prod(s, dtype=np.int64)) for k, s in zip(self.group, self.shape,
                                                                strict=True) if k == g]

    def used(self, g: int) -> int:
        """How many elements of buffer ``g`` hold parameters (its length less the padding)."""
        return sum(self.sizes(g))

    def length(self, g: int) -> int:
        """The length of buffer ``g``: :meth:`used` rounded up to a multiple of ``multiple``."""
        return -(-self.used(g) // self.multiple) * self.multiple


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
    def of(cls, tree: Params, multiple: int = 1) -> Flat:
        """Copy ``tree``'s leaves into one buffer per dtype (leaf order = ``jax.tree`` order),
        each zero-padded to a multiple of ``multiple`` (module docstring: Padding)."""
        if not isinstance(multiple, int | np.integer) or isinstance(multiple, bool) \
                or multiple < 1:
            raise ValueError(f"Flat.of: multiple must be a positive integer, got {multiple!r}")
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
                        tuple(tuple(x.shape) for x in leaves), int(multiple))
        buffers = []
        for g, name in enumerate(groups):
            members = [x.ravel() for x, k in zip(leaves, group, strict=True) if k == g]
            tail = layout.length(g) - layout.used(g)
            if tail:
                members.append(jnp.zeros(tail, name))
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
            padded = lay.length(g) > lay.used(g)
            cuts = np.cumsum(sizes)[:None if padded else -1].tolist()
            pieces.append(list(jnp.split(buf, cuts)) if cuts else [buf])  # padding: last piece
        taken = [0] * len(pieces)
        leaves = []
        for g, shape in zip(lay.group, lay.shape, strict=True):
            leaves.append(pieces[g][taken[g]].reshape(shape))
            taken[g] += 1
        return lay.treedef.unflatten(leaves)

    def like(self, tree: Params) -> Flat:
        """``tree`` (same structure, shapes and dtypes as :meth:`tree`) in this layout."""
        other = Flat.of(tree, self.layout.multiple)
        if other.layout != self.layout:
            raise ValueError("Flat.like: tree does not match this layout "
                             "(structure, shapes or dtypes differ)")
        return other

    def padded(self, multiple: int) -> Flat:
        """The same parameters with each buffer's zero padding remade for ``multiple``
        (``padded(1)``: none); ``self`` when its layout already has that ``multiple``."""
        if multiple == self.layout.multiple:
            return self
        layout = dataclasses.replace(self.layout, multiple=int(multiple))
        buffers = []
        for g, buf in enumerate(self.buffers):
            used, length = layout.used(g), layout.length(g)
            if buf.shape[0] > used:
                buf = buf[:used]
            if length > used:
                buf = jnp.concatenate([buf, jnp.zeros(length - used, buf.dtype)])
            buffers.append(buf)
        return Flat(tuple(buffers), layout)

    @property
    def size(self) -> int:
        """Total number of parameters (the padding not counted)."""
        return sum(self.layout.used(g) for g in range(len(self.buffers)))

    def tree_flatten(self):
        return self.buffers, self.layout

    @classmethod
    def tree_unflatten(cls, layout: Layout, buffers) -> Flat:
        return cls(tuple(buffers), layout)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}[{b.shape[0] if hasattr(b, 'shape') else '?'}]"
                          for n, b in zip(self.layout.groups, self.buffers, strict=True))
        pad = f", multiple={self.layout.multiple}" if self.layout.multiple > 1 else ""
        return f"Flat({parts}, leaves={len(self.layout.shape)}{pad})"


def is_flat(x: Any) -> bool:
    """Whether ``x`` is a :class:`Flat` (an ``is_leaf`` for ``jax.tree`` functions)."""
    return isinstance(x, Flat)


def trees(tree: Any) -> Any:
    """``tree`` with every :class:`Flat` in it replaced by its parameter tree (:meth:`Flat.tree`):
    the per-parameter view that torch's ``state_dict`` names, padding excluded."""
    return jax.tree.map(lambda x: x.tree() if is_flat(x) else x, tree, is_leaf=is_flat)


def unpadded(tree: Any) -> Any:
    """``tree`` with every :class:`Flat` in it (params, optimizer buffers) without padding:
    what is handed back to the user (gathered values, checkpoints)."""
    return jax.tree.map(lambda x: x.padded(1) if is_flat(x) else x, tree, is_leaf=is_flat)
