"""Shared benchmark plumbing: timing (median of repeats, block_until_ready inside, compile
outside), machine/version info, the ceiling (a C loop on CPU, one XLA fusion on an
accelerator), torch's device, trees of mixed leaf sizes, and result output.

On a GPU (JAX's default backend) the benchmarks compare on the same card: torch runs on CUDA
and every torch step ends with ``torch.cuda.synchronize()``, as every JAX step ends with
``block_until_ready`` (host clock, so each figure includes one launch-and-sync round trip)."""

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
        "device_kind": jax.devices()[0].device_kind,
        "numpy": np.__version__,
        # process-level knobs that change the figures (benchmarks/README.md, log item 9)
        "env": {k: os.environ.get(k) for k in ("XLA_FLAGS", "GLIBC_TUNABLES")},
    }
    for mod in ("optax", "flax", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    if info["torch"] and on_accelerator():
        import torch

        info["torch_cuda"] = torch.cuda.is_available() and torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in f
                                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


def on_accelerator() -> bool:
    """Whether JAX's default backend is not the CPU (fused=True then runs the XLA rule)."""
    return jax.default_backend() != "cpu"


def torch_device(wanted: bool = True) -> str | None:
    """The device torch is compared on: 'cuda' when JAX runs on a GPU and torch sees one, else
    'cpu' (torch then takes 2 threads, as XLA uses this machine's 2 cores); None when torch
    is not installed or not ``wanted`` (a script's ``--no-torch``)."""
    if not wanted:
        return None
    try:
        import torch
    except ImportError:
        return None
    if jax.default_backend() == "gpu" and torch.cuda.is_available():
        return "cuda"
    torch.set_num_threads(2)
    return "cpu"


def torch_synced(fn, device: str):
    """``fn`` followed by a wait for the device, so host-clock timing covers its work."""
    if device == "cpu":
        return fn
    import torch

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def ceiling(kind: str = "auto"):
    """The ceiling of the current backend: the C loop on CPU, the XLA loop on an accelerator
    (``kind`` 'c' or 'xla' picks one)."""
    if kind == "auto":
        kind = "xla" if on_accelerator() else "c"
    return XlaCeiling() if kind == "xla" else Ceiling()


class XlaCeiling:
    """The loop of ceiling.c as one jitted XLA fusion (the written arrays donated): where no C
    loop can run (a GPU), the fastest pass over the same bytes XLA makes."""

    @staticmethod
    def body(a: list, c: float) -> tuple:
        """ceiling.c's loops: new values of a[0] and a[2:] (a[1] is only read)."""
        p, g = a[0], a[1]
        if len(a) == 2:
            return (p + c * g,)
        if len(a) == 3:
            s = a[2] * c + g
            return (p - c * s, s)
        m, v = a[2] + c * (g - a[2]), a[3] * c + g * g
        if len(a) == 4:
            return (p - c * m / (v + 1e-8), m, v)
        w = jax.numpy.maximum(a[4], v)
        return (p - c * m / (w + 1e-8), m, v, w)

    def ms(self, n: int, nin: int, nout: int, reps: int) -> float:
        if nout != max(1, nin - 1):
            raise ValueError(f"nout={nout}: the ceiling writes all arrays but one (nin={nin})")
        arrays = [jax.numpy.asarray(np.random.default_rng(i).random(n, dtype=np.float32))
                  for i in range(nin)]
        step = jax.jit(lambda w, r: self.body([w[0], r, *w[1:]], 0.5), donate_argnums=0)
        live = [[arrays[0], *arrays[2:]]]

        def run():
            live[0] = list(step(live[0], arrays[1]))
            jax.block_until_ready(live[0])

        return median_ms(run, reps)


class Ceiling:
    """One fused C loop over the same bytes as an update (see ceiling.c); None without cc."""

    def __init__(self):
        self.lib, self.error = None, None
        out = Path(tempfile.mkdtemp()) / "libceiling.so"
        base = ["cc", "-O3", "-shared", "-fPIC", str(HERE / "ceiling.c"), "-o", str(out)]
        # without OpenMP (or -march=native) where the compiler lacks it: said on stderr
        for flags in (["-march=native", "-fopenmp"], ["-march=native"], []):
            try:
                subprocess.run(base + flags, check=True, capture_output=True, text=True)
                self.lib = ctypes.CDLL(str(out))
                if self.error:
                    print(f"ceiling.c built without some flags ({self.error})", file=sys.stderr)
                return
            except subprocess.CalledProcessError as e:
                self.error = f"{' '.join(base + flags)}: {e.stderr.strip()[-300:]}"
            except OSError as e:
                self.error = f"{' '.join(base + flags)}: {e}"

    def ms(self, n: int, nin: int, nout: int, reps: int) -> float | None:
        if self.lib is None:
            return None
        arrays = [np.random.default_rng(i).random(n, dtype=np.float32) for i in range(nin)]
        ptrs = (ctypes.c_void_p * nin)(*[a.ctypes.data for a in arrays])
        return median_ms(lambda: self.lib.stream(ptrs, nin, nout, ctypes.c_size_t(n),
                                                  ctypes.c_float(0.5)), reps)


def save(name: str, rows: list[dict], extra: dict | None = None) -> None:
    """Write results/<name>.json (the rows so far, with machine info)."""
    RESULTS.mkdir(exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), "rows": rows, **(extra or {})}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1))


def write(name: str, rows: list[dict], header: list[str], extra: dict | None = None) -> str:
    """Print a Markdown table of ``rows`` and write results/<name>.json with machine info."""
    save(name, rows, extra)
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
