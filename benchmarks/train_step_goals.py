"""The optimizer's share of a whole train step (issue 18's goals), every figure against its
baseline measured in the same run.

    python benchmarks/train_step_goals.py [--size 16M] [--leaves 500] [--reps 5] [--rounds 3]
                                          [--optimizers adam,sgd,rmsprop,adagrad,adamw]
                                          [--model toy|stack]

``--model toy`` (the default) is benchmarks/train_step_many_leaves.py's toy: each leaf a (k, 64)
matrix W_i, loss = sum_i ||W_i @ X||^2, so every gradient comes out of a dot (a buffer of its
own), float32. ``--model stack`` is a layer stack, ``--leaves`` square tanh layers
(``x <- tanh(x @ W_i)``, batch 32, mean square of the output): its backward pass reads each
weight for the layers below after that weight's gradient is known, so an update per leaf (the
XLA rule, optax) makes XLA copy every weight but the first before updating it in place.
Three groups, each built (compiled) once and then timed in ``--rounds`` interleaved rounds
(median of ``--reps`` steps per round, median over rounds):

- ``own step``: what a user writes, ``jax.jit(value_and_grad + opt.update + apply_updates)``
  with params and state donated, fnlearn's optimizer against optax's equivalent (same
  hyperparameters), one pair per optimizer, and the same step with fnlearn's
  ``update_and_apply`` in place of ``update + apply_updates`` (the fused kernel on CPU);
  goal: fnlearn <= 0.85x optax.
- ``make_train_step``: fnlearn's default (the fused kernel on CPU), ``fused=False`` (the XLA
  rule), ``TrainState.create(flat=True)``, and optax's Adam in the same ``make_train_step``,
  against optax's Adam in the user's own step (the goal's baseline: <= 0.85x) and the two
  loss-and-grads-only steps (a plain jitted ``value_and_grad``, whose gradient is a fresh
  buffer, and the same writing the gradient into a donated buffer kept from the previous
  call, as ``make_train_step`` does). The update's marginal cost = step - the
  loss-and-grads step of the same kind, against the C ceiling (benchmarks/ceiling.c: Adam's
  bytes, 4 arrays read and 3 written, timed in the same rounds; goal <= 1.5x).
- first call (trace + compile + one step) of each step, from the same objects.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import ceiling, interleaved, leaf_sizes, median_ms, on_accelerator, write

from fnlearn import optim, train

#: fnlearn optimizer and the optax one computing the same update (torch's defaults otherwise)
PAIRS = {
    "adam": (lambda: optim.adam(1e-3), lambda: optax.adam(1e-3)),
    "sgd": (lambda: optim.sgd(1e-3, momentum=0.9), lambda: optax.sgd(1e-3, momentum=0.9)),
    "rmsprop": (lambda: optim.rmsprop(1e-3),
                lambda: optax.rmsprop(1e-3, decay=0.99, eps=1e-8, eps_in_sqrt=False)),
    "adagrad": (lambda: optim.adagrad(1e-3),
                lambda: optax.adagrad(1e-3, initial_accumulator_value=0.0, eps=1e-10)),
    "adamw": (lambda: optim.adamw(1e-3), lambda: optax.adamw(1e-3, weight_decay=1e-2)),
}


def model(size: str, leaves: int):
    n = int(float(size[:-1]) * 2**20) if size.endswith("M") else int(size)
    rng = np.random.default_rng(0)
    sizes = [max(1, s // 64) for s in leaf_sizes(n, leaves)]
    params = {f"p{i:03d}": jnp.asarray(rng.standard_normal((k, 64)) * 0.01, jnp.float32)
              for i, k in enumerate(sizes)}
    x = jnp.asarray(rng.standard_normal((64, 8)), jnp.float32)

    def loss_fn(p, b):
        return sum(jnp.sum((w @ b) ** 2) for w in jax.tree.leaves(p))

    return params, x, loss_fn


def stack_model(size: str, layers: int):
    """``layers`` square tanh layers with ``size`` parameters in all (float32), batch 32."""
    n = int(float(size[:-1]) * 2**20) if size.endswith("M") else int(size)
    width = int(np.sqrt(n / layers))
    rng = np.random.default_rng(0)
    params = {f"w{i:03d}": jnp.asarray(rng.standard_normal((width, width)) / np.sqrt(width),
                                       jnp.float32) for i in range(layers)}
    x = jnp.asarray(rng.standard_normal((32, width)), jnp.float32)

    def loss_fn(p, b):
        for w in jax.tree.leaves(p):
            b = jnp.tanh(b @ w)
        return jnp.mean(b ** 2)

    return params, x, loss_fn


def copy(tree):
    return jax.tree.map(jnp.copy, tree)


def own_step(loss_fn, opt, params, x, apply_updates):
    """The user's own jitted, donated step; returns (run, first_call_s). ``apply_updates``
    None: fnlearn's ``update_and_apply`` instead of ``update`` + ``apply_updates``."""

    def step(p, s, b):
        loss, g = jax.value_and_grad(loss_fn)(p, b)
        if apply_updates is None:
            p, s = optim.update_and_apply(opt, g, s, p)
            return p, s, loss
        u, s = opt.update(g, s, p)
        return apply_updates(p, u), s, loss

    jitted = jax.jit(step, donate_argnums=(0, 1))
    live = [copy(params), opt.init(params)]

    def run():
        live[0], live[1], loss = jitted(live[0], live[1], x)
        jax.block_until_ready(loss)

    return timed_first(run)


