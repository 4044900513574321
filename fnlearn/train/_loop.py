"""``fit``: the epoch loop around a train step, with evaluation, a history and checkpoints."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._typing import Array, Params
from .._validate import require_extra
from ..data import iterate_batches
from ..sharding import Plan
from ._plot import plot_histories
from ._state import TrainState
from ._step import EvalStep, TrainStep


def evaluate(
    eval_step: EvalStep,
    params: Params,
    data: Any,
    batch_size: int,
    *,
    sharding: Plan | None = None,
) -> dict[str, Any]:
    """The mean of ``eval_step``'s metrics over ``data``, weighting each batch by its size.

    For a ``'mean'``-reduced loss this is the loss of the whole data set. Metrics come back
    with the structure of the step's, scalars as Python floats, after one host sync for the
    whole pass.

    With ``sharding`` (a :class:`fnlearn.sharding.Plan`; ``eval_step`` from
    ``make_eval_step(..., sharding=plan)``) every batch is split over the mesh's data axis,
    each process reading its rows of it, and every metric is the mean over all processes'
    samples (XLA reduces over the whole global batch), the same number on every process.
    ``batch_size`` is then the global batch, and the mesh's data axis must divide it and the
    last batch.
    """
    sums, count = None, 0
    where = None if sharding is None else sharding.batch
    for batch in iterate_batches(data, batch_size, sharding=where):
        n = jax.tree.leaves(batch)[0].shape[0]
        metrics = jax.tree.map(lambda m, n=n: m * n, eval_step(params, batch))
        sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
        count += n
    if sums is None:
        raise ValueError("evaluate: data has no samples")
    means = jax.tree.map(lambda s: np.asarray(s) / count, jax.device_get(sums))
    return jax.tree.map(lambda m: float(m) if m.ndim == 0 else m, means)


@dataclasses.dataclass
class History:
    """What :func:`fit` records: the loss of every step and a dict of metrics per epoch.

    Attributes:
      loss: the training loss of each step, in order.
      epochs: one dict per epoch: ``epoch`` (1-based), ``step`` (``len(loss)`` at the end of
        the epoch), ``train_loss`` (mean step loss), ``time`` (seconds), and with validation
        data ``val_loss`` (and ``val_aux``).
    """

    loss: list[float] = dataclasses.field(default_factory=list)
    epochs: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Write the loss curves (steps, epoch means, validation) to a PNG; returns ``path``."""
        return plot_histories({"train": self}, path, title=title)


