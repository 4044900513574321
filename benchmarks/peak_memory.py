"""Peak resident memory while training: fnlearn (flat, tree, fused, make_train_step) vs optax, Adam.

    python benchmarks/peak_memory.py [--size 16M] [--leaves 500] [--steps 5]

Each variant runs in its own process: compile the init and the train step on abstract values,
read the RSS, create params and state, return freed pages to the OS (``malloc_trim``), reset
the kernel's peak-RSS counter (/proc/self/clear_refs), run the steps, and read VmHWM.
"minimal" = params + grads + optimizer state (Adam: 4 float32 copies); the ratio is (peak RSS -
RSS before the params existed) / minimal, so JAX's own footprint does not count. The loss is a
per-leaf quadratic, so the forward/backward pass needs no activations (and a fused XLA update
need not materialize the gradient at all).

On an accelerator the device's memory is read instead of RSS: the ratio is (the device
allocator's peak bytes in use - bytes in use before the params existed) / minimal, and the
``fused=True`` variant is left out (there it is the XLA rule, i.e. the tree variant).
``step_ratio``, on every backend, is the compiled step's own footprint by XLA's memory
analysis (arguments + outputs - aliased + temporaries) / minimal.
``fnlearn-train-step`` is ``make_train_step`` with its and the optimizer's defaults (the
gradient buffer kept between calls, the fused kernel on CPU), ``fnlearn-tree`` the XLA rule
(``fused=False``).
``step_compile_mb``, every variant: the RSS the compiler added at its peak while compiling the
step (``init_compile_mb`` the same for the state's creation: 500 random normals in one
program, this benchmark's own cost, not training's). A real run compiles its step on its first
call, with the params and state already there, so its peak with the compile counted is
``with_compile_mb = max(init_over_base_mb + step_compile_mb, peak_over_base_mb)``
(``ratio_with_compile`` over the minimal). ``grads-only`` (loss and gradients, no optimizer)
is the compile's baseline: what the model alone costs the compiler.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import subprocess
import sys
from typing import Any

from _common import on_accelerator, write


def rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def release_freed_memory() -> None:
    """Return the pages of freed allocations to the OS (glibc's malloc_trim), so RSS = live."""
    gc.collect()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def reset_peak() -> None:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def compiling(compile_all) -> tuple[Any, float | None]:
    """``compile_all()``'s result and the RSS it added at its peak, in MiB: the compiler's own
    memory (on the host, whatever the backend)."""
    release_freed_memory()
    start = rss("VmRSS")
    reset_peak()
    out = compile_all()
    return out, (rss("VmHWM") - start) / 2**20


def child(variant: str, n: int, leaves: int, steps: int) -> dict:
    from functools import partial

    import jax
    import jax.numpy as jnp
    import optax
    from _common import leaf_sizes

    from fnlearn import optim
    from fnlearn.flat import Flat

    sizes = leaf_sizes(n, leaves)

    def make():
        keys = jax.random.split(jax.random.key(0), leaves)
        tree = {f"p{i:03d}": jax.random.normal(k, (s,), jnp.float32)
                for i, (k, s) in enumerate(zip(keys, sizes, strict=True))}
        return Flat.of(tree) if variant == "fnlearn-flat" else tree

    def loss(p):
        t = p.tree() if variant == "fnlearn-flat" else p
        return sum(jnp.sum(x * x) for x in jax.tree.leaves(t))

    # the train step with the optimizer's defaults (the fused kernel on CPU), the tree variant
    # with the XLA rule; grads-only: no optimizer (its "update" passes the gradient out)
    tx = (optax.adam(1e-3) if variant == "optax"
          else optax.GradientTransformation(lambda p: (), None) if variant == "grads-only"
          else optim.adam(1e-3, fused={"fnlearn-fused": True,
                                       "fnlearn-train-step": None}.get(variant, False)))

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(p, s):
        g = jax.grad(loss)(p)
        return (g, s) if variant == "grads-only" else optim.update_and_apply(tx, g, s, p)

    if variant == "fnlearn-train-step":
        return train_step_child(make, loss, tx, n, leaves, steps)
    # compile on abstract values first, so compiler memory is in the baseline, not the peak
    abstract = jax.eval_shape(make)
    compiled, step_compile_mb = compiling(
        lambda: step.lower(abstract, jax.eval_shape(tx.init, abstract)).compile())
    init, init_compile_mb = compiling(
        lambda: jax.jit(lambda: (lambda p: (p, tx.init(p)))(make())).lower().compile())
    before, after_init, peak = (device_readings if on_accelerator() else rss_readings)(
        steps, compiled, init)
    return _row(variant, n, leaves, step_compile_mb, init_compile_mb, after_init - before,
                peak - before, step_bytes(compiled))


def _row(variant: str, n: int, leaves: int, step_compile_mb: float, init_compile_mb: float,
         init_bytes: int, peak_bytes: int, step_footprint: int) -> dict:
    minimal = 4 * 4 * n  # params, grads, Adam's two moments
    with_compile = max(init_bytes + step_compile_mb * 2**20, peak_bytes)
    return dict(variant=variant, params=n, leaves=leaves, minimal_mb=minimal / 2**20,
                step_compile_mb=step_compile_mb, init_compile_mb=init_compile_mb,
                init_over_base_mb=init_bytes / 2**20, peak_over_base_mb=peak_bytes / 2**20,
                ratio=peak_bytes / minimal, with_compile_mb=with_compile / 2**20,
                ratio_with_compile=with_compile / minimal, step_ratio=step_footprint / minimal)


def train_step_child(make, loss, tx, n: int, leaves: int, steps: int) -> dict:
    """``make_train_step`` with its defaults (it keeps the gradient buffer between calls),
    measured as the other variants: compiled before the baseline, the peak over the steps.
    On an accelerator the device's allocator is read instead."""
    import jax

    from fnlearn import train

    step = train.make_train_step(lambda p, batch: loss(p), tx)
    # the state is made by one compiled call, as the other variants' (eager creation leaves
    # freed transients in the allocator's arenas that would count as the steps' memory)
    make_state = jax.jit(lambda: train.TrainState.create(make(), tx))
    abstract = jax.eval_shape(make_state)
    init, init_compile_mb = compiling(lambda: make_state.lower().compile())
    _, step_compile_mb = compiling(lambda: step.lower(abstract, None).compile())
    # An ahead-of-time compile does not fill jit's cache, so the step's own first call
    # compiles again: made here, on a throwaway state, before the baseline (the compiler's
    # leftovers then count for no variant). That call leaves the step the gradient buffer it
    # keeps for the next call (which writes its gradient there, in place): it already exists
    # when the baseline is read, so its bytes are added to the steps' footprint below.
    warm, _ = step(init(), None)
    jax.block_until_ready(warm)
    del warm
    kept = 4 * n
    device = jax.devices()[0] if on_accelerator() else None
    release_freed_memory()
    before = device.memory_stats()["bytes_in_use"] if device else rss("VmRSS")
    state = init()
    jax.block_until_ready(state)
    release_freed_memory()
    after_init = device.memory_stats()["bytes_in_use"] if device else rss("VmRSS")
    if not device:
        reset_peak()
    for _ in range(steps):
        state, _ = step(state, None)
    jax.block_until_ready(state)
    peak = device.memory_stats()["peak_bytes_in_use"] if device else rss("VmHWM")
    return _row("fnlearn-train-step", n, leaves, step_compile_mb, init_compile_mb,
                after_init - before, peak + kept - before,
                step_bytes(step.lower(state, None).compile()))


def rss_readings(steps, compiled, init) -> tuple[int, int, int]:
    """Resident bytes before the params exist, after they do, and at the steps' peak."""
    import jax

    release_freed_memory()  # the compiler's freed memory must not lower the later readings
    before = rss("VmRSS")
    params, state = init()
    jax.block_until_ready((params, state))
    # The peak is measured over the training steps only: creating the params (random bits, the
    # Flat concatenation) has transients of its own, whose freed pages the allocator may keep
    # mapped; hand them back first (glibc's malloc_trim) so that they neither count nor hide
    # the steps' own transients.
    release_freed_memory()
    after_init = rss("VmRSS")
    reset_peak()
    for _ in range(steps):
        params, state = compiled(params, state)
    jax.block_until_ready(params)
    return before, after_init, rss("VmHWM")


def device_readings(steps, compiled, init) -> tuple[int, int, int]:
    """The accelerator's allocator: bytes in use before and after the params exist, and its
    peak over the steps."""
    import jax

    device = jax.devices()[0]
    before = device.memory_stats()["bytes_in_use"]
    params, state = init()
    jax.block_until_ready((params, state))
    after_init = device.memory_stats()["bytes_in_use"]
    for _ in range(steps):
        params, state = compiled(params, state)
    jax.block_until_ready(params)
    return before, after_init, device.memory_stats()["peak_bytes_in_use"]


def step_bytes(compiled) -> int:
    """The compiled step's footprint by XLA's memory analysis: arguments + outputs - the
    outputs aliased to (donated) arguments + temporaries."""
    m = compiled.memory_analysis()
    return (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
            + m.temp_size_in_bytes)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="16M")
    ap.add_argument("--leaves", type=int, default=500)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--variants",
                    default="grads-only,fnlearn-flat,fnlearn-tree,fnlearn-fused,"
                            "fnlearn-train-step,optax")
    ap.add_argument("--child", default=None)
    ap.add_argument("--name", default="peak_memory")
    a = ap.parse_args(argv)
    n = int(float(a.size[:-1]) * 2**20) if a.size.endswith("M") else int(a.size)
    if a.child:
        print(json.dumps(child(a.child, n, a.leaves, a.steps)))
        return []
    rows = []
    variants = a.variants.split(",")
    if on_accelerator():
        variants = [v for v in variants if v != "fnlearn-fused"]
    for v in variants:
        out = subprocess.run([sys.executable, __file__, "--child", v, "--size", a.size,
                              "--leaves", str(a.leaves), "--steps", str(a.steps)],
                             check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    write(a.name, rows, ["variant", "params", "leaves", "minimal_mb", "step_compile_mb",
                         "init_compile_mb", "init_over_base_mb", "peak_over_base_mb", "ratio",
                         "with_compile_mb", "ratio_with_compile", "step_ratio"])
    return rows


if __name__ == "__main__":
    main()