def own_step_kept(loss_fn, opt, params, x):
    """The user's own step written as docs/guides/performance.md recommends on CPU:
    ``update_and_apply``, and the gradient returned and passed back donated on the next call
    (``step(grads, params, state, batch)``), so it is written in place."""

    def step(g_buffer, p, s, b):
        del g_buffer
        loss, g = jax.value_and_grad(loss_fn)(p, b)
        p, s = optim.update_and_apply(opt, g, s, p, after=loss)
        return g, p, s, loss

    jitted = jax.jit(step, donate_argnums=(0, 1, 2), keep_unused=True)
    live = [jax.tree.map(jnp.zeros_like, params), copy(params), opt.init(params)]

    def run():
        *out, loss = jitted(*live, x)
        live[:] = out
        jax.block_until_ready(loss)

    return timed_first(run)


def train_step(loss_fn, opt, params, x, flat=False):
    step = train.make_train_step(loss_fn, opt)
    live = [train.TrainState.create(params, opt, flat=flat)]

    def run():
        live[0], m = step(live[0], x)
        jax.block_until_ready(m["loss"])

    return timed_first(run)


def grads_only(loss_fn, params, x, kept: bool):
    """Loss and gradients alone: a fresh gradient buffer each call, or (``kept``) written into
    the donated buffer of the previous call, as make_train_step does."""
    vg = jax.value_and_grad(loss_fn)
    if not kept:
        jitted = jax.jit(vg)

        def run():
            jax.block_until_ready(jitted(params, x))

        return timed_first(run)
    jitted = jax.jit(lambda buf, p, b: vg(p, b)[::-1], donate_argnums=0, keep_unused=True)
    live = [jax.tree.map(jnp.zeros_like, params)]

    def run():
        live[0], loss = jitted(live[0], params, x)
        jax.block_until_ready(loss)

    return timed_first(run)


def timed_first(run):
    t = time.perf_counter()
    run()
    return run, time.perf_counter() - t


