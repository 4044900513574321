"""Diabetes progression: regression with ``mse_loss`` and with ``huber_loss`` (a flax.nnx MLP).

scikit-learn's diabetes data (442 patients, 10 standardized features, no download); the
target (disease progression after one year) is standardized with the training statistics.
One MLP is trained with each loss, with Adam, through ``fnlearn.train.fit``; the table
reports test RMSE and MAE in the target's own units::

    python examples/diabetes.py        # full size, a few seconds
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

import fnlearn as fl

EPOCHS = 60
BATCH_SIZE = 32
LOSSES = {  # torch.nn.functional.mse_loss / huber_loss, same arguments
    "mse_loss": lambda pred, y: fl.losses.mse_loss(pred, y),
    "huber_loss (delta=1)": lambda pred, y: fl.losses.huber_loss(pred, y, delta=1.0),
}


class MLP(nnx.Module):
    """10 features -> 32 hidden units (tanh) -> 1 output."""

    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(10, 32, rngs=rngs)
        self.out = nnx.Linear(32, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.tanh(self.hidden(x)))[:, 0]


def main(size: float = 1.0, seed: int = 0, progress: bool | None = None) -> dict:
    """Train one MLP per loss for ``round(60 * size)`` epochs (at least 1)."""
    epochs = max(1, round(EPOCHS * size))
    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y.astype(np.float32), test_size=0.2, random_state=seed
    )
    mean, std = y_train.mean(), y_train.std()
    # flax.nnx: split the module into a static graph and a pytree of parameters once; the
    # train step updates the parameter pytree, merge rebuilds the module inside the loss.
    graphdef, params = nnx.split(MLP(nnx.Rngs(seed)), nnx.Param)

    def predict(params, x):
        return nnx.merge(graphdef, params)(x)

    results = {}
    for name, loss in LOSSES.items():

        def loss_fn(params, batch, loss=loss):
            x, y = batch
            return loss(predict(params, x), y)

        optimizer = fl.optim.adam(lr=3e-3)
        start = time.perf_counter()
        state, history = fl.train.fit(
            fl.train.make_train_step(loss_fn, optimizer),
            fl.train.TrainState.create(params, optimizer),
            (x_train, (y_train - mean) / std),
            epochs=epochs,
            batch_size=BATCH_SIZE,
            key=jax.random.key(seed),
            drop_last=True,  # every batch has the same shape: the step compiles once
            progress=progress,
        )
        pred = np.asarray(jax.jit(predict)(state.params, jnp.asarray(x_test))) * std + mean
        results[name] = {
            "train_loss": history.epochs[-1]["train_loss"],
            "test_rmse": float(np.sqrt(np.mean((pred - y_test) ** 2))),
            "test_mae": float(np.mean(np.abs(pred - y_test))),
            "time": time.perf_counter() - start,
        }
    baseline = float(np.sqrt(np.mean((y_test - mean) ** 2)))
    print(f"diabetes: {len(x_train)} training / {len(x_test)} test patients, {epochs} epochs; "
          f"predicting the mean gives test RMSE {baseline:.1f}")
    print(f"{'loss':<22} {'train loss':>10} {'test RMSE':>9} {'test MAE':>8} {'time (s)':>9}")
    for name, r in results.items():
        print(f"{name:<22} {r['train_loss']:>10.4f} {r['test_rmse']:>9.1f} {r['test_mae']:>8.1f} "
              f"{r['time']:>9.2f}")
    return results


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
