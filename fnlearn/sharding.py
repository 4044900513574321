"""Sharding rules: where every leaf of a train state and of a batch lives on a device mesh.

A :class:`Plan` is a ``jax.sharding.Mesh`` plus one of three layouts, and turns a
:class:`~fnlearn.train.TrainState` into a pytree of ``PartitionSpec``s beside it (flax's
partitioning metadata and maxtext's ``shard_optimizer_over_data`` in the same style).
XLA does all the communication: :func:`fnlearn.train.make_train_step` compiles the step with
these shardings as its input and output shardings, and inside it only constrains the
gradients and the params that the optimizer reads to the optimizer state's layout.

The three layouts (``N`` = the size of the mesh's data axis, ``B`` the global batch)::

    mode             batch        params stored      optimizer state     the optimizer runs on
    "data_parallel"  B/N rows     whole              whole               whole arrays
    "zero1"          B/N rows     whole              1/N of each leaf    1/N slices
    "fsdp"           B/N rows     1/N of each leaf   1/N of each leaf    1/N slices

- data parallel: XLA all-reduces the gradients; every device runs the same update.
- ``"zero1"`` (ZeRO stage 1, torch's ``ZeroRedundancyOptimizer``): the gradients are
  reduced to the optimizer state's slices, each device updates its slice of the params, and
  the new params are all-gathered. The reduction is XLA's choice: a reduce-scatter where the
  backend forms one, an all-reduce then a local slice in XLA's CPU pipeline (the HLO read
  by benchmarks/sharding.py).
- ``"fsdp"`` (ZeRO stage 3): the params stay sliced too; XLA gathers each one where the
  forward and backward passes read it.

Which dimension is sliced: for each leaf, the largest dimension that ``N`` divides evenly
(the leftmost of equal ones) and that ``param_specs`` has not already given to another mesh
axis. A leaf with no such dimension (a scalar, a vector of odd length) is kept whole on every
device of the data axis: :meth:`Plan.replicated_leaves` lists them. A
:class:`~fnlearn.flat.Flat` never is: :meth:`Plan.put` zero-pads its buffers (params and
optimizer buffers alike) to a multiple of ``N``, so each device holds exactly ``1/N`` of the
padded length; the padding stays zero through every update and is never handed back
(:class:`~fnlearn.flat.Flat`'s docstring, Padding; :func:`gather` and checkpoints drop it).
An optimizer state leaf that sits in a subtree shaped like the params (``exp_avg``,
``momentum_buffer``, ...) takes its param's slicing, so the update reads matching slices; any
other (Adafactor's row and column factors, step counts) gets the rule on its own shape.

A second mesh axis (tensor or expert parallelism, a ``"model"`` axis) is given per leaf with
``param_specs``: a pytree with the params' structure whose leaves are ``PartitionSpec``s
(e.g. ``P(None, "model")`` for a column-sliced weight) or ``None`` (the mode's default).
The leaf's optimizer buffers follow the same spec; ``"zero1"``/``"fsdp"`` add the data axis
on another dimension.

Rules that need a whole array (Adafactor's row and column means, Muon's Newton-Schulz
iteration, a global gradient norm) stay correct on slices: XLA's sharding propagation inserts
the reductions and gathers they need (the tests compare against the one-device run).

The mesh is used with ``Auto`` axis types (XLA's propagation chooses the intermediate
shardings), whatever the axis types it was built with (``jax.make_mesh`` makes ``Explicit``
ones by default).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from jax.sharding import PartitionSpec as P
    >>> from fnlearn import optim, sharding, train
    >>> mesh = jax.make_mesh((1,), ("data",))
    >>> plan = sharding.Plan(mesh, "zero1")
    >>> opt = optim.adam(1e-3)
    >>> state = plan.put(train.TrainState.create({"w": jnp.zeros((4, 2))}, opt))
    >>> plan.state_specs(state).opt_state.exp_avg["w"]
    P('data',)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from ._typing import Params
from .flat import is_flat, unpadded

#: The layouts a :class:`Plan` knows (see the module docstring).
MODES = ("data_parallel", "zero1", "fsdp")


@dataclasses.dataclass(frozen=True)
class Plan:
    """A mesh and a layout: the shardings of a train state, its updates and the batches.

    Args:
      mesh: a ``jax.sharding.Mesh`` (e.g. ``jax.make_mesh((4,), ("data",))``, or
        ``jax.make_mesh((2, 2), ("data", "model"))``); over all processes' devices in a
        multi-process run.
      mode: ``"data_parallel"``, ``"zero1"`` or ``"fsdp"`` (module docstring).
      data_axis: the mesh axis the batch (and, with ``"zero1"``/``"fsdp"``, every optimizer
        buffer) is split over.
      param_specs: ``None``, or a pytree with the params' structure whose leaves are
        ``PartitionSpec``s or ``None``: those leaves' own slicing over other mesh axes (and
        their optimizer buffers'); ``None`` leaves take the mode's default.

    Raises:
      ValueError: an unknown ``mode``, a ``data_axis`` or a ``param_specs`` axis name that
        the mesh does not have (named, with the mesh's axes). A spec that does not fit its
        leaf raises when the state is first seen (:meth:`state_specs`), naming the leaf.
    """

    mesh: Mesh
    mode: str = "data_parallel"
    data_axis: str = "data"
    param_specs: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.mesh, Mesh):
            raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(self.mesh).__name__}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        names = tuple(self.mesh.axis_names)
        if self.data_axis not in names:
            raise ValueError(
                f"data_axis {self.data_axis!r} is not an axis of the mesh (its axes: {names})"
            )
        for spec in jax.tree.leaves(self.param_specs):
            if not isinstance(spec, PartitionSpec):
                raise TypeError(
                    "param_specs leaves must be jax.sharding.PartitionSpec or None, "
                    f"got {type(spec).__name__}"
                )
            for axis in _axes(spec):
                if axis not in names:
                    raise ValueError(
                        f"param_specs uses mesh axis {axis!r} in {spec}, which the mesh does "
                        f"not have (its axes: {names})"
                    )
        if any(t != AxisType.Auto for t in self.mesh.axis_types):
            auto = Mesh(self.mesh.devices, names, axis_types=(AxisType.Auto,) * len(names))
            object.__setattr__(self, "mesh", auto)

    @property
    def data_size(self) -> int:
        """``N``: the number of devices along the data axis."""
        return int(self.mesh.shape[self.data_axis])

    @property
    def batch(self) -> NamedSharding:
        """A batch's sharding: leading dimension split over the data axis."""
        return NamedSharding(self.mesh, PartitionSpec(self.data_axis))

    @property
    def replicated(self) -> NamedSharding:
        """Whole on every device (metrics, step counters)."""
        return NamedSharding(self.mesh, PartitionSpec())

    def check_batch(self, batch: Any, divisor: int = 1) -> None:
        """Raise a ValueError naming the leaf unless ``N * divisor`` divides every leaf's
        leading dimension (``divisor``: the number of micro-batches)."""
        need = self.data_size * divisor
        for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]:
            shape = np.shape(leaf)
            if not shape or shape[0] % need:
                micro = f" x {divisor} micro-batches" if divisor > 1 else ""
                raise ValueError(
                    f"batch{jax.tree_util.keystr(path)} has shape {tuple(shape)}: its leading "
                    f"dimension must be divisible by the mesh's {self.data_axis!r} axis "
                    f"({self.data_size} devices{micro})"
                )

    def param_layout(self, params: Params) -> tuple[Any, Any]:
        """``(stored, update)``: the params' ``PartitionSpec`` trees where they are kept
        between steps and where the optimizer reads them (module docstring's table)."""
        leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
        if self.param_specs is None:
            given = [None] * len(leaves)
        else:
            try:
                given = treedef.flatten_up_to(self.param_specs)
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    "param_specs must have the params' structure, with a PartitionSpec or None "
                    f"for each leaf: {exc}"
                ) from exc
        stored, update = [], []
        for (path, leaf), spec in zip(leaves, given, strict=True):
            name = "params" + jax.tree_util.keystr(path)
            base = _fit(PartitionSpec() if spec is None else spec, np.shape(leaf), name,
                        self.mesh)
            sliced = self._add_data_axis(base, np.shape(leaf))
            update.append(base if self.mode == "data_parallel" else sliced)
            stored.append(sliced if self.mode == "fsdp" else base)
        return treedef.unflatten(stored), treedef.unflatten(update)

    def state_specs(self, state: Any) -> Any:
        """The ``PartitionSpec`` tree of a :class:`~fnlearn.train.TrainState` (same
        structure): params as stored, each optimizer buffer as its param's update slicing
        (others by their own shape), counters whole.

        Raises:
          ValueError: a ``param_specs`` entry that does not fit its leaf (more dimensions than
            the leaf, an unknown axis, a dimension the axis size does not divide), named.
        """
        stored, update = self.param_layout(state.params)
        params_def = jax.tree.structure(state.params)
        shapes = [np.shape(x) for x in jax.tree.leaves(state.params)]

        def like_params(node: Any) -> bool:
            if jax.tree.structure(node) != params_def:
                return False
            return [np.shape(x) for x in jax.tree.leaves(node)] == shapes

        def spec(node: Any) -> Any:
            if like_params(node):
                return update
            if self.mode == "data_parallel":
                return PartitionSpec()
            return self._add_data_axis(PartitionSpec(), np.shape(node))

        opt_specs = jax.tree.map(spec, state.opt_state, is_leaf=like_params)
        counters = jax.tree.map(lambda _: PartitionSpec(), (state.step, state.skipped))
        return type(state)(stored, opt_specs, *counters)

    def shardings(self, state: Any) -> Any:
        """:meth:`state_specs` as ``NamedSharding`` objects on the mesh."""
        return jax.tree.map(lambda s: NamedSharding(self.mesh, s), self.state_specs(state),
                            is_leaf=lambda s: isinstance(s, PartitionSpec))

    @property
    def flat_multiple(self) -> int:
        """What a :class:`~fnlearn.flat.Flat`'s buffer lengths must be a multiple of: ``N``
        where the optimizer state is sliced (``"zero1"``, ``"fsdp"``), else 1."""
        return 1 if self.mode == "data_parallel" else self.data_size

    def put(self, state: Any) -> Any:
        """``state`` placed on the mesh with :meth:`shardings` (the placement helper).

        Every process passes the same whole values (e.g. from the same seed); each keeps only
        its devices' slices. Every :class:`~fnlearn.flat.Flat` in it is first zero-padded to
        a multiple of :attr:`flat_multiple` (unless its padding already is one), so that it
        splits evenly. Arrays already placed as planned are returned unchanged.
        """
        m = self.flat_multiple

        def pad(x: Any) -> Any:
            return x.padded(m) if is_flat(x) and x.layout.multiple % m else x

        state = jax.tree.map(pad, state, is_leaf=is_flat)
        return jax.tree.map(_place, state, self.shardings(state))

    def replicated_leaves(self, state: Any) -> list[str]:
        """The non-scalar leaves that ``"zero1"``/``"fsdp"`` keep whole along the data axis
        because no free dimension is divisible by ``N`` (empty for ``"data_parallel"``, where
        every leaf is whole by design)."""
        if self.mode == "data_parallel":
            return []
        specs = jax.tree_util.tree_leaves_with_path(
            self.state_specs(state), is_leaf=lambda s: isinstance(s, PartitionSpec))
        leaves = jax.tree.leaves(state)
        return [
            "state" + jax.tree_util.keystr(path)
            for (path, spec), leaf in zip(specs, leaves, strict=True)
            if np.ndim(leaf) > 0 and self.data_axis not in _axes(spec)
            and not (self.mode == "zero1" and path[0] == jax.tree_util.GetAttrKey("params"))
        ]

    def _add_data_axis(self, spec: PartitionSpec, shape: Sequence[int]) -> PartitionSpec:
        """``spec`` with the data axis on the largest free dimension it divides evenly
        (unchanged when there is none)."""
        if self.data_axis in _axes(spec):
            return spec
        entries = list(spec) + [None] * (len(shape) - len(spec))
        free = [d for d in range(len(shape))
                if entries[d] is None and shape[d] % self.data_size == 0 and shape[d] > 0]
        if not free:
            return spec
        d = max(free, key=lambda d: (shape[d], -d))
        entries[d] = self.data_axis
        while entries and entries[-1] is None:
            entries.pop()
        return PartitionSpec(*entries)