def fit(
    train_step: TrainStep,
    state: TrainState,
    data: Any,
    *,
    epochs: int,
    batch_size: int,
    key: Array | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    eval_step: EvalStep | None = None,
    val_data: Any = None,
    start_epoch: int = 0,
    checkpoint_dir: str | Path | None = None,
    keep: int = 3,
    progress: bool | None = None,
    sharding: Plan | None = None,
    desc: str | None = None,
) -> tuple[TrainState, History]:
    """Train for ``epochs`` epochs: the seed's loop, with a progress bar and a history.

    Epoch ``e`` (0-based) visits ``data`` through :func:`~fnlearn.data.iterate_batches` in
    the order drawn from ``jax.random.fold_in(key, e)``, calls ``train_step`` on every batch,
    then (with ``val_data``) evaluates ``state.params`` with ``eval_step`` and (with
    ``checkpoint_dir``) saves the state, ``key`` and ``e + 1`` with
    :func:`fnlearn.checkpoint.save`. To resume::

        state, key, done = fl.checkpoint.restore(checkpoint_dir, like=state)
        state, history = fit(step, state, data, ..., key=key, start_epoch=done)

    which ends bit-identical to a run that was never interrupted. The loop is short on
    purpose: copy it into your own code when you need more.

    Args:
      train_step: from :func:`make_train_step`. ``state`` is donated to it if it donates.
      state: the :class:`TrainState` to start from.
      data: a tuple or dict of arrays with a common leading dimension.
      epochs: the total number of epochs, counting the ``start_epoch`` already done.
      batch_size: samples per step (also per validation batch).
      key: a PRNG key for the data order; needed with ``shuffle``.
      shuffle: reshuffle every epoch (torch's ``DataLoader(shuffle=True)``).
      drop_last: drop each epoch's last, smaller batch (avoids one extra compilation).
      eval_step: from :func:`make_eval_step`; needed with ``val_data``.
      val_data: evaluated after every epoch; recorded as ``val_loss`` (and ``val_aux``).
      start_epoch: epochs already done (from :func:`fnlearn.checkpoint.restore`).
      checkpoint_dir: save a checkpoint after every epoch, keeping the last ``keep``.
      keep: how many checkpoints to keep.
      progress: show a tqdm progress bar (loss, steps/s); ``None``: only on a terminal.
        ``True`` needs tqdm (``pip install "fnlearn[train]"``).
      desc: what the bar names before ``epoch e/E`` (e.g. the optimizer's name), so that
        several runs' bars can be told apart.

    Returns:
      ``(state, history)``: the final state and a :class:`History` of this call's epochs.

    The per-step loss stays on the device during an epoch. With a bar, step ``i - 1`` is
    counted (and its loss shown) once its loss is computed, which the host waits for while
    step ``i`` runs: steps/s measures computation, not how fast steps are dispatched.

    Many devices or processes: pass the :class:`fnlearn.sharding.Plan` the steps were made
    with as ``sharding`` and a state placed with ``plan.put``. Every process runs the same
    call on the same ``data`` and ``key``; each batch of ``batch_size`` (global) rows is split
    over the mesh's data axis, each process supplying its own rows
    (:func:`~fnlearn.data.iterate_batches`); the progress bar shows on process 0 only; every
    process takes part in each checkpoint save (orbax writes each process's shards, process 0
    the metadata); the history (losses, validation) is the same on every process.
    """
    if val_data is not None and eval_step is None:
        raise ValueError("val_data needs eval_step=make_eval_step(loss_fn)")
    data = jax.tree.map(jnp.asarray, data)
    history = History()
    for epoch in range(start_epoch, epochs):
        epoch_key = None if key is None else jax.random.fold_in(key, epoch)
        batches = iterate_batches(data, batch_size, shuffle=shuffle, key=epoch_key,
                                  drop_last=drop_last,
                                  sharding=None if sharding is None else sharding.batch)
        if jax.process_index() != 0:  # one bar per run, not one per process
            progress = False
        label = f"epoch {epoch + 1}/{epochs}"
        bar = _progress_bar(progress, desc=f"{desc} {label}" if desc else label,
                            total=_num_batches(data, batch_size, drop_last))
        losses, start = [], time.perf_counter()
        for batch in batches:
            state, metrics = train_step(state, batch)
            losses.append(metrics["loss"])
            if bar is not None and len(losses) > 1:
                _count_step(bar, losses[-2])  # waits for step i - 1 while step i runs
        if bar is not None:
            if losses:
                _count_step(bar, losses[-1])
            bar.close()
        losses = [float(x) for x in jax.device_get(losses)]
        history.loss.extend(losses)
        record = {
            "epoch": epoch + 1,
            "step": len(history.loss),
            "train_loss": float(np.mean(losses)) if losses else math.nan,
            "time": time.perf_counter() - start,
        }
        if val_data is not None:
            val = evaluate(eval_step, state.params, val_data, batch_size, sharding=sharding)
            record.update({f"val_{name}": value for name, value in val.items()})
        history.epochs.append(record)
        if checkpoint_dir is not None:
            from .. import checkpoint

            checkpoint.save(checkpoint_dir, state, key=key, epoch=epoch + 1, keep=keep)
    return state, history


def _num_batches(data: Any, batch_size: int, drop_last: bool) -> int:
    n = jax.tree.leaves(data)[0].shape[0]
    return n // batch_size if drop_last else -(-n // batch_size)


def _progress_bar(progress: bool | None, **kwargs: Any) -> Any:
    """A manually advanced tqdm bar (``progress=None``: only on a terminal), or ``None``."""
    if progress is False:
        return None
    if progress:
        tqdm = require_extra("tqdm", "fit(progress=True)").tqdm
    else:
        try:
            from tqdm import tqdm
        except ImportError:
            return None
    bar = tqdm(unit="step", disable=None if progress is None else False, **kwargs)
    if bar.disable:
        bar.close()
        return None
    return bar


def _count_step(bar: Any, loss: Array) -> None:
    """Count one step on ``bar`` once its loss is computed (``float`` waits for it)."""
    bar.set_postfix(loss=f"{float(loss):.4g}", refresh=False)
    bar.update(1)
