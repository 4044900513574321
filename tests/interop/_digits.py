"""A real hand-over: a torch MLP on scikit-learn's digits, one epoch in torch (float64, Adam
with StepLR stepped per batch), saved; the second epoch in torch is the oracle for the
second epoch in fnlearn with a flax module (tests/interop/test_digits.py, the example)."""

from __future__ import annotations

from typing import Any

import numpy as np

BATCH = 128
HIDDEN = 32
SEED = 0


def data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float64), y.astype(np.int64)


def orders(n: int, epochs: int) -> list[np.ndarray]:
    rng = np.random.default_rng(SEED)
    return [rng.permutation(n) for _ in range(epochs)]


def torch_model() -> Any:
    import torch

    torch.manual_seed(SEED)
    return torch.nn.Sequential(torch.nn.Linear(64, HIDDEN), torch.nn.Tanh(),
                               torch.nn.Linear(HIDDEN, 10)).double()


def torch_train(epochs: int, start: dict | None = None, first_epoch: int = 0
                ) -> tuple[Any, Any, Any, list[float]]:
    """torch's run (imports torch): ``epochs`` epochs from scratch or from a checkpoint."""
    import torch

    x, y = data()
    net = torch_model()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.8)
    if start is not None:
        net.load_state_dict(start["model"])
        opt.load_state_dict(start["optimizer"])
        sched.load_state_dict(start["scheduler"])
    losses = []
    for order in orders(len(x), first_epoch + epochs)[first_epoch:]:
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x[idx])),
                                                     torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    return net, opt, sched, losses


def generate() -> dict[str, np.ndarray]:
    """The checkpoint after epoch 1 as arrays, and torch's epoch-2 losses."""
    import json

    from tests.interop._handover import encode_state_dict, text

    net, opt, sched, _ = torch_train(1)
    ckpt = {"model": net.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "epoch": 1}
    out = {f"model|{k}": v.numpy() for k, v in ckpt["model"].items()}
    out.update(encode_state_dict(ckpt["optimizer"], "optimizer"))
    out["scheduler"] = text(json.dumps(ckpt["scheduler"]))
    *_, losses = torch_train(1, start=ckpt, first_epoch=1)
    out["losses-epoch2"] = np.asarray(losses)
    return out


def flax_model() -> Any:
    import flax.linen as nn
    import jax.numpy as jnp

    return nn.Sequential([nn.Dense(HIDDEN, param_dtype=jnp.float64), nn.tanh,
                          nn.Dense(10, param_dtype=jnp.float64)])


def fnlearn_epoch(ckpt: Any, layout: Any, epoch: int, steps: int | None = None
                  ) -> tuple[Any, list[float]]:
    """fnlearn's epoch ``epoch`` (0-based) from a loaded checkpoint, with the flax model (its
    first ``steps`` batches when given)."""
    import jax
    import jax.numpy as jnp

    from fnlearn.losses import cross_entropy
    from fnlearn.train import TrainState, make_train_step

    model = flax_model()
    x, y = data()

    def loss_fn(params, batch):
        return cross_entropy(model.apply({"params": params}, batch[0]), batch[1])

    # copies: the train step donates its state, and ckpt stays usable
    state = jax.tree.map(jnp.copy, TrainState(layout.params_to_flax(ckpt.state.params),
                                              layout.state_to_flax(ckpt.state.opt_state),
                                              ckpt.state.step))
    step = make_train_step(loss_fn, ckpt.optimizer)
    losses = []
    order = orders(len(x), epoch + 1)[epoch]
    for i in range(0, len(x), BATCH)[:steps]:
        idx = order[i:i + BATCH]
        state, metrics = step(state, (jnp.asarray(x[idx]), jnp.asarray(y[idx])))
        losses.append(metrics["loss"])
    return state, [float(v) for v in losses]