def gather(tree: Any) -> Any:
    """Every leaf of ``tree`` whole on this host, as NumPy arrays: ``jax.device_get``, except
    that a leaf split over several processes is first gathered from all of them (a collective:
    in a multi-process run every process must call it). A :class:`~fnlearn.flat.Flat` comes
    back without the padding :meth:`Plan.put` gave it.

    Example::

        >>> import jax.numpy as jnp
        >>> gather({"w": jnp.arange(3.0)})["w"].tolist()
        [0.0, 1.0, 2.0]
    """

    def whole(leaf: Any) -> np.ndarray:
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(jax.device_get(leaf))

    return unpadded(jax.tree.map(whole, tree))


def _axes(spec: PartitionSpec) -> list[str]:
    """The mesh axis names a spec uses."""
    out = []
    for entry in spec:
        if entry is None:
            continue
        out.extend(entry if isinstance(entry, tuple) else (entry,))
    return out


def _fit(spec: PartitionSpec, shape: Sequence[int], name: str, mesh: Mesh) -> PartitionSpec:
    """``spec`` if it fits a leaf of ``shape``, else a ValueError naming the leaf and axis."""
    if len(spec) > len(shape):
        raise ValueError(
            f"{name} has shape {tuple(shape)}, but its PartitionSpec {spec} has {len(spec)} "
            "entries (at most one per dimension)"
        )
    for d, entry in enumerate(spec):
        if entry is None:
            continue
        axes = entry if isinstance(entry, tuple) else (entry,)
        size = int(np.prod([mesh.shape[a] for a in axes]))
        if shape[d] % size:
            raise ValueError(
                f"{name} has shape {tuple(shape)}: dimension {d} ({shape[d]}) is not divisible "
                f"by mesh axis {entry!r} of size {size} (PartitionSpec {spec})"
            )
    return spec


def _place(x: Any, sharding: NamedSharding) -> jax.Array:
    """``x`` on ``sharding``; each process builds only its own devices' slices."""
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x
    if isinstance(x, jax.Array) and x.is_fully_addressable and sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        # another multi-process layout (e.g. a restored state): XLA reshards it
        return jax.jit(lambda a: a, out_shardings=sharding)(x)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