def measure(runs: dict, reps: int, rounds: int, timers: dict | None = None
            ) -> dict[str, float | None]:
    """Median over interleaved rounds of each run's median ms (``timers``: callables that
    return ms themselves, or None)."""
    timers = {**{k: (lambda r=r: median_ms(r, reps, warmup=1)) for k, r in runs.items()},
              **(timers or {})}
    times = interleaved(timers, rounds)
    return {k: None if None in v else float(np.median(v)) for k, v in times.items()}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="16M")
    ap.add_argument("--leaves", type=int, default=500)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--optimizers", default=",".join(PAIRS))
    ap.add_argument("--no-own", action="store_true", help="skip the own-step group")
    ap.add_argument("--no-train-step", action="store_true",
                    help="only the own-step group")
    ap.add_argument("--model", choices=("toy", "stack"), default="toy")
    ap.add_argument("--name", default="train_step_goals")
    a = ap.parse_args(argv)
    params, x, loss_fn = (model if a.model == "toy" else stack_model)(a.size, a.leaves)
    n = sum(p.size for p in jax.tree.leaves(params))
    rows = []

    def row(group, variant, ms, first, baseline, ratio, **extra):
        rows.append(dict(group=group, variant=variant, model=a.model, leaves=a.leaves, params=n,
                         step_ms=ms,
                         first_call_s=first, baseline=baseline, ratio=ratio, **extra))
        print(rows[-1], flush=True)

    # 1. the user's own step, fnlearn against optax, optimizer by optimizer
    for name in ([] if a.no_own else a.optimizers.split(",")):
        make_fn, make_ox = PAIRS[name]
        runs, firsts = {}, {}
        for side, opt, apply in (("fnlearn", make_fn(), optim.apply_updates),
                                 ("fnlearn update_and_apply", make_fn(), None),
                                 ("optax", make_ox(), optax.apply_updates)):
            runs[side], firsts[side] = own_step(loss_fn, opt, params, x, apply)
        ms = measure(runs, a.reps, a.rounds)
        for side in ("fnlearn", "fnlearn update_and_apply"):
            row("own step", f"{side} {name}", ms[side], firsts[side], f"optax {name}",
                ms[side] / ms["optax"], first_ratio=firsts[side] / firsts["optax"])
        row("own step", f"optax {name}", ms["optax"], firsts["optax"], None, None)
        del runs

    # 2. make_train_step with Adam, against optax's Adam and the loss-and-grads-only steps
    if a.no_train_step:
        write(a.name, rows, ["group", "variant", "leaves", "step_ms", "baseline", "ratio",
                             "first_call_s", "first_ratio"])
        return rows
    runs, firsts = {}, {}
    variants = {"make_train_step, default": (optim.adam(1e-3), False),
                "make_train_step, fused=False": (optim.adam(1e-3, fused=False), False),
                "make_train_step, flat=True": (optim.adam(1e-3), True),
                "make_train_step, optax.adam": (optax.adam(1e-3), False)}
    if on_accelerator():  # the default is the XLA rule there
        del variants["make_train_step, fused=False"]
    for name, (opt, flat) in variants.items():
        runs[name], firsts[name] = train_step(loss_fn, opt, params, x, flat=flat)
    runs["own step, fnlearn adam"], firsts["own step, fnlearn adam"] = own_step(
        loss_fn, optim.adam(1e-3), params, x, optim.apply_updates)
    runs["own step, fnlearn update_and_apply"], firsts["own step, fnlearn update_and_apply"] = (
        own_step(loss_fn, optim.adam(1e-3), params, x, None))
    runs["own step, update_and_apply, kept gradient"], firsts[
        "own step, update_and_apply, kept gradient"] = own_step_kept(loss_fn, optim.adam(1e-3),
                                                                     params, x)
    runs["own step, optax.adam"], firsts["own step, optax.adam"] = own_step(
        loss_fn, optax.adam(1e-3), params, x, optax.apply_updates)
    runs["loss+grads, fresh"], firsts["loss+grads, fresh"] = grads_only(loss_fn, params, x, False)
    runs["loss+grads, kept"], firsts["loss+grads, kept"] = grads_only(loss_fn, params, x, True)
    # the ceiling is timed in the same rounds (this machine's load drifts by 2x in minutes)
    loop = ceiling()
    ms = measure(runs, a.reps, a.rounds,
                 {"ceiling": lambda: loop.ms(n, 4, 3, max(5, a.reps))})
    ceiling_ms = ms["ceiling"]
    base = "own step, optax.adam"
    for name in variants:
        marginal = ms[name] - ms["loss+grads, kept"]
        row("make_train_step", name, ms[name], firsts[name], base, ms[name] / ms[base],
            first_ratio=firsts[name] / firsts[base], marginal_ms=marginal,
            ceiling_ms=ceiling_ms, marginal_over_ceiling=marginal / ceiling_ms
            if ceiling_ms else None)
    for own in ("own step, fnlearn adam", "own step, fnlearn update_and_apply",
                "own step, update_and_apply, kept gradient"):
        grads = "loss+grads, kept" if own.endswith("kept gradient") else "loss+grads, fresh"
        row("make_train_step", own, ms[own], firsts[own], base, ms[own] / ms[base],
            first_ratio=firsts[own] / firsts[base],
            marginal_ms=ms[own] - ms[grads], ceiling_ms=ceiling_ms,
            marginal_over_ceiling=(ms[own] - ms[grads]) / ceiling_ms if ceiling_ms else None)
    for name in (base, "loss+grads, fresh", "loss+grads, kept"):
        marginal = ms[name] - ms["loss+grads, fresh"] if name == base else None
        row("make_train_step", name, ms[name], firsts[name], None, None, marginal_ms=marginal,
            ceiling_ms=ceiling_ms, marginal_over_ceiling=marginal / ceiling_ms
            if marginal is not None and ceiling_ms else None)
    write(a.name, rows, ["group", "variant", "leaves", "step_ms", "baseline", "ratio",
                         "first_call_s", "first_ratio", "marginal_ms", "ceiling_ms",
                         "marginal_over_ceiling"])
    return rows


if __name__ == "__main__":
    main()
