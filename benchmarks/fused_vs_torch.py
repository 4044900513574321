"""Head-to-head: fnlearn's ``fused=True`` against torch's ``fused=True`` on one leaf.

    python benchmarks/fused_vs_torch.py [--sizes 1M,16M] [--rounds 5] [--reps 15]

The four optimizers torch has CPU fused kernels for (SGD with momentum, Adagrad, Adam, AdamW),
one float32 leaf, the same data for both (normal params, grads = 0.01 * params). Unlike
``update_throughput.py`` only these two variants share the process, and they alternate over
``--rounds`` rounds; ms = median over rounds of the median of ``--reps`` steps. Without torch
only fnlearn's rows are measured. On a GPU torch runs on the same card (fnlearn's fused=True is
the XLA rule there).
"""

from __future__ import annotations

import argparse
from functools import partial

import jax.numpy as jnp
import numpy as np
from _common import interleaved, median_ms, torch_device, write
from update_throughput import jax_variant, torch_variant

from fnlearn import optim

CASES = {"sgd": (lambda: optim.sgd(1e-3, momentum=0.9, fused=True), "SGD",
                 dict(lr=1e-3, momentum=0.9)),
         "adagrad": (lambda: optim.adagrad(1e-2, fused=True), "Adagrad", dict(lr=1e-2)),
         "adam": (lambda: optim.adam(1e-3, fused=True), "Adam", dict(lr=1e-3)),
         "adamw": (lambda: optim.adamw(1e-3, fused=True), "AdamW", dict(lr=1e-3))}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,16M")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--name", default="fused_vs_torch")
    a = ap.parse_args(argv)
    device = torch_device()
    rows = []
    for size in a.sizes.split(","):
        n = int(float(size[:-1]) * (1 << 20)) if size.endswith("M") else int(size)
        x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
        params, grads = {"w": jnp.asarray(x)}, {"w": jnp.asarray(x * 0.01)}
        for name, (fl, th, kwargs) in CASES.items():
            runs = {"fnlearn fused": jax_variant(fl(), params, grads)[1]}
            made = device and torch_variant(th, kwargs, [x], "fused", device)
            if made:
                runs["torch fused"] = made[1]
            times = interleaved({v: partial(median_ms, run, a.reps) for v, run in runs.items()},
                                a.rounds)
            base = float(np.median(times["fnlearn fused"]))
            for v, t in times.items():
                ms = float(np.median(t))
                rows.append(dict(optimizer=name, params=size, variant=v, ms=ms,
                                 vs_fnlearn=ms / base, rounds_ms=t))
                print(rows[-1], flush=True)
    write(a.name, rows, ["optimizer", "params", "variant", "ms", "vs_fnlearn"])
    return rows


if __name__ == "__main__":
    main()
