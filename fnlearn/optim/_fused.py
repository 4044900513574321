"""``fused=True``: one C++ loop per parameter buffer on CPU, as torch.optim's fused kernels.

XLA on CPU compiles an Adam update into three loops (new ``m``, new ``v``, then the params
reading both back): 40 bytes of memory traffic per float32 parameter where one loop needs 28,
and the update is memory-bound (benchmarks/README.md). The kernels in ``_fused.cc`` read
params, grads and state once and write them once, in place: XLA aliases each output to its
donated input. They run the same elementwise rule as the XLA path, in the same order of
operations, on per-step scalars computed by the same JAX code (tests/optim/test_fused.py holds
both paths and torch's reference trajectories to the usual tolerances).

The kernels are built with the system's C++ compiler (``$CXX``, else ``c++``) on first use and
cached under ``$FNLEARN_CACHE`` (default ``~/.cache/fnlearn``), keyed by the source, the
compiler, jaxlib and the CPU. The fused step is used on CPU for float32/float64 buffers; any
other dtype, or another backend (``jax.lax.platform_dependent``), takes the XLA rule, so a
fused optimizer runs everywhere its unfused twin does.
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
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._tree import tree_map_tuple
from .._typing import Array, Params

SOURCE = Path(__file__).with_name("_fused.cc")
KERNELS = {name: "FnlearnFused" + name.capitalize() for name in (
    "sgd", "adagrad", "adam", "rmsprop", "adamax", "nadam", "radam", "adadelta", "asgd", "rprop")}
# bits of the kernels' `flags` attribute (enum Flag in _fused.cc)
MAXIMIZE, WEIGHT_DECAY, MOMENTUM, NESTEROV, DECOUPLED, AMSGRAD, CENTERED = 1, 2, 4, 8, 16, 32, 64


class FusedGradientTransformation(NamedTuple):
    """An optax-protocol ``(init, update)`` pair plus a fused, in-place ``apply``.

    ``update`` is the ordinary XLA path (composable with ``optax.chain`` and friends);
    ``apply(grads, state, params) -> (params, state)`` is ``update`` followed by
    :func:`~fnlearn.optim.apply_updates`, done by one fused kernel per buffer on CPU.
    :func:`fnlearn.train.make_train_step` uses ``apply`` when the optimizer has it.
    """

    init: Callable[[Params], Any]
    update: Callable[..., tuple[Params, Any]]
    apply: Callable[[Params, Any, Params], tuple[Params, Any]]


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
# two roundings, as the rule is written
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-std=c++17", "-shared",
         "-fPIC", "-w"]


def _compile(cxx: str, out: Path, openmp: bool) -> subprocess.CompletedProcess:
    cmd = [cxx, *FLAGS, *(["-fopenmp"] if openmp else []), f"-I{jax.ffi.include_dir()}",
           str(SOURCE), "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True)


@functools.cache
def load() -> None:
    """Build (once per machine, cached on disk) and register the fused CPU kernels.

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
            res = _compile(cxx, out, openmp=True)
            if res.returncode != 0:  # e.g. a compiler without OpenMP: one thread, same numbers
                res = _compile(cxx, out, openmp=False)
            if res.returncode != 0:
                raise RuntimeError(
                    f"fused=True: building {SOURCE.name} with {cxx!r} failed "
                    f"(use fused=False, or set CXX):\n{res.stderr[-2000:]}"
                )
            os.replace(out, lib_path)  # atomic: concurrent processes never see half a file
    lib = ctypes.cdll.LoadLibrary(str(lib_path))
    for symbol in KERNELS.values():
        jax.ffi.register_ffi_target(symbol, jax.ffi.pycapsule(getattr(lib, symbol)),
                                    platform="cpu")


def fused_apply(
    kernel: str,
    flags: int,
    scalars: list[Array],
    rule: Callable[..., tuple],
    grads: Params,
    params: Params,
    states: tuple[Params | None, ...],
) -> tuple[Params, tuple[Params | None, ...]]:
    """``params + u`` and the new state, one fused kernel per float32/float64 buffer on CPU.

    Args:
      kernel: a key of :data:`KERNELS`.
      flags: the kernel's flag bits.
      scalars: the per-step scalars the kernel reads, in its order (the ``rule``'s values).
      rule: the optimizer's XLA rule ``rule(grad, theta, *state) -> (u, *new_state)``, used for
        other dtypes and other backends.
      grads, params: trees of one structure.
      states: the per-parameter state trees the rule takes (``None`` for an unused buffer).

    Returns:
      ``(new_params, new_states)``.
    """
    target = KERNELS[kernel]
    vec = jnp.stack([jnp.asarray(x) for x in scalars])

    def xla(g, p, *s):
        u, *ns = rule(g, p, *s)
        return (jnp.asarray(p + u.astype(p.dtype), dtype=p.dtype), *ns)

    def leaf(g, p, *s):
        live = [x for x in s if x is not None]
        dtype = jnp.dtype(p.dtype)
        if (dtype not in (jnp.float32, jnp.float64) or vec.dtype != dtype
                or any(x.dtype != dtype or x.shape != p.shape for x in (g, *live))):
            return xla(g, p, *s)

        def refill(outs):  # put the None state columns back
            it = iter(outs[1:])
            return (outs[0], *[None if x is None else next(it) for x in s])

        def on_cpu(g, p, *live):
            sds = jax.ShapeDtypeStruct(p.shape, p.dtype)
            aliases = {0: 0, **{3 + i: 1 + i for i in range(len(live))}}
            call = jax.ffi.ffi_call(target, [sds] * (1 + len(live)),
                                    input_output_aliases=aliases)
            return tuple(call(p, g, vec, *live, flags=np.int64(flags)))

        def elsewhere(g, p, *live):
            it = iter(live)
            full = [None if x is None else next(it) for x in s]
            outs = xla(g, p, *full)
            return (outs[0], *[o for o in outs[1:] if o is not None])

        return refill(jax.lax.platform_dependent(g, p, *live, cpu=on_cpu, default=elsewhere))

    outs = tree_map_tuple(leaf, grads, params, *states, n_out=1 + len(states))
    return outs[0], tuple(outs[1:])


def maybe_fused(
    fused: bool,
    name: str,
    init: Callable,
    update: Callable,
    apply: Callable[[Params, Any, Params | None], tuple[Params, Any]],
):
    """``GradientTransformation(init, update)``, or with ``fused`` the kernels are built
    (construction-time errors) and a :class:`FusedGradientTransformation` is returned."""
    from ._base import GradientTransformation, require_params

    if not isinstance(fused, bool):
        raise TypeError(f"{name}: fused must be True or False, got {fused!r}")
    if not fused:
        return GradientTransformation(init, update)
    load()

    def checked_apply(grads: Params, state: Any, params: Params | None = None):
        return apply(grads, state, require_params(params, name, "fused=True updates in place"))

    return FusedGradientTransformation(init, update, checked_apply)
