"""The fused CPU backend of ``fused=True``: one C++ loop over all parameter buffers, in place.

XLA on CPU compiles an Adam update into three loops (new ``m``, new ``v``, then the params
reading both back): 40 bytes of memory traffic per float32 parameter where one loop needs 28,
and the update is memory-bound. The kernels in ``_fused.cc`` read params, grads and state once
and write them once, in place (XLA aliases each output to its donated input), taking up to 64
leaves per call and splitting the work over XLA's intra-op thread pool. They run the same
elementwise rule as the XLA path, in the same order of operations, on per-step scalars
computed by the same JAX code (tests/optim/test_fused.py holds both paths and torch's
reference trajectories to the usual tolerances).

The kernels are a shared library built ahead of time, like any native extension: at install
time (``setup.py``), or by ``python -m fnlearn.optim.build_fused`` into ``$FNLEARN_CACHE``
(:mod:`._fused_build`). Running never compiles: the first fused step traced on CPU loads the
library it finds (the installed one, else the cached one) and checks the contract below
against the one the library exports. Without a library it warns once and every leaf takes
the XLA rule (the same numbers, at the XLA path's speed). The fused step is used when JAX's
default backend is the CPU, for float32/float64 buffers; any other dtype, or another default
backend, takes the XLA rule and loads nothing, so a fused optimizer runs everywhere its
unfused twin does. The optimizers reach this backend only through the lift (:mod:`._lift`).

The contract with ``_fused.cc`` is named: :class:`Kernel` (the kernel kinds), :class:`Flag`
(the bits of the kernels' ``flags`` attribute) and one NamedTuple of per-step scalars per
kernel (:data:`SCALARS`), whose fields are the scalars in the order the C++ loop reads them.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching
from jax.experimental.custom_partitioning import (
    ArrayMapping,
    SdyShardingRule,
    custom_partitioning,
)
from jax.sharding import NamedSharding, PartitionSpec

from .._typing import Array, Params
from . import _fused_build

# At most this many leaves per kernel call: XLA's CPU fusion pass is superlinear in the number
# of aliased operands of one instruction (one call for 500 Adam leaves, 2,001 operands, spends
# seconds in that pass; 8 calls of 64 leaves a tenth of that)
LEAVES_PER_CALL = 64


class Kernel(enum.IntEnum):
    """The fused kernels (``enum class Kind`` in ``_fused.cc``), FFI targets
    ``FnlearnFused<Name>``."""

    SGD = 0
    ADAGRAD = 1
    ADAM = 2
    RMSPROP = 3
    ADAMAX = 4
    NADAM = 5
    RADAM = 6
    ADADELTA = 7
    ASGD = 8
    RPROP = 9

    @property
    def symbol(self) -> str:
        return "FnlearnFused" + self.name.capitalize()


class Flag(enum.IntFlag):
    """The bits of a kernel's ``flags`` attribute (``enum Flag`` in ``_fused.cc``)."""

    MAXIMIZE = 1
    WEIGHT_DECAY = 2  # L2: g += lambda * theta
    MOMENTUM = 4  # SGD, RMSprop
    NESTEROV = 8  # SGD
    DECOUPLED = 16  # decoupled decay (AdamW, NAdam, RAdam)
    AMSGRAD = 32  # Adam
    CENTERED = 64  # RMSprop


def weight_decay_flags(decay: bool, decoupled: bool) -> int:
    """The weight-decay bits of an optimizer with torch's ``decoupled_weight_decay`` switch:
    L2 folded into the gradient, or AdamW's decay of the parameters, or none."""
    return Flag.WEIGHT_DECAY * (decay and not decoupled) | Flag.DECOUPLED * (decay and decoupled)


# Each kernel's per-step scalars, the fields in the order the loop reads them (the symbols are
# those of the optimizer's ``prepare``; lam: weight decay, gamma: lr, clr: decayed lr)
class SgdScalars(NamedTuple):
    gamma: Array
    lam: Array
    mu: Array
    one_minus_tau: Array


