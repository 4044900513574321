"""Breast cancer: binary classification with ``binary_cross_entropy_with_logits`` and
``pos_weight`` (logistic regression over a plain dict of parameters).

scikit-learn's Wisconsin breast cancer data (569 tumours, 30 features, no download), with
"malignant" as the positive class (212 of 569). The model is trained twice with SGD: once
unweighted, once with ``pos_weight = negatives / positives`` (torch's recipe for an
imbalanced target: the positive terms of the loss weigh as if the classes were balanced). The
weighted model leans towards flagging a tumour as malignant, accepting more false alarms
(lower precision) to avoid missing malignant ones (recall); the table counts both on the test
set::

    python examples/breast_cancer.py   # full size, a few seconds
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import fnlearn as fl

EPOCHS = 30
BATCH_SIZE = 32


def logits(params, x):
    return x @ params["w"] + params["b"]


def main(size: float = 1.0, seed: int = 0, progress: bool | None = None) -> dict:
    """Train the unweighted and the ``pos_weight`` model for ``round(30 * size)`` epochs."""
    epochs = max(1, round(EPOCHS * size))
    x, y = load_breast_cancer(return_X_y=True)
    y = (y == 0).astype(np.float32)  # sklearn: 0 = malignant; here malignant = 1 (positive)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y
    )
    mu, sigma = x_train.mean(axis=0), x_train.std(axis=0)
    x_train = ((x_train - mu) / sigma).astype(np.float32)
    x_test = ((x_test - mu) / sigma).astype(np.float32)
    params = {"w": jnp.zeros(x.shape[1], jnp.float32), "b": jnp.zeros((), jnp.float32)}
    positives = float(y_train.sum())
    pos_weight = (len(y_train) - positives) / positives

    results = {}
    for name, weight in [("unweighted", None), (f"pos_weight={pos_weight:.2f}", pos_weight)]:
        pw = None if weight is None else jnp.asarray(weight, jnp.float32)

        def loss_fn(params, batch, pw=pw):
            x, y = batch
            return fl.losses.binary_cross_entropy_with_logits(logits(params, x), y, pos_weight=pw)

        optimizer = fl.optim.sgd(lr=0.01, momentum=0.9)
        start = time.perf_counter()
        state, history = fl.train.fit(
            fl.train.make_train_step(loss_fn, optimizer),
            fl.train.TrainState.create(params, optimizer),
            (x_train, y_train),
            epochs=epochs,
            batch_size=BATCH_SIZE,
            key=jax.random.key(seed),
            drop_last=True,  # every batch has the same shape: the step compiles once
            progress=progress,
        )
        predicted = np.asarray(logits(state.params, jnp.asarray(x_test))) > 0
        truth = y_test == 1
        true_positives = float(np.sum(predicted & truth))
        results[name] = {
            "train_loss": history.epochs[-1]["train_loss"],
            "accuracy": float(np.mean(predicted == truth)),
            "recall": true_positives / float(np.sum(truth)),
            "precision": true_positives / max(float(np.sum(predicted)), 1.0),
            "missed": int(np.sum(~predicted & truth)),
            "false_alarms": int(np.sum(predicted & ~truth)),
            "time": time.perf_counter() - start,
        }
    print(f"breast cancer: {len(x_train)} training / {len(x_test)} test tumours, "
          f"{int(positives)} malignant in training, {epochs} epochs")
    print(f"{'loss':<18} {'train loss':>10} {'accuracy':>8} {'recall':>7} {'precision':>9} "
          f"{'missed':>6} {'false alarms':>12} {'time (s)':>9}")
    for name, r in results.items():
        print(f"{name:<18} {r['train_loss']:>10.4f} {r['accuracy']:>8.3f} {r['recall']:>7.3f} "
              f"{r['precision']:>9.3f} {r['missed']:>6} {r['false_alarms']:>12} "
              f"{r['time']:>9.2f}")
    return results


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
