"""Optimizer update throughput and compile time: fnlearn vs optax vs torch vs a C ceiling.

    python benchmarks/update_throughput.py [--sizes 1M,16M] [--leaves 1,500] [--only adam,sgd]
                                           [--tree-opts adam,sgd] [--reps 15] [--rounds 3]

One update = read params, grads and state, write params and state (jitted, params and state
donated; torch: ``opt.step()`` on tensors whose ``.grad`` is set). "frac" is the C ceiling's
time over the measured time (1.0 = the speed of one fused C loop over the same bytes).
Variants: ``fnlearn-fused`` is ``fused=True`` (one C++ loop per buffer, in place, like
torch's fused kernels) on the tree, ``fnlearn-fused-flat`` the same on
a ``Flat``; ``fnlearn-flat`` keeps params, grads and state in one buffer per dtype
(:class:`fnlearn.flat.Flat`, what ``make_train_step(..., flat=True)`` uses); ``fnlearn-tree`` and
``optax`` keep one array per leaf (500-leaf trees only for ``--tree-opts``: XLA compiles one
kernel per leaf, which takes tens of seconds per optimizer). ``jax-dispatch`` is a jitted step
that returns the tree's params and state unchanged (donated): the time JAX takes to pass that
many buffers in and out of any jitted call, a floor under every tree variant.

On a GPU (JAX's default backend) torch runs on the same card, the ceiling is the same loop
as one jitted XLA fusion (``--ceiling xla``; ``_common.XlaCeiling``), and the ``fused=True``
rows are left out: there fused=True runs the XLA rule, i.e. the ``fnlearn-tree`` rows.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import (
    ceiling,
    interleaved,
    leaf_sizes,
    median_ms,
    on_accelerator,
    save,
    torch_device,
    torch_synced,
    write,
)

from fnlearn import optim
from fnlearn.flat import Flat

# name: (fnlearn factory (takes keywords, e.g. fused=True), optax factory or None,
#        torch (class, kwargs) or None, arrays read, arrays written)
CATALOGUE = {
    "sgd": (lambda **kw: optim.sgd(1e-3, momentum=0.9, **kw), lambda: optax.sgd(1e-3, 0.9),
            ("SGD", dict(lr=1e-3, momentum=0.9)), 3, 2),
    "rmsprop": (lambda **kw: optim.rmsprop(1e-2, **kw),
                lambda: optax.rmsprop(1e-2, 0.99, eps_in_sqrt=False),
                ("RMSprop", dict(lr=1e-2)), 3, 2),
    "adagrad": (lambda **kw: optim.adagrad(1e-2, **kw), None, ("Adagrad", dict(lr=1e-2)), 3, 2),
    "adam": (lambda **kw: optim.adam(1e-3, **kw), lambda: optax.adam(1e-3),
             ("Adam", dict(lr=1e-3)), 4, 3),
    "adamw": (lambda **kw: optim.adamw(1e-3, **kw), lambda: optax.adamw(1e-3, weight_decay=1e-2),
              ("AdamW", dict(lr=1e-3)), 4, 3),
    "adamax": (lambda **kw: optim.adamax(**kw), lambda: optax.adamax(2e-3), ("Adamax", {}), 4, 3),
    "nadam": (lambda **kw: optim.nadam(**kw), None, ("NAdam", {}), 4, 3),
    "radam": (lambda **kw: optim.radam(**kw), None, ("RAdam", {}), 4, 3),
    "adadelta": (lambda **kw: optim.adadelta(**kw), lambda: optax.adadelta(1.0, 0.9, 1e-6),
                 ("Adadelta", {}), 4, 3),
    "asgd": (lambda **kw: optim.asgd(**kw), None, ("ASGD", {}), 3, 2),
    "rprop": (lambda **kw: optim.rprop(**kw), None, ("Rprop", {}), 4, 3),
}
FUSED = {"SGD", "Adam", "AdamW", "Adagrad"}


def parse_size(s: str) -> int:
    return int(float(s[:-1]) * (1 << 20)) if s.endswith("M") else int(s)


def jax_variant(tx, params, grads, identity=False, per_call=1):
    """Compile seconds and a function that runs one donated update+apply step (``per_call``
    steps in one jitted ``lax.scan`` when above 1); with ``identity`` a step that returns
    params and state unchanged: what JAX's dispatch of those buffers costs (the floor under
    any jitted update of that tree)."""

    def one(p, s, g):
        return (p, s) if identity else optim.update_and_apply(tx, g, s, p)

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(p, s, g):
        if per_call == 1:
            return one(p, s, g)
        return jax.lax.scan(lambda c, _: (one(*c, g), None), (p, s), None, length=per_call)[0]

    live = [jax.tree.map(lambda x: x + 0, params), tx.init(params)]
    t = time.perf_counter()
    compiled = step.lower(*live, grads).compile()
    compile_s = time.perf_counter() - t

    def run():
        live[0], live[1] = compiled(live[0], live[1], grads)
        jax.block_until_ready(live[0])

    return compile_s, run


def torch_variant(name, kwargs, arrays, mode, device):
    """None, and a function that runs ``opt.step()`` once (synced on a GPU); None where torch
    has no such kernel on ``device`` (a :func:`_common.torch_device`; it raises on the first
    step)."""
    import torch

    ps = [torch.tensor(np.asarray(a), device=device).requires_grad_() for a in arrays]
    for p in ps:
        p.grad = p.detach() * 0.01
    flags = {"loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}
    try:
        opt = getattr(torch.optim, name)(ps, **kwargs, **flags[mode])
        run = torch_synced(opt.step, device)
        run()
    except RuntimeError as e:  # e.g. a fused kernel torch has only on CPU
        print(f"torch {name} {mode} on {device}: {e}", flush=True)
        return None
    return None, run


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,16M")
    ap.add_argument("--leaves", default="1,500")
    ap.add_argument("--only", default=",".join(CATALOGUE))
    ap.add_argument("--tree-opts", default="adam,sgd")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all variants")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-fused", action="store_true", help="skip fnlearn's fused=True")
    ap.add_argument("--ceiling", default="auto", choices=["auto", "c", "xla"],
                    help="auto: the C loop on CPU, one XLA fusion on an accelerator")
    ap.add_argument("--name", default="update_throughput")
    a = ap.parse_args(argv)
    ceil = ceiling(a.ceiling)
    device = torch_device(not a.no_torch)
    fused_rows = not (a.no_fused or on_accelerator())
    rows = []
    for size in a.sizes.split(","):
        n = parse_size(size)
        for leaves in map(int, a.leaves.split(",")):
            rng = np.random.default_rng(0)
            arrays = [rng.standard_normal(s, dtype=np.float32) for s in leaf_sizes(n, leaves)]
            tree = {f"p{i:03d}": jnp.asarray(x) for i, x in enumerate(arrays)}
            gtree = jax.tree.map(lambda x: x * 0.01, tree)
            flat, gflat = Flat.of(tree), Flat.of(gtree)
            for name in a.only.split(","):
                fl, ox, th, nin, nout = CATALOGUE[name]
                variants = {"jax-dispatch": jax_variant(fl(), tree, gtree, True),
                            "fnlearn-flat": jax_variant(fl(), flat, gflat)}
                if fused_rows:
                    fused = partial(fl, fused=True)
                    variants["fnlearn-fused"] = jax_variant(fused(), tree, gtree)
                    if leaves > 1:
                        variants["fnlearn-fused-flat"] = jax_variant(fused(), flat, gflat)
                if leaves == 1 or name in a.tree_opts.split(","):
                    variants["fnlearn-tree"] = jax_variant(fl(), tree, gtree)
                    if ox is not None:
                        variants["optax"] = jax_variant(ox(), tree, gtree)
                if device and th is not None:
                    modes = ["foreach", "fused"] if th[0] in FUSED else ["foreach"]
                    for mode in (["loop", *modes] if leaves == 1 else modes):
                        made = torch_variant(*th, arrays, mode, device)
                        if made is not None:
                            variants[f"torch-{mode}"] = made
                # ms = median over interleaved rounds of each round's median
                measures = {"ceiling": partial(ceil.ms, n, nin, nout, a.reps)}
                measures.update({v: partial(median_ms, run, a.reps)
                                 for v, (_, run) in variants.items()})
                times = interleaved(measures, a.rounds)
                c_ms = float(np.median(times["ceiling"])) if times["ceiling"][0] else None
                for v, (compile_s, _) in variants.items():
                    ms = float(np.median(times[v]))
                    rows.append(dict(optimizer=name, params=size, leaves=leaves, ceiling_ms=c_ms,
                                     variant=v, ms=ms, compile_s=compile_s,
                                     frac=(c_ms / ms) if c_ms else None, rounds_ms=times[v]))
                print(rows[-1], flush=True)
                save(a.name, rows)  # so far: a run stopped early keeps what it measured
                del variants
    write(a.name, rows, ["optimizer", "params", "leaves", "variant", "ms", "frac", "compile_s",
                         "ceiling_ms"])
    return rows


if __name__ == "__main__":
    main()