class AdagradScalars(NamedTuple):
    clr: Array
    lam: Array
    epsilon: Array


class AdamScalars(NamedTuple):
    one_minus_b1: Array
    b2: Array
    one_minus_b2: Array
    step_size: Array
    bias_correction2_sqrt: Array
    epsilon: Array
    lam: Array
    decay_factor: Array  # 1 - gamma * lam (decoupled decay)


class RmspropScalars(NamedTuple):
    gamma: Array
    a: Array
    one_minus_a: Array
    epsilon: Array
    lam: Array
    mu: Array


class AdamaxScalars(NamedTuple):
    b1: Array
    one_minus_b1: Array
    b2: Array
    epsilon: Array
    lam: Array
    clr: Array


# NAdam's and RAdam's scalars start alike: decoupled decay (-gamma * lam), L2 decay, the betas
_DECAY_AND_BETAS = [(name, Array) for name in (
    "neg_gamma_lam", "lam", "b1", "one_minus_b1", "b2", "one_minus_b2")]
NadamScalars = NamedTuple("NadamScalars", [*_DECAY_AND_BETAS, *[(name, Array) for name in (
    "bias_correction2", "epsilon", "c_g", "c_m")]])
RadamScalars = NamedTuple("RadamScalars", [*_DECAY_AND_BETAS, *[(name, Array) for name in (
    "bias_correction1", "epsilon", "sqrt_bias_correction2",
    "rectify",  # 1 where rectified, else 0
    "gamma", "r")]])


class AdadeltaScalars(NamedTuple):
    gamma: Array
    rho: Array
    one_minus_rho: Array
    epsilon: Array
    lam: Array


class AsgdScalars(NamedTuple):
    neg_lam_eta: Array
    eta: Array
    omega: Array
    mu: Array


class RpropScalars(NamedTuple):
    etaminus: Array
    etaplus: Array
    step_size_min: Array
    step_size_max: Array


#: kernel -> the NamedTuple of its scalars
SCALARS: dict[Kernel, type] = {
    Kernel.SGD: SgdScalars, Kernel.ADAGRAD: AdagradScalars, Kernel.ADAM: AdamScalars,
    Kernel.RMSPROP: RmspropScalars, Kernel.ADAMAX: AdamaxScalars, Kernel.NADAM: NadamScalars,
    Kernel.RADAM: RadamScalars, Kernel.ADADELTA: AdadeltaScalars, Kernel.ASGD: AsgdScalars,
    Kernel.RPROP: RpropScalars,
}


class Contract(NamedTuple):
    """What a library exports (``FnlearnFusedContract``), or what this module expects."""

    source: str  # SHA-256 of the _fused.cc it was built from ("" if unknown)
    flags: dict[str, int]  # flag name -> bit
    kernels: dict[int, tuple[str, ...]]  # number -> (name, FFI symbol, *scalar names)


def expected_contract() -> Contract:
    """The contract of this module's tables."""
    return Contract(
        _fused_build.source_sha256(), {f.name: f.value for f in Flag},
        {k.value: (k.name, k.symbol, *SCALARS[k]._fields) for k in Kernel})


def read_contract(lib: ctypes.CDLL) -> Contract:
    """The contract a loaded library exports."""
    fn = lib.FnlearnFusedContract
    fn.restype = ctypes.c_char_p
    source, flags, kernels = "", {}, {}
    for line in fn().decode().splitlines():
        what, *rest = line.split()
        if what == "source":
            source = rest[0] if rest else ""
        elif what == "flag":
            flags[rest[0]] = int(rest[1])
        elif what == "kernel":
            kernels[int(rest[0])] = tuple(rest[1:])
    return Contract(source, flags, kernels)


