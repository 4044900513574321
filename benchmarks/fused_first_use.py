"""First-use latency of ``fused=True``: a fresh process, from ``import fnlearn`` to the first
finished fused step, with a cold kernel cache, a warm one, and no compiler on ``PATH``.

    python benchmarks/fused_first_use.py [--root PATH] [--repeats 3] [--out FILE]

Each case runs in its own subprocess (``--root`` is the fnlearn source tree it imports, so
two checkouts can be compared on one machine): ``import fnlearn.optim``, construct
``adam(1e-3, fused=True)``, then jit and run one donated ``update_and_apply`` step on a
3-leaf float32 tree; the figures are medians over ``--repeats`` processes.

- ``cold``: an empty ``$FNLEARN_CACHE`` (a new temporary directory per process);
- ``warm``: the cache holding the library (built by ``python -m fnlearn.optim.build_fused``,
  timed as "build command", where the checkout has that command; else filled by a first,
  untimed process that builds on first use);
- ``no compiler``: an empty cache, ``PATH`` holding only Python's directory and ``CXX``
  naming a missing binary.

"kernel" says whether the step ran the fused kernel (its custom call is in the compiled
step) and "outcome" whether the process trained, raised, or warned.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, time, warnings
t0 = time.perf_counter()
import jax, jax.numpy as jnp
from fnlearn import optim
t1 = time.perf_counter()
caught = []
with warnings.catch_warnings(record=True) as rec:
    warnings.simplefilter("always")
    try:
        opt = optim.adam(1e-3, fused=True)
        t2 = time.perf_counter()
        params = {"w": jnp.ones((256, 256)), "b": jnp.zeros(256), "s": jnp.ones(())}
        step = jax.jit(lambda p, s, g: optim.update_and_apply(opt, g, s, p),
                       donate_argnums=(0, 1))
        p, s = step(jax.tree.map(jnp.copy, params), opt.init(params), params)
        jax.block_until_ready(p)
        t3 = time.perf_counter()
        hlo = step.lower(params, opt.init(params), params).compile().as_text()
        outcome = "trained"
    except Exception as e:  # the case where fused=True cannot start
        t2 = t3 = time.perf_counter()
        hlo, outcome = "", f"raised {type(e).__name__}"
    caught = [str(w.message).splitlines()[0] for w in rec]
print(json.dumps({"import_s": t1 - t0, "construct_s": t2 - t1, "first_step_s": t3 - t2,
                  "total_s": t3 - t0, "kernel": "FnlearnFused" in hlo, "outcome": outcome,
                  "warnings": caught}))
"""


def run_case(root: Path, case: str, cache: Path | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "JAX_PLATFORMS": "cpu"}
    env["FNLEARN_CACHE"] = str(cache) if cache is not None else tempfile.mkdtemp()
    if case == "no compiler":
        env["PATH"] = str(Path(sys.executable).parent)
        env["CXX"] = "/nonexistent/c++"
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, cwd=tempfile.gettempdir(), timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    warm = Path(tempfile.mkdtemp())
    rows = []
    if (a.root / "fnlearn" / "optim" / "build_fused.py").exists():  # built ahead of time
        env = {**os.environ, "PYTHONPATH": str(a.root), "FNLEARN_CACHE": str(warm)}
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fnlearn.optim.build_fused"], env=env, check=True,
                       cwd=tempfile.gettempdir(), capture_output=True)
        rows.append({"case": "build command", "total_s": time.perf_counter() - t})
        print(f"build command: {rows[-1]['total_s']:.2f} s", flush=True)
    else:  # the checkout builds on first use: a first, untimed process fills the cache
        run_case(a.root, "warm", warm)
    for case in ("cold", "warm", "no compiler"):
        runs = [run_case(a.root, case, warm if case == "warm" else None)
                for _ in range(a.repeats)]
        row = {"case": case, **{k: float(np.median([r[k] for r in runs]))
                                for k in ("import_s", "construct_s", "first_step_s", "total_s")},
               "kernel": runs[0]["kernel"], "outcome": runs[0]["outcome"],
               "warnings": runs[0]["warnings"]}
        rows.append(row)
        print(f"{case:12s} total {row['total_s']:6.2f} s  (import {row['import_s']:.2f}, "
              f"construct {row['construct_s']:.2f}, first step {row['first_step_s']:.2f})  "
              f"kernel={row['kernel']}  {row['outcome']}  warnings={row['warnings']}",
              flush=True)
    if a.out:
        a.out.write_text(json.dumps({"root": str(a.root), "rows": rows}, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
