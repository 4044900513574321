"""Handwritten digits: a flax MLP trained with SGD (momentum), RMSprop, Adagrad and Adam.

scikit-learn's 8x8 digits (1,797 images, no download), 75% for training, 25% for testing;
``fnlearn.losses.cross_entropy``, the four optimizers from ``fnlearn.optim`` with torch's
names and defaults, and the training loop of ``fnlearn.train.fit``. Prints a table (final
training loss, test accuracy, wall time including compilation) and writes the four loss
curves to ``digits_losses.png``::

    python examples/digits.py          # full size, well under a minute on 2 CPU cores
    python examples/digits.py 0.1      # a tenth of the epochs
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fnlearn as fl

EPOCHS = 20
BATCH_SIZE = 32
OPTIMIZERS = {  # torch.optim.SGD(params, lr=0.05, momentum=0.9), torch.optim.RMSprop(...), ...
    "SGD (momentum)": lambda: fl.optim.sgd(lr=0.05, momentum=0.9),
    "RMSprop": lambda: fl.optim.rmsprop(lr=1e-3),
    "Adagrad": lambda: fl.optim.adagrad(lr=0.05),
    "Adam": lambda: fl.optim.adam(lr=1e-3),
}


class MLP(nn.Module):
    """64 pixels -> 64 hidden units (ReLU) -> 10 class logits."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(nn.relu(nn.Dense(64)(x)))


def main(
    size: float = 1.0,
    plot: str | Path | None = "digits_losses.png",
    seed: int = 0,
    progress: bool | None = None,
) -> dict[str, dict[str, float]]:
    """Train one MLP per optimizer for ``round(20 * size)`` epochs (at least 1)."""
    epochs = max(1, round(EPOCHS * size))
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)  # pixel intensities 0..16 -> 0..1
    x_train, x_test, y_train, y_test = train_test_split(
        x, y.astype(np.int32), test_size=0.25, random_state=seed, stratify=y
    )
    model = MLP()
    params = model.init(jax.random.key(seed), x_train[:1])["params"]

    def loss_fn(params, batch):
        x, y = batch
        return fl.losses.cross_entropy(model.apply({"params": params}, x), y)

    def loss_and_accuracy(params, batch):
        x, y = batch
        logits = model.apply({"params": params}, x)
        predicted = jnp.argmax(logits, axis=-1).astype(y.dtype)
        return fl.losses.cross_entropy(logits, y), jnp.mean(predicted == y)

    eval_step = fl.train.make_eval_step(loss_and_accuracy, has_aux=True)
    results, histories = {}, {}
    for name, make_optimizer in OPTIMIZERS.items():
        optimizer = make_optimizer()
        start = time.perf_counter()
        state, history = fl.train.fit(
            fl.train.make_train_step(loss_fn, optimizer),
            fl.train.TrainState.create(params, optimizer),  # the same initial weights each time
            (x_train, y_train),
            epochs=epochs,
            batch_size=BATCH_SIZE,
            key=jax.random.key(seed),  # the same batches each time
            drop_last=True,  # every batch has the same shape: the step compiles once
            eval_step=eval_step,
            val_data=(x_test, y_test),
            progress=progress,
            desc=name,  # one bar per optimizer, named by it
        )
        last = history.epochs[-1]
        results[name] = {
            "train_loss": last["train_loss"],
            "test_accuracy": last["val_aux"],
            "time": time.perf_counter() - start,
        }
        histories[name] = history

    print(f"digits: {len(x_train)} training / {len(x_test)} test images, {epochs} epochs, "
          f"batch size {BATCH_SIZE}")
    print(f"{'optimizer':<16} {'train loss':>10} {'test accuracy':>13} {'time (s)':>9}")
    for name, r in results.items():
        print(f"{name:<16} {r['train_loss']:>10.4f} {r['test_accuracy']:>13.4f} "
              f"{r['time']:>9.2f}")
    if plot is not None:
        path = fl.train.plot_histories(histories, plot, title="digits: cross-entropy loss")
        print(f"loss curves: {path}")
    return results


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