def check_contract(lib: Contract, ours: Contract, path: Path | str) -> None:
    """Raise if the library's kernels, flag bits or scalar names differ from this module's.

    Raises:
      RuntimeError: naming each difference (a Python table and the C++ loops that disagree).
    """
    problems = [f"flag {name}: library {lib.flags.get(name)}, Python {ours.flags.get(name)}"
                for name in sorted(set(lib.flags) | set(ours.flags))
                if lib.flags.get(name) != ours.flags.get(name)]
    for n in sorted(set(lib.kernels) | set(ours.kernels)):
        theirs, mine = lib.kernels.get(n), ours.kernels.get(n)
        if theirs != mine:
            problems.append(f"kernel {n}: library {' '.join(theirs or ('none',))}; "
                            f"Python {' '.join(mine or ('none',))}")
    if problems:
        raise RuntimeError(
            f"fused=True: the kernel library {path} and fnlearn/optim/_fused.py disagree on "
            "the kernels' contract (kernel numbers, flag bits, scalar names in order):\n  "
            + "\n  ".join(problems))


def find_library() -> tuple[Path, ctypes.CDLL, Contract] | None:
    """The kernel library built from this ``_fused.cc``: the one installed with the package,
    else the cached one (:mod:`._fused_build`); ``None`` if there is none. Runs no compiler.

    Raises:
      RuntimeError: that library disagrees with this module's tables (:func:`check_contract`).
    """
    ours = expected_contract()
    for path in [*_fused_build.packaged_paths(), _fused_build.cache_path()]:
        if path.exists():
            lib = ctypes.CDLL(str(path))
            theirs = read_contract(lib)
            if theirs.source == ours.source:  # else stale: built from another _fused.cc
                check_contract(theirs, ours, path)
                return path, lib, theirs
    return None


@functools.cache
def _register() -> bool:
    """Register the kernels of :func:`find_library` with XLA, once per process; False where
    no library built from this source was found."""
    found = find_library()
    if found is None:
        return False
    _, lib, _ = found
    for kernel in Kernel:
        jax.ffi.register_ffi_target(kernel.symbol, jax.ffi.pycapsule(getattr(lib, kernel.symbol)),
                                    platform="cpu")
    return True


def load(warn: bool = True) -> bool:
    """Register the fused CPU kernels of :func:`find_library`, once per process.

    Args:
      warn: warn when there is no library (``fused=True`` asked for the kernel); the default
        ``fused=None`` takes the XLA rule without a word, as torch's default does where it
        has no fused implementation.

    Returns:
      True if the kernels are registered; False if no library built from this source was
      found: the fused step then takes the XLA rule.

    Raises:
      RuntimeError: the library disagrees with this module's tables.
    """
    if _register():
        return True
    if warn:
        warnings.warn(
            "fused=True: the fused CPU kernel library is not built for this fnlearn (none "
            f"installed in {Path(__file__).parent}, none in {_fused_build.cache_dir()} for "
            "this source and jaxlib), so the optimizer runs its XLA rule instead (the same "
            "numbers, without the one in-place loop). Build it once with "
            "`python -m fnlearn.optim.build_fused` (needs a C++17 compiler), or reinstall "
            "fnlearn where one is present.", RuntimeWarning, stacklevel=3)
    return False


