"""Shared benchmark plumbing: timing (median of repeats, block_until_ready inside, compile
outside), machine/version info, the C ceiling, trees of mixed leaf sizes, and result output."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def median_ms(fn, reps: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in ms; ``fn`` must block on its result itself."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def interleaved(measures: dict, rounds: int) -> dict[str, list[float]]:
    """``{name: [ms of round 1, ...]}``: each ``measures[name]()`` (which returns ms) once per
    round, all of them in turn, so the machine's drift hits every variant alike."""
    times = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            times[name].append(measure())
    return times


def leaf_sizes(n: int, leaves: int, seed: int = 0) -> list[int]:
    """``leaves`` sizes summing to ``n``, log-normally mixed like a real model's."""
    if leaves == 1:
        return [n]
    w = np.random.default_rng(seed).lognormal(sigma=1.5, size=leaves)
    sizes = np.maximum(1, (w / w.sum() * n).astype(np.int64))
    sizes[np.argmax(sizes)] += n - sizes.sum()
    return [int(s) for s in sizes]


def machine() -> dict:
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "numpy": np.__version__,
        # process-level knobs that change the figures (benchmarks/README.md, log item 9)
        "env": {k: os.environ.get(k) for k in ("XLA_FLAGS", "GLIBC_TUNABLES")},
    }
    for mod in ("optax", "flax", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in f
                                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


class Ceiling:
    """One fused C loop over the same bytes as an update (see ceiling.c); None without cc."""

    def __init__(self):
        self.lib = None
        out = Path(tempfile.mkdtemp()) / "libceiling.so"
        cmd = ["cc", "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC",
               str(HERE / "ceiling.c"), "-o", str(out)]
        try:
            subprocess.run(cmd, check=True, capture_output=True)
            self.lib = ctypes.CDLL(str(out))
        except (OSError, subprocess.CalledProcessError):
            self.lib = None

    def ms(self, n: int, nin: int, nout: int, reps: int) -> float | None:
        if self.lib is None:
            return None
        arrays = [np.random.default_rng(i).random(n, dtype=np.float32) for i in range(nin)]
        ptrs = (ctypes.c_void_p * nin)(*[a.ctypes.data for a in arrays])
        return median_ms(lambda: self.lib.stream(ptrs, nin, nout, ctypes.c_size_t(n),
                                                  ctypes.c_float(0.5)), reps)


def write(name: str, rows: list[dict], header: list[str], extra: dict | None = None) -> str:
    """Print a Markdown table of ``rows`` and write results/<name>.json with machine info."""
    RESULTS.mkdir(exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), "rows": rows, **(extra or {})}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(h)) for h in header) + " |")
    table = "\n".join(lines)
    print(table)
    print(f"\n(JSON: {RESULTS / (name + '.json')})")
    return table


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
