"""A train step on a many-leaf model: fnlearn on the tree, fnlearn on Flat params, optax.

    python benchmarks/train_step_many_leaves.py [--size 16M] [--leaves 500] [--reps 9]

The model is a toy with real matmul gradients: each leaf is a (k, 64) matrix W_i and
loss = sum_i ||W_i @ X||^2 for a fixed X of shape (64, 8), so every gradient is produced by a
dot (a temporary buffer), as in a network. Adam, float32, donated ``make_train_step``. Reports
the first call (trace + compile + run) and the median step time; the row "loss + grads only"
is the model's own share of both (its first call minus it is what the update adds to
compile). The tree row is the default (on CPU the fused kernel runs the update); on an
accelerator the ``fused=False`` row is left out (the XLA rule is the default there).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import leaf_sizes, median_ms, on_accelerator, write

from fnlearn import optim, train


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="16M")
    ap.add_argument("--leaves", type=int, default=500)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--name", default="train_step_many_leaves")
    a = ap.parse_args(argv)
    n = int(float(a.size[:-1]) * 2**20) if a.size.endswith("M") else int(a.size)
    rng = np.random.default_rng(0)
    sizes = [max(1, s // 64) for s in leaf_sizes(n, a.leaves)]
    params = {f"p{i:03d}": jnp.asarray(rng.standard_normal((k, 64)) * 0.01, jnp.float32)
              for i, k in enumerate(sizes)}
    x = jnp.asarray(rng.standard_normal((64, 8)), jnp.float32)

    def loss_fn(p, b):
        return sum(jnp.sum((w @ b) ** 2) for w in jax.tree.leaves(p))

    variants = {"fnlearn (tree)": (optim.adam(1e-3), False),
                "fnlearn (tree, fused=False)": (optim.adam(1e-3, fused=False), False),
                "fnlearn (flat=True)": (optim.adam(1e-3), True),
                "optax (tree)": (optax.adam(1e-3), False)}
    if on_accelerator():
        del variants["fnlearn (tree, fused=False)"]
    rows = []
    for name, (opt, flat) in variants.items():
        step = train.make_train_step(loss_fn, opt)
        live = [train.TrainState.create(params, opt, flat=flat)]

        def run(live=live, step=step):
            live[0], m = step(live[0], x)
            jax.block_until_ready(m["loss"])

        t = time.perf_counter()
        run()
        first = time.perf_counter() - t
        rows.append(dict(variant=name, params=sum(k * 64 for k in sizes), leaves=a.leaves,
                         first_call_s=first, step_ms=median_ms(run, a.reps, warmup=1)))
        print(rows[-1], flush=True)
        del live
    # the model's share: loss and gradients alone, jitted (what every variant's step contains)
    grads_fn = jax.jit(jax.value_and_grad(loss_fn))

    def run_grads():
        jax.block_until_ready(grads_fn(params, x))

    t = time.perf_counter()
    run_grads()
    first = time.perf_counter() - t
    rows.append(dict(variant="loss + grads only (no update)", params=sum(k * 64 for k in sizes),
                     leaves=a.leaves, first_call_s=first,
                     step_ms=median_ms(run_grads, a.reps, warmup=1)))
    print(rows[-1], flush=True)
    write(a.name, rows, ["variant", "params", "leaves", "first_call_s",
                                           "step_ms"])
    return rows


if __name__ == "__main__":
    main()