def fused_apply(
    kernel: Kernel,
    flags: Flag | int,
    scalars: NamedTuple,
    rule: Callable[..., tuple],
    grads: Params,
    params: Params,
    states: tuple[Params | None, ...],
    warn: bool = True,
) -> tuple[Params, tuple[Params | None, ...]]:
    """``params + u`` and the new state: on CPU one kernel call per 64 float32/float64 leaves.

    Like torch's multi-tensor apply, the leaves the kernel can take (dtype = the step's compute
    dtype, float32 or float64) go to kernel calls of up to :data:`LEAVES_PER_CALL` leaves each,
    which split the work in chunks over XLA's thread pool; the others take the optimizer's XLA
    ``rule``, as does every leaf on another backend or without a kernel library (:func:`load`).

    Args:
      kernel: the kernel.
      flags: the kernel's flag bits.
      scalars: the kernel's per-step scalars, a ``SCALARS[kernel]`` (the ``rule``'s values).
      rule: the optimizer's XLA rule ``rule(grad, theta, *state) -> (u, *new_state)``.
      grads, params: trees of one structure.
      states: the per-parameter state trees the rule takes (``None`` for an unused buffer).
      warn: warn once if there is no kernel library (:func:`load`).

    Returns:
      ``(new_params, new_states)``.

    Raises:
      TypeError: ``scalars`` is not the kernel's NamedTuple.
    """
    if type(scalars) is not SCALARS[kernel]:
        raise TypeError(f"fused kernel {kernel.name}: scalars must be a "
                        f"{SCALARS[kernel].__name__}, got {type(scalars).__name__}")
    vec = jnp.stack([jnp.asarray(x) for x in scalars])  # the fields' order is the loop's
    g_leaves, treedef = jax.tree.flatten(grads)
    p_leaves = treedef.flatten_up_to(params)
    columns = [None if st is None else treedef.flatten_up_to(st) for st in states]
    live = [c for c in columns if c is not None]

    def xla(g, p, *s):  # one leaf through the XLA rule; s = its live state buffers
        it = iter(s)
        outs = rule(g, p, *[None if c is None else next(it) for c in columns])
        new_p = jnp.asarray(p + outs[0].astype(p.dtype), dtype=p.dtype)
        return (new_p, *[o for o, c in zip(outs[1:], columns, strict=True) if c is not None])

    def fits(j):
        p, dtype = p_leaves[j], jnp.dtype(p_leaves[j].dtype)
        return (dtype in (jnp.float32, jnp.float64) and vec.dtype == dtype
                and all(x[j].dtype == dtype and x[j].shape == p.shape
                        for x in (g_leaves, *live)))

    # The backend is chosen at trace time (the default one): lax.platform_dependent would
    # trace and lower the XLA rule for every leaf as well (seconds of compile on 500 leaves).
    # Another backend never loads the library.
    group = [j for j in range(len(g_leaves)) if fits(j)]
    if not (group and jax.default_backend() == "cpu" and load(warn)):
        group = []
    new = [[None] * len(g_leaves) for _ in range(1 + len(live))]  # new[0]: params, then state
    for j in sorted(set(range(len(g_leaves))) - set(group)):
        for k, out in enumerate(xla(g_leaves[j], p_leaves[j], *[c[j] for c in live])):
            new[k][j] = out
    for start in range(0, len(group), LEAVES_PER_CALL):
        part = group[start:start + LEAVES_PER_CALL]
        flat = [x[j] for x in (p_leaves, g_leaves, *live) for j in part]
        outs = _kernel(kernel, int(flags), len(live), vec, *flat)  # params, then each state
        for k in range(1 + len(live)):
            for i, j in enumerate(part):
                new[k][j] = outs[k * len(part) + i]
    it = iter(new[1:])
    new_states = tuple(None if c is None else treedef.unflatten(next(it)) for c in columns)
    return treedef.unflatten(new[0]), new_states


