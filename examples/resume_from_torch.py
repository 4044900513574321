"""Resume a running PyTorch job in JAX: a torch checkpoint continued by fnlearn and flax.

A torch MLP is trained on scikit-learn's digits for one epoch (AdamW with a OneCycleLR
schedule stepped per batch) and saved with ``torch.save({"model", "optimizer", "scheduler",
"epoch"})``, as a running job would be. Then the run goes on twice from that file: in torch,
and in JAX (``fnlearn.interop.torch.load_torch_checkpoint`` gives the weights, AdamW's moments
and step count, and the schedule at the step torch reached; ``flax_layout`` moves them onto a
``flax.linen`` model). Same batches on both sides: the two loss curves are the same run.
Prints them side by side and writes their plot. Needs torch (``pip install
"fnlearn[torch]"``)::

    python examples/resume_from_torch.py            # float64: differences near 1e-15
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits

import fnlearn as fl
from fnlearn.interop import torch as interop

BATCH_SIZE = 64
EPOCHS = 4  # one in torch before the checkpoint, the rest after it on both sides


def digits(size: float) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    n = max(BATCH_SIZE, int(len(x) * size))
    return (x[:n] / 16.0).astype(np.float64), y[:n].astype(np.int64)


def batches(n: int, epoch: int) -> list[np.ndarray]:
    """The batch indices of one epoch (shared by both sides)."""
    order = np.random.default_rng(epoch).permutation(n)
    return [order[i:i + BATCH_SIZE] for i in range(0, n - BATCH_SIZE + 1, BATCH_SIZE)]


def torch_run(torch, x, y, epochs, checkpoint=None, start=None):
    """torch's loop: from scratch (saving ``checkpoint`` after epoch 1) or from ``start``."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 10)).double()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.05)
    steps = len(batches(len(x), 0)) * EPOCHS
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps)
    first = 0
    if start is not None:
        saved = torch.load(start, weights_only=True)
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        first = saved["epoch"]
    losses = []
    for epoch in range(first, epochs):
        for idx in batches(len(x), epoch):
            loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x[idx])),
                                                     torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        if checkpoint is not None and epoch == 0:
            torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "epoch": 1}, checkpoint)
    return net, losses


def fnlearn_run(net, x, y, checkpoint):
    """JAX from the torch file: flax model, fnlearn's AdamW and OneCycleLR, same batches."""
    ckpt = interop.load_torch_checkpoint(checkpoint)
    model = nn.Sequential([nn.Dense(64, param_dtype=jnp.float64), nn.tanh,
                           nn.Dense(10, param_dtype=jnp.float64)])
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 64), jnp.float64))
    layout = interop.flax_layout(net, shapes)  # Linear -> Dense: kernels transposed
    state = fl.train.TrainState(layout.params_to_flax(ckpt.state.params),
                                layout.state_to_flax(ckpt.state.opt_state), ckpt.state.step)

    def loss_fn(params, batch):
        return fl.losses.cross_entropy(model.apply({"params": params}, batch[0]), batch[1])

    step = fl.train.make_train_step(loss_fn, ckpt.optimizer)
    losses = []
    for epoch in range(ckpt.extra["epoch"], EPOCHS):
        for idx in batches(len(x), epoch):
            state, metrics = step(state, (jnp.asarray(x[idx]), jnp.asarray(y[idx])))
            losses.append(metrics["loss"])
    return [float(v) for v in losses]


def main(size: float = 1.0, plot: str | Path | None = "resume_from_torch.png") -> dict:
    import torch

    jax.config.update("jax_enable_x64", True)
    x, y = digits(size)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "checkpoint.pt"
        net, _ = torch_run(torch, x, y, epochs=1, checkpoint=checkpoint)
        _, torch_losses = torch_run(torch, x, y, EPOCHS, start=checkpoint)
        jax_losses = fnlearn_run(net, x, y, checkpoint)
    worst = max(abs(a - b) / abs(b) for a, b in zip(jax_losses, torch_losses, strict=True))
    print(f"resumed after epoch 1 of {EPOCHS}: {len(torch_losses)} steps on each side")
    print(f"{'step':>5}  {'torch':>12}  {'fnlearn':>12}")
    every = max(1, len(torch_losses) // 12)
    for i in range(0, len(torch_losses), every):
        print(f"{i + 1:>5}  {torch_losses[i]:12.8f}  {jax_losses[i]:12.8f}")
    print(f"largest relative difference over all steps: {worst:.1e}")
    if plot is not None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot()
        steps = np.arange(1, len(torch_losses) + 1)
        ax.plot(steps, torch_losses, label="torch (continued)", linewidth=3, alpha=0.5)
        ax.plot(steps, jax_losses, "--", label="fnlearn + flax (from torch's checkpoint)")
        ax.set(xlabel="step after the checkpoint", ylabel="cross-entropy loss", yscale="log")
        ax.legend()
        fig.savefig(plot, dpi=110)
        print(f"wrote {plot}")
    return {"torch": torch_losses, "fnlearn": jax_losses, "max_rel_diff": worst}


if __name__ == "__main__":
    main()
