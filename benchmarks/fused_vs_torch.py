"""Head-to-head: fnlearn's ``fused=True`` against torch's ``fused=True`` on one leaf.

    python benchmarks/fused_vs_torch.py [--sizes 1M,16M] [--rounds 5] [--reps 100] [--shared]

The four optimizers torch has CPU fused kernels for (SGD with momentum, Adagrad, Adam, AdamW),
one float32 leaf, the same data for both (normal params, grads = 0.01 * params). Unlike
``update_throughput.py`` only these two variants are measured, and they alternate over
``--rounds`` rounds; ms = median over rounds of the median of ``--reps`` updates.

Each side runs in a process of its own (a spawned worker that imports only its runtime, as a
user's training process would), so neither runtime's idle threads share the cores with the
other's work; each block of steps starts with a quarter as many warm-up calls. ``--shared``
measures both in this process instead, the method of the third session (log item 22).
The row "fnlearn fused, 20 per call" runs 20 updates in one jitted call (a ``lax.scan``) and
reports ms per update: the kernel without a host round trip per update, as it runs inside a
jitted train step (log item 22). Without torch only fnlearn's rows are measured. On a GPU
torch runs on the same card (fnlearn's fused=True is the XLA rule there).
"""

from __future__ import annotations

import argparse
import multiprocessing
from functools import partial

import jax.numpy as jnp
import numpy as np
from _common import interleaved, median_ms, torch_device, write
from update_throughput import jax_variant, parse_size, torch_variant

from fnlearn import optim

CASES = {"sgd": (lambda: optim.sgd(1e-3, momentum=0.9, fused=True), "SGD",
                 dict(lr=1e-3, momentum=0.9)),
         "adagrad": (lambda: optim.adagrad(1e-2, fused=True), "Adagrad", dict(lr=1e-2)),
         "adam": (lambda: optim.adam(1e-3, fused=True), "Adam", dict(lr=1e-3)),
         "adamw": (lambda: optim.adamw(1e-3, fused=True), "AdamW", dict(lr=1e-3))}
# variant -> (worker, updates per call)
VARIANTS = {"fnlearn fused": ("fnlearn", 1), "fnlearn fused, 20 per call": ("fnlearn", 20),
            "torch fused": ("torch", 1)}


def make_run(side: str, name: str, n: int, device: str | None, k: int = 1):
    """One call of ``side``'s fused ``name`` on ``n`` parameters (``k`` updates in one jitted
    call for fnlearn: a ``lax.scan``), or None where ``side`` has no such kernel."""
    x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    fl, th, kwargs = CASES[name]
    if side == "torch":
        made = torch_variant(th, kwargs, [x], "fused", device)
        return made and made[1]
    return jax_variant(fl(), {"w": jnp.asarray(x)}, {"w": jnp.asarray(x * 0.01)},
                       per_call=k)[1]


def per_update_ms(run, reps: int, k: int) -> float:
    """Median ms per update of ``run`` (``k`` updates per call) over about ``reps`` updates,
    after a quarter as many warm-up calls (the other side has just used the cores and caches).
    """
    calls = max(1, reps // k)
    return median_ms(run, calls, warmup=max(2, calls // 4)) / k


def worker(conn, side: str) -> None:
    """Serve ``(name, n, k, reps)`` requests with the median ms per update over ``reps``
    updates, ``k`` per call (None where ``side`` has no kernel for it); only ``side``'s
    runtime does work in this process."""
    device = torch_device() if side == "torch" else None
    built: dict = {}
    while (msg := conn.recv()) is not None:
        name, n, k, reps = msg
        if (name, n, k) not in built:
            if (name, n) not in {key[:2] for key in built}:
                built.clear()  # free the previous case's buffers
            built[name, n, k] = make_run(side, name, n, device, k)
        run = built[name, n, k]
        conn.send(None if run is None else per_update_ms(run, reps, k))


class Isolated:
    """The two sides as spawned worker processes (torch only when it is installed)."""

    def __init__(self):
        ctx = multiprocessing.get_context("spawn")
        self.conns, self.procs = {}, []
        for side in ("fnlearn", "torch") if torch_device() else ("fnlearn",):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker, args=(child, side), daemon=True)
            proc.start()
            self.conns[side], self.procs = parent, [*self.procs, proc]

    def measures(self, name: str, n: int, reps: int) -> dict:
        def ask(side, k):
            self.conns[side].send((name, n, k, reps))
            return self.conns[side].recv()

        return {v: partial(ask, side, k) for v, (side, k) in VARIANTS.items()
                if side in self.conns}

    def close(self) -> None:
        for conn in self.conns.values():
            conn.send(None)
        for proc in self.procs:
            proc.join(timeout=30)


class Shared:
    """Both sides in this process (the old method; ``--shared``)."""

    def __init__(self):
        self.device = torch_device()

    def measures(self, name: str, n: int, reps: int) -> dict:
        out = {}
        for v, (side, k) in VARIANTS.items():
            run = (side == "fnlearn" or self.device) and make_run(side, name, n, self.device, k)
            if run:
                out[v] = partial(per_update_ms, run, reps, k)
        return out

    def close(self) -> None:
        pass


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,16M")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--shared", action="store_true", help="both sides in one process")
    ap.add_argument("--name", default="fused_vs_torch")
    a = ap.parse_args(argv)
    sides = Shared() if a.shared else Isolated()
    rows = []
    try:
        for size in a.sizes.split(","):
            for name in CASES:
                measures = sides.measures(name, parse_size(size), a.reps)
                times = interleaved(measures, a.rounds)
                times = {v: t for v, t in times.items() if None not in t}
                base = float(np.median(times["fnlearn fused"]))
                for v, t in times.items():
                    ms = float(np.median(t))
                    rows.append(dict(optimizer=name, params=size, variant=v, ms=ms,
                                     vs_fnlearn=ms / base, rounds_ms=t))
                    print(rows[-1], flush=True)
    finally:
        sides.close()
    write(a.name, rows, ["optimizer", "params", "variant", "ms", "vs_fnlearn"],
          {"processes": "shared" if a.shared else "isolated"})
    return rows


if __name__ == "__main__":
    main()
