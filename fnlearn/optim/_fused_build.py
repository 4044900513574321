"""The compiler driver of the fused CPU kernels (``_fused.cc``): flags, the library's places,
the build. Its command is ``python -m fnlearn.optim.build_fused [--force]``.

``pip install fnlearn`` (and ``pip install -e .``) builds the library at install time, next to
this file; this command builds it into the cache (``$FNLEARN_CACHE``, default
``~/.cache/fnlearn``) for a checkout used without installing, a machine where the install had
no compiler, or an image built ahead of time (set ``FNLEARN_CACHE`` alike when building the
image and when running it). Either place is
found at run time without a compiler (:mod:`fnlearn.optim._fused`); nothing is ever compiled as
a side effect of constructing or running an optimizer.

The code is portable (no ``-march=native``): the loops are compiled once per x86 vector ISA
(AVX-512, AVX2, baseline) and the widest the CPU has is chosen when the library loads.

This module imports only the standard library (and jaxlib, for the FFI headers, when it
compiles), so ``setup.py`` runs it without importing fnlearn, in a build environment that
needs jaxlib alone.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import importlib.metadata
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("_fused.cc")
#: The library built at install time: an extension-module file name of this package (it has no
#: Python module in it: _fused.py loads it with ctypes).
PACKAGED_NAME = "_fused_kernels"
# -fno-math-errno lets sqrt vectorize (it changes no value); -ffp-contract=off keeps a * b + c
# two roundings, as the rule is written; -fopenmp-simd only reads the `omp simd` hints (threads
# come from XLA's own pool, not from an OpenMP runtime)
FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-std=c++17", "-fPIC", "-w"]
SIMD_HINTS = "-fopenmp-simd"
#: The translation units (``-DFNL_UNIT=``): the float32 loops, the float64 loops, the FFI
#: handlers; compiled at once, the build takes the time of the longest, not of all three.
UNITS = (1, 2, 3)


def source_sha256() -> str:
    """The SHA-256 of ``_fused.cc``: the stamp a library carries (a library built from another
    version of the source is stale)."""
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()


def cache_dir() -> Path:
    """``$FNLEARN_CACHE``, else ``$XDG_CACHE_HOME/fnlearn``, else ``~/.cache/fnlearn``."""
    base = os.environ.get("FNLEARN_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fnlearn"


def cache_path() -> Path:
    """The cached library for this source, these flags, this jaxlib and this architecture
    (computed without running a compiler)."""
    key = hashlib.sha256("\0".join([
        source_sha256(), " ".join(FLAGS), importlib.metadata.version("jaxlib"),
        platform.machine()]).encode()).hexdigest()[:20]
    return cache_dir() / f"fused-{key}.so"


def packaged_paths() -> list[Path]:
    """Where an install puts the library: this package's directory, under the extension-module
    names this interpreter would use."""
    here = Path(__file__).parent
    return [here / f"{PACKAGED_NAME}{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]


def ffi_include_dir() -> Path:
    """The XLA FFI headers jaxlib ships (``jax.ffi.include_dir()`` names the same folder),
    found without importing JAX.

    Raises:
      RuntimeError: jaxlib is missing or has no FFI headers.
    """
    try:
        import jaxlib
    except ImportError as e:
        raise RuntimeError("jaxlib is not installed (the XLA FFI headers come with it)") from e
    include = Path(jaxlib.__file__).parent / "include"
    if not (include / "xla" / "ffi" / "api" / "ffi.h").is_file():
        raise RuntimeError(f"jaxlib has no XLA FFI headers under {include}")
    return include


def compile_library(out: Path, cxx: str | None = None) -> Path:
    """Compile ``_fused.cc`` into ``out``, atomically (a concurrent reader never sees half a
    file; a failed build leaves nothing behind).

    Args:
      out: the library's path.
      cxx: the C++17 compiler; default ``$CXX``, else ``c++``.

    Raises:
      RuntimeError: the compiler is missing or fails; the message carries its output.
    """
    cxx = cxx or os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise RuntimeError(f"the C++ compiler {cxx!r} was not found (install one, or set CXX)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        part = Path(tmp) / out.name
        common = [*FLAGS, f'-DFNL_SOURCE_SHA256="{source_sha256()}"',
                  f"-I{ffi_include_dir()}", "-c", str(SOURCE)]
        objects = [Path(tmp) / f"unit{u}.o" for u in UNITS]
        units = [[f"-DFNL_UNIT={u}", "-o", str(o)] for u, o in zip(UNITS, objects, strict=True)]
        failed = _run_all([[cxx, SIMD_HINTS, *common, *unit] for unit in units])
        if failed:  # a compiler without -fopenmp-simd: same numbers
            failed = _run_all([[cxx, *common, *unit] for unit in units])
        failed = failed or _run_all([[cxx, "-shared", "-fPIC", *map(str, objects), "-o",
                                      str(part)]])
        if failed:
            raise RuntimeError(f"building {SOURCE.name} with {cxx!r} failed:\n"
                               f"{failed[-2000:]}")
        os.replace(part, out)
    return out


def _run_all(commands: list[list[str]]) -> str:
    """Run the commands at once; the standard error of those that failed ('' if none did)."""
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c in commands]
    errors = [p.communicate()[1] for p in procs]
    return "".join(e or f"exit status {p.returncode}\n"
                   for p, e in zip(procs, errors, strict=True) if p.returncode != 0)


def build(force: bool = False) -> Path:
    """The cached library (:func:`cache_path`), compiled unless it is there already.

    Raises:
      RuntimeError: the compiler is missing or fails.
    """
    path = cache_path()
    if force or not path.exists():
        compile_library(path)
    return path


def main(argv: list[str] | None = None) -> Path:
    """``python -m fnlearn.optim.build_fused [--force]``: build into the cache, print the path."""
    ap = argparse.ArgumentParser(prog="python -m fnlearn.optim.build_fused",
                                 description="Build fnlearn's fused CPU kernels (fused=True).")
    ap.add_argument("--force", action="store_true",
                    help=f"rebuild even if the cache ({cache_dir()}) has it")
    path = build(force=ap.parse_args(argv).force)
    print(path)
    return path