def _kernel(kernel: Kernel, flags: int, nstate: int, vec: Array, *flat: Array
            ) -> tuple[Array, ...]:
    """One kernel call on ``flat = params + grads + states`` (``count`` leaves each), under
    JAX's transformations; returns ``params + states``, updated in place.

    ``vmap``: with shared scalars one call on the batched buffers (the rule is elementwise),
    with per-member scalars (a vmapped state's step, a batched lr) one call per member,
    stacked (not in place). Differentiation raises a TypeError naming the way out
    (``update`` + ``apply_updates``)."""

    @jax.custom_jvp
    def call(vec, *flat):
        return batched_call(vec, *flat)

    @custom_batching.custom_vmap
    def batched_call(vec, *flat):
        return _partitioned_call(kernel.symbol, flags, nstate, vec, *flat)

    @batched_call.def_vmap
    def _vmap(axis_size, in_batched, vec, *flat):
        flat = [x if b else jnp.broadcast_to(x, (axis_size, *x.shape))
                for x, b in zip(flat, in_batched[1:], strict=True)]
        if not in_batched[0]:  # shared scalars: one elementwise call over the whole batch
            outs = batched_call(vec, *flat)
        else:  # per-member scalars (e.g. vmapped states, lr): one call per member, stacked
            per = [batched_call(vec[b], *(x[b] for x in flat)) for b in range(axis_size)]
            outs = tuple(jnp.stack(col) for col in zip(*per, strict=True))
        return outs, (True,) * len(outs)

    @call.defjvp
    def _jvp(primals, tangents):
        raise TypeError(
            f"{kernel.name.lower()}: the fused apply is not differentiable (the kernel updates "
            "buffers in place); differentiate update + apply_updates instead, or build the "
            "optimizer with fused=False (make_train_step then runs those)"
        )

    return call(vec, *flat)


def _partitioned_call(target: str, flags: int, nstate: int, vec: Array, *flat: Array
                      ) -> tuple[Array, ...]:
    """:func:`_local_call` as a ``custom_partitioning`` op. The call is elementwise, so under
    ``jit`` over several devices each device runs it on its own shards: every buffer of leaf
    ``i`` takes the sharding of param ``i``, and so do the results; the scalars are
    replicated. On one device it lowers to the plain call."""
    count = len(flat) // (2 + nstate)
    leaf = [j % count for j in range(len(flat))]  # operand (after vec) -> its leaf
    n_out = count * (1 + nstate)

    def result_shardings(arg_shapes):
        return tuple(arg_shapes[1 + j % count].sharding for j in range(n_out))

    def partition(target, flags, nstate, mesh, arg_shapes, result_shape):
        del result_shape
        args = (NamedSharding(mesh, PartitionSpec()),
                *(arg_shapes[1 + i].sharding for i in leaf))

        def lower(vec, *flat):
            return _local_call(target, flags, nstate, vec, *flat)

        return mesh, lower, result_shardings(arg_shapes), args

    def infer(target, flags, nstate, mesh, arg_shapes, result_shape):
        del target, flags, nstate, mesh, result_shape
        return result_shardings(arg_shapes)

    def dims(i):  # one passthrough factor per dimension of leaf i
        return ArrayMapping(*(f"l{i}d{d}" for d in range(flat[i].ndim)))

    call = custom_partitioning(_local_call, static_argnums=(0, 1, 2))
    call.def_partition(
        partition=partition, infer_sharding_from_operands=infer,
        sharding_rule=SdyShardingRule(
            operand_mappings=(ArrayMapping("s"), *(dims(i) for i in leaf)),
            result_mappings=tuple(dims(j % count) for j in range(n_out)),
            need_replication_factors=("s",)))
    return call(target, flags, nstate, vec, *flat)


def _local_call(target: str, flags: int, nstate: int, vec: Array, *flat: Array
                ) -> tuple[Array, ...]:
    """The kernel's custom call on ``flat = params + grads + states`` (one device's buffers):
    results ``params + states``, each aliased to its input."""
    count = len(flat) // (2 + nstate)
    out_types = [jax.ShapeDtypeStruct(p.shape, p.dtype) for p in flat[:count]] * (1 + nstate)
    # args: vec, params, grads, states; results: params, states
    aliases = {1 + i: i for i in range(count)}
    aliases.update({1 + (2 + k) * count + i: (1 + k) * count + i
                    for k in range(nstate) for i in range(count)})
    call = jax.ffi.ffi_call(target, out_types, input_output_aliases=aliases)
    return tuple(call(vec, *flat, flags=np.int64(flags)))
