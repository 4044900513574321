"""The fused kernels of this checkout against another build of the kernel library, in one process.

    python benchmarks/fused_ab.py --baseline LIB [--sizes 1M,16M] [--only adam,sgd]
                                  [--reps 7] [--rounds 5] [--out FILE]

``LIB`` is another build of ``_fused.cc`` with the same kernel kinds, flag bits and scalar
order (an older commit's library, or one compiled with ``-march=native``). Both libraries are
registered under their own target names and the same jitted, donated ``fused=True`` step
(float32, one leaf) runs on each, the two interleaved round by round so the machine's drift
hits both alike; the figures are medians over rounds of per-round medians. This is how a
change to the kernel's code generation is checked for speed.
"""

from __future__ import annotations

import argparse
import ctypes
import json
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import interleaved, machine, median_ms

from fnlearn import optim
from fnlearn.optim import _fused

SIZES = {"1M": 1 << 20, "4M": 1 << 22, "16M": 1 << 24}
OPTIMIZERS = {
    "sgd": lambda: optim.sgd(1e-3, momentum=0.9, fused=True),
    "adam": lambda: optim.adam(1e-3, fused=True),
    "adamw": lambda: optim.adamw(1e-3, fused=True),
    "rmsprop": lambda: optim.rmsprop(1e-2, fused=True),
    "adagrad": lambda: optim.adagrad(1e-2, fused=True),
}
BASELINE_PREFIX = "Baseline"


def register_baseline(path: str) -> None:
    lib = ctypes.CDLL(path)
    for kernel in _fused.Kernel:
        jax.ffi.register_ffi_target(BASELINE_PREFIX + kernel.symbol,
                                    jax.ffi.pycapsule(getattr(lib, kernel.symbol)),
                                    platform="cpu")


def step_for(make, prefix: str):
    """A jitted donated fused step whose kernel calls go to the ``prefix``-ed targets."""
    call = _fused._partitioned_call

    def step(p, s, g):
        original = _fused._partitioned_call
        _fused._partitioned_call = lambda target, *a: call(prefix + target, *a)
        try:
            return make().apply(g, s, p)
        finally:
            _fused._partitioned_call = original

    return jax.jit(step, donate_argnums=(0, 1))


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="the other build of the kernel library")
    ap.add_argument("--sizes", default="1M,16M")
    ap.add_argument("--only", default="sgd,adam")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, help="also write the rows and the machine as JSON")
    a = ap.parse_args(argv)
    assert _fused.load(), "this checkout's library: python -m fnlearn.optim.build_fused"
    register_baseline(a.baseline)
    rows = []
    for size in a.sizes.split(","):
        for name in a.only.split(","):
            rng = np.random.default_rng(0)
            params = {"w": jnp.asarray(rng.standard_normal(SIZES[size]), jnp.float32)}
            grads = {"w": jnp.asarray(rng.standard_normal(SIZES[size]), jnp.float32)}
            live = {}
            for variant, prefix in (("baseline", BASELINE_PREFIX), ("this checkout", "")):
                step = step_for(OPTIMIZERS[name], prefix)
                box = [jax.tree.map(jnp.copy, params), OPTIMIZERS[name]().init(params)]
                hlo = step.lower(*box, grads).compile().as_text()
                assert f'custom_call_target="{prefix}FnlearnFused' in hlo, variant

                def run(step=step, box=box, grads=grads):
                    box[0], box[1] = step(box[0], box[1], grads)
                    jax.block_until_ready(box[0])

                live[variant] = partial(median_ms, run, a.reps)
            times = interleaved(live, a.rounds)
            base, new = (float(np.median(times[v])) for v in ("baseline", "this checkout"))
            rows.append({"optimizer": name, "size": size, "baseline_ms": base, "ms": new,
                         "ratio": new / base})
            print(f"{name:8s} {size:>4s}  baseline {base:7.3f} ms  this checkout {new:7.3f} ms"
                  f"  ratio {new / base:.3f}", flush=True)
    if a.out:
        a.out.write_text(json.dumps({"baseline": a.baseline, "machine": machine(),
                                     "rows": rows}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
