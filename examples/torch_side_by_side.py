"""The same training run in PyTorch and in fnlearn, step by step.

Same data (scikit-learn's digits), same initial weights (torch's ``nn.Linear`` init, copied
into a dict of JAX arrays), same batches (``fnlearn.data.iterate_batches`` feeds both), and
the same algorithms: ``torch.optim.SGD/RMSprop/Adagrad/Adam`` next to ``fnlearn.optim.sgd/
rmsprop/adagrad/adam`` with the same arguments, ``F.cross_entropy`` next to
``fnlearn.losses.cross_entropy``. Prints, per optimizer, the largest difference between the
two losses over all steps and between the final weights. Needs torch
(``pip install "fnlearn[torch]"``)::

    python examples/torch_side_by_side.py             # float32: differences near 1e-7
    python examples/torch_side_by_side.py 1 float64   # float64: differences near 1e-15
"""

from __future__ import annotations

import sys

import jax
import numpy as np
from sklearn.datasets import load_digits

import fnlearn as fl

EPOCHS = 3
BATCH_SIZE = 32


def optimizers(torch):
    """name -> (torch optimizer factory, fnlearn optimizer), with the same arguments."""
    return {
        "SGD": (lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
                fl.optim.sgd(lr=0.05, momentum=0.9)),
        "RMSprop": (lambda p: torch.optim.RMSprop(p, lr=1e-3), fl.optim.rmsprop(lr=1e-3)),
        "Adagrad": (lambda p: torch.optim.Adagrad(p, lr=0.05), fl.optim.adagrad(lr=0.05)),
        "Adam": (lambda p: torch.optim.Adam(p, lr=1e-3), fl.optim.adam(lr=1e-3)),
    }


def mlp(params, x):
    """torch's ``Sequential(Linear(64, 32), ReLU(), Linear(32, 10))`` over a dict of arrays."""
    h = jax.nn.relu(x @ params["w1"] + params["b1"][None, :])
    return h @ params["w2"] + params["b2"][None, :]


def loss_fn(params, batch):
    x, y = batch
    return fl.losses.cross_entropy(mlp(params, x), y)


def train_both(torch, net, make_torch_optimizer, optimizer, data, epochs, seed):
    """Train ``net`` (torch) and a copy of its weights (fnlearn) on the same batches."""
    import torch.nn.functional as F

    params = {"w1": net[0].weight.detach().numpy().T.copy(),  # torch: y = x W^T + b
              "b1": net[0].bias.detach().numpy().copy(),
              "w2": net[2].weight.detach().numpy().T.copy(),
              "b2": net[2].bias.detach().numpy().copy()}
    torch_optimizer = make_torch_optimizer(net.parameters())
    state = fl.train.TrainState.create(params, optimizer)
    step = fl.train.make_train_step(loss_fn, optimizer)
    differences = []
    for epoch in range(epochs):
        key = jax.random.fold_in(jax.random.key(seed), epoch)
        batches = fl.data.iterate_batches(data, BATCH_SIZE, shuffle=True, key=key,
                                          drop_last=True)  # one batch shape: one compilation
        for x, y in batches:
            # torch: forward, loss, backward, step, zero_grad
            loss = F.cross_entropy(net(torch.tensor(np.asarray(x))),
                                   torch.tensor(np.asarray(y), dtype=torch.long))
            loss.backward()
            torch_optimizer.step()
            torch_optimizer.zero_grad()
            # fnlearn: one compiled step
            state, metrics = step(state, (x, y))
            differences.append(abs(float(metrics["loss"]) - loss.item()))
    torch_weights = {"w1": net[0].weight.T, "b1": net[0].bias,
                     "w2": net[2].weight.T, "b2": net[2].bias}
    weights = max(float(np.max(np.abs(np.asarray(state.params[k]) - v.detach().numpy())))
                  for k, v in torch_weights.items())
    return {"steps": len(differences), "last_loss": loss.item(), "loss": max(differences),
            "weights": weights}


def main(size: float = 1.0, dtype: str = "float32", seed: int = 0) -> dict | None:
    """Train both sides for ``round(3 * size)`` epochs (at least 1) with each optimizer.

    Returns ``{name: {"loss": max loss difference, "weights": max weight difference, ...}}``,
    or ``None`` (with a message) when torch is not installed.
    """
    try:
        import torch
    except ImportError:
        print('torch is not installed: pip install "fnlearn[torch]"')
        return None
    if dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    epochs = max(1, round(EPOCHS * size))
    x, y = load_digits(return_X_y=True)
    data = ((x / 16.0).astype(dtype), y.astype(np.int32))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only add overhead
    try:
        results = {}
        for name, (make_torch_optimizer, optimizer) in optimizers(torch).items():
            torch.manual_seed(seed)  # the same initial weights for every optimizer
            net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                      torch.nn.Linear(32, 10)).to(getattr(torch, dtype))
            results[name] = train_both(torch, net, make_torch_optimizer, optimizer, data,
                                       epochs, seed)
    finally:
        torch.set_num_threads(threads)

    print(f"torch {torch.__version__} and fnlearn side by side: digits, {dtype}, {epochs} epochs")
    print(f"{'optimizer':<9} {'steps':>5} {'last loss':>9} {'max |loss diff|':>15} "
          f"{'max |weight diff|':>17}")
    for name, r in results.items():
        print(f"{name:<9} {r['steps']:>5} {r['last_loss']:>9.4f} {r['loss']:>15.2e} "
              f"{r['weights']:>17.2e}")
    return results


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0,
         sys.argv[2] if len(sys.argv) > 2 else "float32")
