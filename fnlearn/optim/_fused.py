"""The fused CPU backend of ``fused=True``: one C++ loop over all parameter buffers, in place.

XLA on CPU compiles an Adam update into three loops (new ``m``, new ``v``, then the params
reading both back): 40 bytes of memory traffic per float32 parameter where one loop needs 28,
and the update is memory-bound (benchmarks/README.md). The kernels in ``_fused.cc`` read
params, grads and state once and write them once, in place (XLA aliases each output to its
donated input), taking up to 64 leaves per call and splitting the work over XLA's intra-op
thread pool. They run the same elementwise rule as the XLA path, in the same order of
operations, on per-step scalars computed by the same JAX code (tests/optim/test_fused.py holds
both paths and torch's reference trajectories to the usual tolerances).

The kernels are built with the system's C++ compiler (``$CXX``, else ``c++``) on first use and
cached under ``$FNLEARN_CACHE`` (default ``~/.cache/fnlearn``), keyed by the source, the
compiler, jaxlib and the CPU. The fused step is used when JAX's default backend is the CPU, for
float32/float64 buffers; any other dtype, or another default backend, takes the XLA rule, so a
fused optimizer runs everywhere its unfused twin does. The optimizers reach this backend only
through the lift (:mod:`._lift`).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

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

SOURCE = Path(__file__).with_name("_fused.cc")
KERNELS = {name: "FnlearnFused" + name.capitalize() for name in (
    "sgd", "adagrad", "adam", "rmsprop", "adamax", "nadam", "radam", "adadelta", "asgd", "rprop")}
# At most this many leaves per kernel call: XLA's CPU fusion pass is superlinear in the number
# of aliased operands of one instruction (one call for 500 Adam leaves, 2,001 operands: 8 s of
# compile, 7.4 s of it in that pass; 8 calls of 64 leaves: 0.7 s; benchmarks/README.md)
LEAVES_PER_CALL = 64
# bits of the kernels' `flags` attribute (enum Flag in _fused.cc)
MAXIMIZE, WEIGHT_DECAY, MOMENTUM, NESTEROV, DECOUPLED, AMSGRAD, CENTERED = 1, 2, 4, 8, 16, 32, 64


def _cache_dir() -> Path:
    base = os.environ.get("FNLEARN_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fnlearn"


def _cpu_signature() -> str:
    """The CPU's model and feature flags: the kernels are built with ``-march=native``."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


# -fno-math-errno lets sqrt vectorize (it changes no value); -ffp-contract=off keeps a * b + c
# two roundings, as the rule is written; -fopenmp-simd only reads the `omp simd` hints (threads
# come from XLA's own pool, not from an OpenMP runtime)
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-std=c++17", "-shared",
         "-fPIC", "-w"]


def _compile(cxx: str, out: Path, simd_hints: bool) -> subprocess.CompletedProcess:
    cmd = [cxx, *FLAGS, *(["-fopenmp-simd"] if simd_hints else []),
           f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True)


@functools.cache
def load() -> None:
    """Build (once per machine, cached on disk) and register the fused CPU kernels.

    Raises:
      RuntimeError: no working C++17 compiler; the message carries the compiler's output.
    """
    lib = ctypes.cdll.LoadLibrary(str(build()))
    for symbol in KERNELS.values():
        jax.ffi.register_ffi_target(symbol, jax.ffi.pycapsule(getattr(lib, symbol)),
                                    platform="cpu")


def build() -> Path:
    """The kernels' shared library: from the cache, or compiled into it (atomically).

    Raises:
      RuntimeError: no working C++17 compiler; the message carries the compiler's output.
    """
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise RuntimeError(
            f"fused=True builds a C++ kernel on first use, but the compiler {cxx!r} was not "
            "found: install one (or set CXX), or use fused=False"
        )
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(
        "\0".join([SOURCE.read_text(), cxx, version, " ".join(FLAGS), jax.__version__,
                   importlib.metadata.version("jaxlib"),
                   _cpu_signature()]).encode()
    ).hexdigest()[:20]
    lib_path = _cache_dir() / f"fused-{key}.so"
    if not lib_path.exists():
        lib_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=lib_path.parent) as tmp:
            out = Path(tmp) / lib_path.name
            res = _compile(cxx, out, simd_hints=True)
            if res.returncode != 0:  # a compiler without -fopenmp-simd: same numbers
                res = _compile(cxx, out, simd_hints=False)
            if res.returncode != 0:
                raise RuntimeError(
                    f"fused=True: building {SOURCE.name} with {cxx!r} failed "
                    f"(use fused=False, or set CXX):\n{res.stderr[-2000:]}"
                )
            os.replace(out, lib_path)  # atomic: concurrent processes never see half a file
    return lib_path


def fused_apply(
    kernel: str,
    flags: int,
    scalars: list[Array],
    rule: Callable[..., tuple],
    grads: Params,
    params: Params,
    states: tuple[Params | None, ...],
) -> tuple[Params, tuple[Params | None, ...]]:
    """``params + u`` and the new state: on CPU one kernel call per 64 float32/float64 leaves.

    Like torch's multi-tensor apply, the leaves the kernel can take (dtype = the step's compute
    dtype, float32 or float64) go to kernel calls of up to :data:`LEAVES_PER_CALL` leaves each,
    which split the work in chunks over XLA's thread pool; the others take the optimizer's XLA
    ``rule``, as does every leaf on another backend.

    Args:
      kernel: a key of :data:`KERNELS`.
      flags: the kernel's flag bits.
      scalars: the per-step scalars the kernel reads, in its order (the ``rule``'s values).
      rule: the optimizer's XLA rule ``rule(grad, theta, *state) -> (u, *new_state)``.
      grads, params: trees of one structure.
      states: the per-parameter state trees the rule takes (``None`` for an unused buffer).

    Returns:
      ``(new_params, new_states)``.
    """
    vec = jnp.stack([jnp.asarray(x) for x in scalars])
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
    # trace and lower the XLA rule for every leaf as well (seconds of compile on 500 leaves)
    on_cpu = jax.default_backend() == "cpu"
    group = [j for j in range(len(g_leaves)) if on_cpu and fits(j)]
    new = [[None] * len(g_leaves) for _ in range(1 + len(live))]  # new[0]: params, then state
    for j in sorted(set(range(len(g_leaves))) - set(group)):
        for k, out in enumerate(xla(g_leaves[j], p_leaves[j], *[c[j] for c in live])):
            new[k][j] = out
    for start in range(0, len(group), LEAVES_PER_CALL):
        part = group[start:start + LEAVES_PER_CALL]
        flat = [x[j] for x in (p_leaves, g_leaves, *live) for j in part]
        outs = _kernel(kernel, flags, len(live), vec, *flat)  # params, then each state
        for k in range(1 + len(live)):
            for i, j in enumerate(part):
                new[k][j] = outs[k * len(part) + i]
    it = iter(new[1:])
    new_states = tuple(None if c is None else treedef.unflatten(next(it)) for c in columns)
    return treedef.unflatten(new[0]), new_states


def _kernel(kernel: str, flags: int, nstate: int, vec: Array, *flat: Array
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
        return _partitioned_call(KERNELS[kernel], flags, nstate, vec, *flat)

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
            f"{kernel}(fused=True): apply is not differentiable (the kernel updates buffers in "
            "place); differentiate update + apply_updates instead, e.g. with fused=False"
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
