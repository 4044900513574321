"""A train step on a small transformer language model: fnlearn against flax+optax and torch.

    python benchmarks/transformer_step.py [--layers 12] [--dim 128] [--heads 4] [--vocab 8192]
        [--seq 64] [--batch 8] [--reps 3] [--rounds 3] [--compile-cap 300] [--no-torch]

The model is a decoder-only (GPT-style, pre-LayerNorm) transformer: token and position
embeddings, ``--layers`` blocks of causal multi-head self-attention (separate q, k, v and output
projections with biases) and a GELU MLP (4x wide), each behind a LayerNorm with a residual
connection, a final LayerNorm and an untied vocabulary head; 6 + 16 per layer parameter
leaves (198 at the default 12 layers). A batch is ``(batch, seq)`` random token ids, the target
the next token; the loss is the mean cross-entropy over the vocabulary. AdamW (lr 1e-3,
torch's weight_decay 1e-2), float32.

Variants (each in a spawned process of its own, so that neither runtime's threads share the
cores with another's work and each process's peak memory is its own):

- ``fnlearn default``: ``make_train_step(loss, fnlearn.optim.adamw(1e-3))`` on the flax
  (linen) model with :func:`fnlearn.losses.cross_entropy` (on CPU the fused kernel runs the
  update);
- ``fnlearn fused=False``: the same with ``adamw(1e-3, fused=False)``, the XLA rule (CPU
  only: elsewhere that is the default);
- ``flax+optax``: the same model, ``optax.adamw(1e-3, weight_decay=1e-2)`` and
  ``optax.softmax_cross_entropy_with_integer_labels`` in a jitted, donated step;
- ``torch eager`` / ``torch.compile``: the same architecture as a ``torch.nn.Module``
  (``torch.optim.AdamW``, its default foreach implementation), 2 threads. ``torch.compile``
  compiles the whole step (forward, backward, ``opt.step()``); a first call slower than
  ``--compile-cap`` seconds is abandoned and reported as such.

ms per step = median over ``--rounds`` interleaved rounds of the median of ``--reps`` steps;
steps/s = 1000 / ms. ``first_call_s`` = building the model and state plus the first step
(trace + compile). ``peak_mb`` = the process's peak RSS while stepping (after the first call,
the kernel's counter reset) minus its RSS before the model existed: params, gradients,
optimizer state, activations and whatever the runtime keeps. ``state_mb`` is the minimum part
of it every variant must hold: params + gradients + AdamW's two moments (4 x params x 4 B).
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing
import time

import numpy as np
from _common import interleaved, median_ms, write

VARIANTS = ("fnlearn default", "fnlearn fused=False", "flax+optax", "torch eager",
            "torch.compile")
LR, WEIGHT_DECAY = 1e-3, 1e-2


def rss_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> None:
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS, where Linux allows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def batch_of(cfg: dict, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, cfg["vocab"], (cfg["batch"], cfg["seq"] + 1), dtype=np.int32)


def flax_model(cfg: dict):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    d, h = cfg["dim"], cfg["heads"]

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            b, t, _ = x.shape
            y = nn.LayerNorm(epsilon=1e-5)(x)
            q, k, v = (nn.Dense(d)(y).reshape(b, t, h, d // h) for _ in range(3))
            s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d // h)
            s = jnp.where(jnp.tril(jnp.ones((t, t), bool)), s, -jnp.inf)
            y = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(s, axis=-1), v).reshape(b, t, d)
            x = x + nn.Dense(d)(y)
            y = nn.Dense(4 * d)(nn.LayerNorm(epsilon=1e-5)(x))
            return x + nn.Dense(d)(nn.gelu(y, approximate=False))

    class LM(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            t = tokens.shape[1]
            x = nn.Embed(cfg["vocab"], d)(tokens) + self.param(
                "pos", nn.initializers.normal(0.02), (cfg["seq"], d))[:t]
            for _ in range(cfg["layers"]):
                x = Block()(x)
            return nn.Dense(cfg["vocab"])(nn.LayerNorm(epsilon=1e-5)(x))

    model = LM()
    tokens = jnp.asarray(batch_of(cfg))
    params = model.init(jax.random.key(0), tokens[:, :-1])["params"]
    return model, params, tokens


def build_jax(variant: str, cfg: dict):
    import jax
    import optax

    from fnlearn import losses, optim, train

    model, params, tokens = flax_model(cfg)
    vocab = cfg["vocab"]

    def logits_of(p, toks):
        return model.apply({"params": p}, toks[:, :-1]).reshape(-1, vocab)

    if variant.startswith("fnlearn"):
        opt = optim.adamw(LR, fused=False if variant.endswith("fused=False") else None)
        step = train.make_train_step(
            lambda p, toks: losses.cross_entropy(logits_of(p, toks), toks[:, 1:].reshape(-1)),
            opt)
        live = [train.TrainState.create(params, opt)]

        def run():
            live[0], m = step(live[0], tokens)
            jax.block_until_ready(m["loss"])

        return run, params
    tx = optax.adamw(LR, weight_decay=WEIGHT_DECAY)

    def loss_fn(p, toks):
        return optax.softmax_cross_entropy_with_integer_labels(
            logits_of(p, toks), toks[:, 1:].reshape(-1)).mean()

    @jax.jit
    def init(p):
        return jax.tree.map(jax.numpy.copy, p), tx.init(p)

    def own_step(p, s, toks):
        loss, g = jax.value_and_grad(loss_fn)(p, toks)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    jitted = jax.jit(own_step, donate_argnums=(0, 1))
    live = list(init(params))

    def run():
        live[0], live[1], loss = jitted(live[0], live[1], tokens)
        jax.block_until_ready(loss)

    return run, params


def build_torch(variant: str, cfg: dict):
    import torch
    from _common import torch_device

    torch_device()  # 2 threads, as XLA uses this machine's 2 cores
    torch.manual_seed(0)
    d, h, t_max = cfg["dim"], cfg["heads"], cfg["seq"]

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
            self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d) for _ in range(4))
            self.fc1, self.fc2 = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)
            self.register_buffer("mask", torch.tril(torch.ones(t_max, t_max, dtype=torch.bool)))

        def forward(self, x):
            b, t, _ = x.shape
            y = self.ln1(x)
            q, k, v = (f(y).view(b, t, h, d // h).transpose(1, 2) for f in (self.q, self.k, self.v))
            s = (q @ k.transpose(-1, -2)) / math.sqrt(d // h)
            s = s.masked_fill(~self.mask[:t, :t], float("-inf"))
            y = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
            x = x + self.o(y)
            return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(cfg["vocab"], d)
            self.pos = torch.nn.Parameter(torch.randn(t_max, d) * 0.02)
            self.blocks = torch.nn.ModuleList(Block() for _ in range(cfg["layers"]))
            self.ln_f, self.head = torch.nn.LayerNorm(d), torch.nn.Linear(d, cfg["vocab"])

        def forward(self, tokens):
            x = self.embed(tokens) + self.pos[: tokens.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln_f(x))

    net = LM()
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    tokens = torch.tensor(batch_of(cfg), dtype=torch.long)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = net(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg["vocab"]),
                                                 tokens[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        return loss

    fn = torch.compile(step) if variant == "torch.compile" else step
    return (lambda: fn().item()), [p.detach().numpy() for p in net.parameters()]


def worker(conn, variant: str, cfg: dict) -> None:
    """Build ``variant`` (reply: first-call seconds, leaves, params), then serve ``reps``
    requests with the median ms of that many steps; ``None`` ends with the peak memory."""
    if variant.startswith("torch"):
        import torch  # noqa: F401  (the runtime's own footprint is not the model's)
    else:
        import flax.linen  # noqa: F401
        import optax  # noqa: F401

        import fnlearn.train  # noqa: F401
    base = rss_kb()
    t = time.perf_counter()
    run, params = (build_torch if variant.startswith("torch") else build_jax)(variant, cfg)
    run()
    first = time.perf_counter() - t
    if variant.startswith("torch"):
        leaves, n = len(params), sum(p.size for p in params)
    else:
        import jax

        leaves = len(jax.tree.leaves(params))
        n = sum(p.size for p in jax.tree.leaves(params))
    del params
    gc.collect()
    reset_peak()
    conn.send((first, leaves, int(n)))
    while (reps := conn.recv()) is not None:
        conn.send(median_ms(run, reps, warmup=1))
    conn.send((rss_kb("VmHWM") - base) / 1024)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile-cap", type=float, default=300.0,
                    help="seconds a first call (torch.compile's) may take before it is dropped")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--name", default="transformer_step")
    a = ap.parse_args(argv)
    cfg = dict(layers=a.layers, dim=a.dim, heads=a.heads, vocab=a.vocab, seq=a.seq,
               batch=a.batch)
    import jax

    wanted = [v for v in a.variants.split(",") if not (a.no_torch and v.startswith("torch"))]
    if jax.default_backend() != "cpu":  # the XLA rule is the default there: the default row
        wanted = [v for v in wanted if v != "fnlearn fused=False"]
    if not a.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            wanted = [v for v in wanted if not v.startswith("torch")]
    ctx = multiprocessing.get_context("spawn")
    conns, procs, info, dropped = {}, {}, {}, {}
    try:
        for v in wanted:  # one at a time, so that each first call has the cores to itself
            parent, child = ctx.Pipe()
            procs[v] = ctx.Process(target=worker, args=(child, v, cfg), daemon=True)
            procs[v].start()
            if parent.poll(a.compile_cap):
                conns[v], info[v] = parent, parent.recv()
                print(f"{v}: first call {info[v][0]:.1f} s", flush=True)
            else:
                procs[v].kill()
                dropped[v] = f"first call > {a.compile_cap:.0f} s"
                print(f"{v}: dropped ({dropped[v]})", flush=True)

        def ask(v):
            conns[v].send(a.reps)
            return conns[v].recv()

        times = interleaved({v: (lambda v=v: ask(v)) for v in conns}, a.rounds)
        peaks = {}
        for v, conn in conns.items():
            conn.send(None)
            peaks[v] = conn.recv()
    finally:
        for p in procs.values():
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    rows = []
    base = float(np.median(times["flax+optax"])) if "flax+optax" in times else None
    for v in wanted:
        if v in dropped:
            rows.append(dict(variant=v, note=dropped[v]))
            continue
        ms = float(np.median(times[v]))
        first, leaves, n = info[v]
        rows.append(dict(variant=v, leaves=leaves, params=n, step_ms=ms, steps_per_s=1e3 / ms,
                         vs_flax_optax=base and ms / base, first_call_s=first,
                         peak_mb=peaks[v], state_mb=16 * n / 2**20, rounds_ms=times[v]))
        print(rows[-1], flush=True)
    write(a.name, rows, ["variant", "leaves", "params", "step_ms", "steps_per_s",
                         "vs_flax_optax", "first_call_s", "peak_mb", "state_mb", "note"],
          {"config": cfg})
    return rows


if __name__ == "__main__":
    main()
