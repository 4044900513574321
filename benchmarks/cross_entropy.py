"""Cross-entropy loss and its gradient: fnlearn vs optax vs torch, by batch and class count.

    python benchmarks/cross_entropy.py [--shapes 256x10,256x1000,4096x1000,1024x32000]
                                       [--reps 30] [--rounds 3]

One call = the mean loss of class-index targets and its gradient with respect to the logits
(float32): fnlearn ``cross_entropy(x, y)`` (torch's semantics: ``ignore_index=-100`` mask,
nan for an out-of-range class) jitted under ``jax.value_and_grad``; optax
``softmax_cross_entropy_with_integer_labels(x, y).mean()`` likewise; torch
``F.cross_entropy(x, y)`` forward + ``backward()`` (on the GPU when JAX runs on one). ms =
median over interleaved rounds of each round's median of ``--reps`` calls. ``fusions`` counts
the fusions in XLA's optimized HLO of the jitted call (each one a kernel launch on a GPU).
"""

from __future__ import annotations

import argparse
import re
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import interleaved, median_ms, torch_device, torch_synced, write

from fnlearn import losses


def jax_variant(loss, x, y):
    """(fusions in the compiled HLO, a function running one value-and-grad call)."""
    compiled = jax.jit(jax.value_and_grad(loss)).lower(x, y).compile()
    entry = compiled.as_text().split("ENTRY", 1)[1]
    fusions = len(re.findall(r" fusion\(", entry))

    def run():
        jax.block_until_ready(compiled(x, y))

    return fusions, run


def torch_variant(x, y, device):
    import torch

    xt = torch.tensor(np.asarray(x), device=device, requires_grad=True)
    yt = torch.tensor(np.asarray(y), device=device).long()

    def step():
        xt.grad = None
        loss = torch.nn.functional.cross_entropy(xt, yt)
        loss.backward()
        return loss

    return None, torch_synced(step, device)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="256x10,256x1000,4096x1000,1024x32000")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--name", default="cross_entropy")
    a = ap.parse_args(argv)
    device = torch_device(not a.no_torch)
    rows = []
    for shape in a.shapes.split(","):
        n, c = map(int, shape.split("x"))
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((n, c), dtype=np.float32))
        y = jnp.asarray(rng.integers(0, c, n, dtype=np.int32))
        variants = {
            "fnlearn": jax_variant(lambda x, y: losses.cross_entropy(x, y), x, y),
            "optax": jax_variant(
                lambda x, y: optax.softmax_cross_entropy_with_integer_labels(x, y).mean(), x, y),
        }
        if device:
            variants["torch"] = torch_variant(x, y, device)
        times = interleaved({v: partial(median_ms, run, a.reps)
                             for v, (_, run) in variants.items()}, a.rounds)
        base = float(np.median(times["fnlearn"]))
        for v, (fusions, _) in variants.items():
            ms = float(np.median(times[v]))
            rows.append(dict(shape=shape, variant=v, ms=ms, vs_fnlearn=ms / base,
                             fusions=fusions, rounds_ms=times[v]))
            print(rows[-1], flush=True)
    write(a.name, rows, ["shape", "variant", "ms", "vs_fnlearn", "fusions"])
    return rows


if __name__ == "__main__":
    main()
