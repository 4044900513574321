"""linear_cross_entropy (chunked) against linear + cross_entropy: peak memory and time.

    python benchmarks/linear_cross_entropy.py [--n 512] [--d 256] [--vocab 32768]
                                              [--chunks 8,64] [--reps 3] [--torch]

One call = the mean loss of class-index targets over ``n`` rows and its gradient with respect
to the input ``(n, d)`` and the linear weight ``(vocab, d)``, float32, jitted under
``jax.value_and_grad``. Variants: ``linear + cross_entropy`` (fnlearn's cross_entropy on the
materialized ``(n, vocab)`` logits), optax's ``softmax_cross_entropy_with_integer_labels`` on
the same logits, and fnlearn ``linear_cross_entropy`` with its default (8 chunks), with
torch's chunk rule (``LinearCrossEntropyOptions()``) and with each ``--chunks`` row count.
``peak MB`` is XLA's memory analysis of the compiled call (arguments + outputs +
temporaries: the buffers live at its peak), independent of the machine's load;
``ms`` is the median of ``--reps`` calls after a warm-up (compile outside).
``--torch`` adds torch's ``F.linear_cross_entropy`` (reference path and chunked options),
time only.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import median_ms, write

from fnlearn import losses


def compiled_call(loss, x, w, y):
    """(peak bytes by XLA's memory analysis, a function running one value-and-grad call)."""
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(x, w, y).compile()
    m = compiled.memory_analysis()
    peak = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes

    def run():
        jax.block_until_ready(compiled(x, w, y))

    return peak, run


def torch_rows(x, w, y, chunks, reps):
    import torch
    import torch.nn.functional as F

    tx = torch.tensor(np.asarray(x), requires_grad=True)
    tw = torch.tensor(np.asarray(w), requires_grad=True)
    ty = torch.tensor(np.asarray(y), dtype=torch.int64)
    rows = []
    variants = {"torch F.linear_cross_entropy (options=None)": None,
                "torch chunked (default options)": torch.nn.LinearCrossEntropyOptions()}
    variants.update({f"torch chunked ({c} rows)": torch.nn.LinearCrossEntropyOptions(
        batch_chunk_size=c, chunking_method=None) for c in chunks})
    for name, options in variants.items():
        def run(options=options):
            loss = F.linear_cross_entropy(tx, tw, ty, options=options)
            torch.autograd.grad(loss, (tx, tw))

        rows.append({"variant": name, "peak MB": None, "ms": median_ms(run, reps, warmup=1)})
    return rows


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--chunks", default="8,64")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--torch", action="store_true")
    args = ap.parse_args(argv)
    chunks = [int(c) for c in args.chunks.split(",") if c]

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((args.n, args.d)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((args.vocab, args.d)) / np.sqrt(args.d), jnp.float32)
    y = jnp.asarray(rng.integers(0, args.vocab, args.n), jnp.int32)

    variants = {
        "linear + cross_entropy": lambda x, w, y: losses.cross_entropy(x @ w.T, y),
        "linear + optax softmax_cross_entropy": lambda x, w, y: (
            optax.losses.softmax_cross_entropy_with_integer_labels(x @ w.T, y).mean()),
        "linear_cross_entropy (default: 8 chunks)": lambda x, w, y: (
            losses.linear_cross_entropy(x, w, y)),
        "linear_cross_entropy (torch's rule)": lambda x, w, y: losses.linear_cross_entropy(
            x, w, y, options=losses.LinearCrossEntropyOptions()),
    }
    for c in chunks:
        opts = losses.LinearCrossEntropyOptions(batch_chunk_size=c, chunking_method=None)
        variants[f"linear_cross_entropy ({c} rows)"] = (
            lambda x, w, y, opts=opts: losses.linear_cross_entropy(x, w, y, options=opts))

    rows, values = [], {}
    for name, loss in variants.items():
        peak, run = compiled_call(loss, x, w, y)
        values[name] = float(loss(x, w, y))
        rows.append({"variant": name, "peak MB": peak / 2**20,
                     "ms": median_ms(run, args.reps, warmup=1)})
    base = values["linear + cross_entropy"]
    for row in rows:
        row["loss - baseline"] = values[row["variant"]] - base
    if args.torch:
        rows += torch_rows(x, w, y, chunks, args.reps)
    logits_mb = args.n * args.vocab * 4 / 2**20
    print(f"n={args.n}, d={args.d}, vocab={args.vocab}, float32; the (n, vocab) logits alone: "
          f"{logits_mb:.0f} MB\n")
    write("linear_cross_entropy", rows, ["variant", "peak MB", "ms", "loss - baseline"],
          extra={"n": args.n, "d": args.d, "vocab": args.vocab, "reps": args.reps})
    return rows


if __name__ == "__main__":
    main()
