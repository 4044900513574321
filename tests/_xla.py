"""XLA's settings for the test run, and the environment of the tests' subprocesses.

Most of the test run's time is XLA's CPU compiler (about 1,800 small programs for
tests/optim alone; without torch, 104 of its 150 s on one core were compiling). XLA's
default code generation optimizes each program for speed; tests run each program on small
inputs a few times, so the run asks XLA to compile fast instead (``COMPILE_FAST``): no LLVM
optimization and the classic fusion emitters, which compile the same tests about 3x faster.
Results differ from the default code generation at most in the last bits of a
transcendental (tanh, rsqrt, exp: at most a few ulp), far inside every test's tolerance.
``FNLEARN_TEST_XLA_DEFAULTS=1`` runs the tests on XLA's defaults, the code generation users
get (CI runs the live torch comparisons so); a user's own ``XLA_FLAGS`` are kept and win.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPILE_FAST = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")
_DEVICE_COUNT = "--xla_force_host_platform_device_count"


def _flag_name(flag: str) -> str:
    return flag.split("=", 1)[0]


#: a CPU client straight from jaxlib, without importing JAX first (much the faster): the run
#: waits for the probe before its workers start
_PROBE = "from jaxlib import xla_client; xla_client.make_cpu_client()"
_PROBE_VIA_JAX = "import jax; jax.numpy.zeros(1)"


def _starts(code: str, flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code],
                          env={**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"},
                          capture_output=True, text=True, timeout=120)


def _known(flags: str) -> bool:
    """Whether this jaxlib starts with ``flags`` (an unknown flag aborts the process): asked
    of jaxlib's CPU client, and of JAX where that fails for another reason (a jaxlib
    without ``xla_client.make_cpu_client``)."""
    probe = _starts(_PROBE, flags)
    if probe.returncode != 0 and "Unknown flag" not in probe.stderr:
        probe = _starts(_PROBE_VIA_JAX, flags)
    return probe.returncode == 0


def configure() -> None:
    """Add ``COMPILE_FAST`` to this process's ``XLA_FLAGS`` (read when JAX's CPU backend starts;
    xdist's workers and the tests' subprocesses inherit it), unless the run asks for XLA's
    defaults, the user set the same flag, or this jaxlib does not know one of them."""
    if os.environ.get("FNLEARN_TEST_XLA_DEFAULTS") == "1":
        return
    current = os.environ.get("XLA_FLAGS", "").split()
    named = {_flag_name(f) for f in current}
    added = [f for f in COMPILE_FAST if _flag_name(f) not in named]
    if not added:
        return
    flags = " ".join([*added, *current])
    if _known(flags):
        os.environ["XLA_FLAGS"] = flags


def env(devices: int | None = None, **extra: str) -> dict[str, str]:
    """The environment of a test's subprocess: this one's (its ``XLA_FLAGS`` included), the
    repository importable, the CPU backend, and ``devices`` simulated CPU devices if given."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if devices is None or _flag_name(f) != _DEVICE_COUNT]
    if devices is not None:
        flags.append(f"{_DEVICE_COUNT}={devices}")
    return {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": " ".join(flags), **extra}
