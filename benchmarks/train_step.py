"""End-to-end train step: fnlearn vs flax+optax (jitted, donated) vs torch eager and torch.compile.

    python benchmarks/train_step.py [--reps 30] [--rounds 3] [--no-compile]

On CPU, fnlearn and flax+optax are also run with ``compiler_options={"xla_cpu_use_xnnpack":
True}`` (``make_train_step(..., compiler_options=...)``, ``jax.jit(..., compiler_options=...)``).
Models (ReLU MLPs, cross-entropy, Adam lr 1e-3, float32): digits 64-256-256-10 at batch 128,
and 784-1024-1024-10 at batch 256, random data of those shapes. One step = forward, backward,
optimizer update; median ms over repeats after warm-up, then the median over ``--rounds``
interleaved rounds of all variants, each built and compiled once (until the fifth session
torch ran one round after the JAX variants' rounds). ``fnlearn`` is ``adam`` with its
defaults (on CPU the fused kernel runs the update), ``fnlearn, fused=False`` the XLA rule
(on an accelerator that is the default, so the row is left out). On a
GPU torch runs on the same card, each step followed by ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import interleaved, median_ms, on_accelerator, torch_device, torch_synced, write

from fnlearn import losses, optim, train

XNNPACK = {"xla_cpu_use_xnnpack": True}
MODELS = {"digits-mlp": ([64, 256, 256, 10], 128), "mlp-1024": ([784, 1024, 1024, 10], 256)}


def init_mlp(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.uniform(-1, 1, (i, o)).astype(np.float32) / np.sqrt(i),
             np.zeros(o, np.float32)) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]


def mlp(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def make_fnlearn(weights, x, y, options=None, fused=None):
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in weights]
    opt = optim.adam(1e-3, fused=fused)
    step = train.make_train_step(lambda p, b: losses.cross_entropy(mlp(p, b[0]), b[1]), opt,
                                 compiler_options=options)
    st = [train.TrainState.create(params, opt)]

    def run():
        st[0], m = step(st[0], (x, y))
        jax.block_until_ready(m["loss"])

    return run


def make_flax(weights, x, y, options=None):
    import flax.linen as nn
    from flax.training import train_state

    sizes = [weights[0][0].shape[0]] + [w.shape[1] for w, _ in weights]

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, h):
            for o in sizes[1:-1]:
                h = nn.relu(nn.Dense(o)(h))
            return nn.Dense(sizes[-1])(h)

    model = MLP()
    variables = model.init(jax.random.key(0), x)
    st = [train_state.TrainState.create(apply_fn=model.apply, params=variables["params"],
                                        tx=optax.adam(1e-3))]

    @jax.jit
    def _step(state, x, y):
        def loss(p):
            logits = state.apply_fn({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        l, g = jax.value_and_grad(loss)(state.params)
        return state.apply_gradients(grads=g), l

    step = jax.jit(_step, donate_argnums=(0,), compiler_options=options)

    def run():
        st[0], l = step(st[0], x, y)
        jax.block_until_ready(l)

    return run


def make_torch(weights, x, y, compiled, device):
    import torch

    layers = []
    for i, (w, b) in enumerate(weights):
        lin = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(w.T))
            lin.bias.copy_(torch.tensor(b))
        layers += [lin] + ([torch.nn.ReLU()] if i < len(weights) - 1 else [])
    net = torch.nn.Sequential(*layers).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt = torch.tensor(np.asarray(x), device=device)
    yt = torch.tensor(np.asarray(y), device=device).long()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(xt), yt)
        loss.backward()
        opt.step()
        return loss

    fn = torch_synced(torch.compile(step) if compiled else step, device)
    if compiled:
        t = time.perf_counter()
        fn()
        print(f"  torch.compile first call: {time.perf_counter() - t:.1f} s", flush=True)
    return fn


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all variants")
    ap.add_argument("--name", default="train_step")
    a = ap.parse_args(argv)
    device = torch_device(not a.no_torch)
    rows = []
    for name in a.models.split(","):
        sizes, batch = MODELS[name]
        weights = init_mlp(sizes)
        rng = np.random.default_rng(1)
        x = jnp.asarray(rng.standard_normal((batch, sizes[0]), dtype=np.float32))
        y = jnp.asarray(rng.integers(0, sizes[-1], batch))
        runs = {"fnlearn": make_fnlearn(weights, x, y),
                "fnlearn, fused=False": make_fnlearn(weights, x, y, fused=False),
                "flax+optax": make_flax(weights, x, y)}
        if on_accelerator():
            del runs["fnlearn, fused=False"]
        else:
            # the same steps with XNNPACK matmuls (an XLA option of the step's jit only)
            runs["fnlearn, xnnpack"] = make_fnlearn(weights, x, y, XNNPACK)
            runs["flax+optax, xnnpack"] = make_flax(weights, x, y, XNNPACK)
        if device:
            runs["torch eager"] = make_torch(weights, x, y, False, device)
            if not a.no_compile:
                runs["torch.compile"] = make_torch(weights, x, y, True, device)
        warmup = max(3, a.reps // 5)  # the previous variant's threads may still hold the cores
        times = interleaved({v: partial(median_ms, run, a.reps, warmup) for v, run in runs.items()},
                            a.rounds)
        res = {v: float(np.median(t)) for v, t in times.items()}
        for variant, ms in res.items():
            rows.append(dict(model=name, variant=variant, ms=ms, vs_fnlearn=ms / res["fnlearn"]))
            print(rows[-1], flush=True)
    write(a.name, rows, ["model", "variant", "ms", "vs_fnlearn"])
    return rows


if __name__ == "__main__":
    main()
