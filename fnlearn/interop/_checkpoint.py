"""Whole checkpoints: a ``torch.save({"model": ..., "optimizer": ..., "scheduler": ...,
"epoch": ...})`` file <-> a :class:`~fnlearn.train.TrainState` that ``make_train_step`` and
``fit`` continue, and the command that converts such a file into an fnlearn checkpoint
directory.

Checkpoint files are untrusted: they are read with ``torch.load(..., weights_only=True)``,
which unpickles tensors, containers and numbers only; a file whose pickle needs any other code
is refused (:class:`UnsafeCheckpointError`).
"""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._typing import Params
from ..train import TrainState
from ._optim import (
    _BUILT,
    _handover_step,
    optimizer_from_torch,
    optimizer_to_torch,
    plain_groups,
    spec_from_groups,
)
from ._params import (
    import_torch,
    is_tensor,
    named_leaves,
    nest,
    params_from_torch,
    params_to_torch,
    to_numpy,
)
from ._schedules import TorchSchedule, schedule_from_torch, schedule_to_torch


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint whose pickle needs code to load (refused: it could run anything)."""


class TorchCheckpoint(NamedTuple):
    """What :func:`load_torch_checkpoint` returns.

    Attributes:
        state: the :class:`~fnlearn.train.TrainState` (params, optimizer state, ``step`` =
            the optimizer's step count at the hand-over).
        optimizer: the fnlearn optimizer to give ``make_train_step`` (``None`` without an
            optimizer entry).
        buffers: the model's buffers (BatchNorm's running statistics), a nested dict.
        schedule: the :class:`TorchSchedule` of the scheduler entry, or ``None``; its
            ``plateau`` holds a ReduceLROnPlateau's pair and state.
        extra: every other entry (``epoch``, ``loss``, ...), tensors as NumPy arrays.
        handover_step: the optimizer's step count when torch saved the file.
        steps_per_epoch: optimizer steps per scheduler step, as given.
    """

    state: TrainState
    optimizer: Any
    buffers: Params
    schedule: TorchSchedule | None
    extra: dict[str, Any]
    handover_step: int
    steps_per_epoch: int = 1


def read_torch_file(path: str | Path) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, refusing code.

    Raises:
        UnsafeCheckpointError: the pickle names a global outside torch's weights-only allowlist
            (a class, a function: loading it would run code); the message carries torch's.
        FileNotFoundError: no such file.
    """
    torch = import_torch()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no torch checkpoint at {path}")
    try:
        with warnings.catch_warnings():
            # torch notes a pickle protocol it does not write; the refusal below is the answer
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"refusing to load {path}: its pickle needs code that is not tensors, containers "
            "or numbers, and fnlearn reads checkpoints with torch.load(weights_only=True) so "
            "that an untrusted file cannot run anything. If you trust this file, load it "
            "yourself and pass the dict to load_torch_checkpoint. torch said: "
            + str(e).splitlines()[0]) from e


def _entry(ckpt: Mapping[str, Any], key: str, what: str) -> Any:
    if key not in ckpt:
        raise KeyError(f"the torch checkpoint has no {what} entry {key!r}; its entries: "
                       f"{sorted(map(str, ckpt))} (pass {what}_key=... or None)")
    return ckpt[key]


def _plain(x: Any) -> Any:
    """A checkpoint's other entry as plain Python/NumPy (tensors as arrays)."""
    if is_tensor(x):
        return to_numpy(x)
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x) if not hasattr(x, "_fields") else x
    return x


def load_torch_checkpoint(
    path_or_dict: str | Path | Mapping[str, Any],
    model_key: str | None = "model",
    optimizer_key: str | None = "optimizer",
    scheduler_key: str | None = "scheduler",
    *,
    optimizer: str | None = None,
    scheduler: str | None = None,
    lr_lambdas: Sequence[Callable] | None = None,
    steps_per_epoch: int = 1,
    buffer_names: Sequence[str] | None = None,
) -> TorchCheckpoint:
    r"""A torch training checkpoint as a :class:`~fnlearn.train.TrainState` that
    ``make_train_step`` / ``fit`` continue, without losing a step.

    Args:
        path_or_dict: a ``torch.save`` file (read with ``weights_only=True``) or its dict.
        model_key: the entry holding ``model.state_dict()`` (``None``: the whole file is one).
        optimizer_key: the entry holding ``optimizer.state_dict()`` (``None``: none).
        scheduler_key: the entry holding ``scheduler.state_dict()``; skipped when the file
            has no such entry and it was left at its default.
        optimizer: the torch optimizer class, when its keys do not tell it.
        scheduler: the torch scheduler class, when its keys do not tell it.
        lr_lambdas: LambdaLR / MultiplicativeLR's functions.
        steps_per_epoch: optimizer steps per ``scheduler.step()``.
        buffer_names: the model's buffers, when they are not BatchNorm's (see
            :func:`params_from_torch`).

    Returns:
        A :class:`TorchCheckpoint`.

    Raises:
        UnsafeCheckpointError: a file whose pickle needs code.
        KeyError: a missing entry (the message lists the file's entries).
        ValueError: an optimizer state that does not fit the model (count, shape, dtype, class;
            the message names the parameter).

    Example::

        >>> import torch, tempfile, os
        >>> from fnlearn.interop.torch import load_torch_checkpoint
        >>> net = torch.nn.Linear(3, 2)
        >>> opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        >>> net(torch.ones(1, 3)).sum().backward(); opt.step()
        >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.pt")
        >>> torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 3},
        ...            path)
        >>> ckpt = load_torch_checkpoint(path)
        >>> sorted(ckpt.state.params), ckpt.extra, int(ckpt.state.step)
        (['bias', 'weight'], {'epoch': 3}, 1)
    """
    ckpt = (read_torch_file(path_or_dict) if isinstance(path_or_dict, (str, Path))
            else path_or_dict)
    if not isinstance(ckpt, Mapping):
        raise TypeError(f"a torch checkpoint is a dict of entries, got {type(ckpt).__name__}")
    model_sd = ckpt if model_key is None else _entry(ckpt, model_key, "model")
    weights = params_from_torch(model_sd, buffer_names=buffer_names)
    params, buffers = weights
    opt_sd = None if optimizer_key is None else _entry(ckpt, optimizer_key, "optimizer")
    sched_sd = None
    if scheduler_key is not None and (scheduler_key in ckpt or scheduler_key != "scheduler"):
        sched_sd = _entry(ckpt, scheduler_key, "scheduler")
    schedule = None if sched_sd is None else schedule_from_torch(
        sched_sd, scheduler, optimizer_state_dict=opt_sd, lr_lambdas=lr_lambdas)
    used = {model_key, optimizer_key, scheduler_key if sched_sd is not None else None}
    extra = {k: _plain(v) for k, v in ckpt.items() if k not in used} if model_key else {}
    tx, opt_state, handover = None, None, 0
    if opt_sd is not None:
        tx, opt_state = optimizer_from_torch(opt_sd, weights, optimizer, schedule=schedule,
                                             steps_per_epoch=steps_per_epoch)
        handover = _handover_step(opt_sd, None, schedule, steps_per_epoch) or _step_of(opt_state)
    state = TrainState(params, opt_state, jnp.asarray(handover, jnp.int32))
    return TorchCheckpoint(state, tx, buffers, schedule, extra, handover, steps_per_epoch)


def _step_of(opt_state: Any) -> int:
    """The first ``step`` field found in an optimizer state (0 if none)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(opt_state):
        if path and getattr(path[-1], "name", None) == "step":
            return int(leaf)
    return 0


def save_torch_checkpoint(
    path: str | Path,
    state: TrainState,
    optimizer: Any,
    *,
    buffers: Params | None = None,
    schedule: TorchSchedule | None = None,
    handover_step: int = 0,
    steps_per_epoch: int = 1,
    plateau_state: Any = None,
    extra: Mapping[str, Any] | None = None,
    model_key: str = "model",
    optimizer_key: str = "optimizer",
    scheduler_key: str = "scheduler",
) -> Path:
    """Write ``{"model", "optimizer", "scheduler", **extra}`` with ``torch.save``: what torch's
    ``model.load_state_dict`` / ``optimizer.load_state_dict`` / ``scheduler.load_state_dict``
    continue from. A :class:`TorchCheckpoint`'s fields give every argument but ``path``
    (``save_torch_checkpoint(path, **ckpt._asdict())`` after updating its state).

    The scheduler's epoch is ``schedule.last_epoch + (state.step - handover_step) //
    steps_per_epoch``; a ReduceLROnPlateau takes its counters from ``plateau_state``.
    """
    torch = import_torch()
    params = state.params.tree() if hasattr(state.params, "tree") else state.params
    out: dict[str, Any] = {model_key: params_to_torch(params, buffers)}
    if optimizer is not None:
        out[optimizer_key] = optimizer_to_torch(optimizer, state.opt_state, params)
    if schedule is not None:
        epoch = schedule.last_epoch + (int(state.step) - handover_step) // steps_per_epoch
        if schedule.plateau is not None and plateau_state is None:
            plateau_state = schedule.plateau[1]
        out[scheduler_key] = schedule_to_torch(schedule, epoch, plateau_state)
    for k, v in (extra or {}).items():
        out[k] = torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v
    path = Path(path)
    torch.save(out, path)
    return path


# --- the converter command: torch file -> fnlearn checkpoint directory ---------------------

SIDECAR = "torch-conversion.json"


def convert(src: str | Path, directory: str | Path, *, epoch: int | None = None,
            epoch_key: str = "epoch", **load_kwargs: Any) -> Path:
    """Convert a torch checkpoint file into an fnlearn checkpoint directory.

    Writes ``directory/<epoch>/`` with :func:`fnlearn.checkpoint.save` (the ``TrainState``,
    no data-order key) and ``directory/torch-conversion.json``: the optimizer's class, param
    groups and parameter names, the scheduler's state dict, the parameters' shapes and dtypes,
    the buffers and the plain entries, which :func:`restore_converted` reads to rebuild the
    optimizer and the template that :func:`fnlearn.checkpoint.restore` needs.

    ``epoch`` (epochs completed, fnlearn's count) defaults to the file's ``epoch_key`` entry.
    """
    from .. import checkpoint

    raw = read_torch_file(src) if isinstance(src, (str, Path)) else src
    ckpt = load_torch_checkpoint(raw, **load_kwargs)
    if epoch is None:
        if epoch_key not in ckpt.extra:
            raise KeyError(f"{src} has no {epoch_key!r} entry; pass --epoch")
        epoch = int(ckpt.extra[epoch_key])
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec = None if ckpt.optimizer is None else _BUILT[id(ckpt.optimizer)][1]
    opt_sd = None if spec is None else raw[load_kwargs.get("optimizer_key", "optimizer")]
    meta = {
        "source": str(src) if isinstance(src, (str, Path)) else None,
        "params": [[n, list(x.shape), str(x.dtype)] for n, x in named_leaves(ckpt.state.params)],
        "buffers": {n: _jsonable(np.asarray(x)) for n, x in named_leaves(ckpt.buffers)},
        "optimizer": None if spec is None else {
            "name": spec.name, "names": spec.names, "frozen": spec.frozen,
            "param_groups": plain_groups(opt_sd["param_groups"])},
        "scheduler": None if ckpt.schedule is None else {
            "name": ckpt.schedule.name, "state_dict": _jsonable(ckpt.schedule.state_dict)},
        "handover_step": ckpt.handover_step, "steps_per_epoch": ckpt.steps_per_epoch,
        "extra": _jsonable(ckpt.extra),
    }
    (directory / SIDECAR).write_text(json.dumps(meta, indent=1))
    checkpoint.save(directory, ckpt.state, key=None, epoch=epoch)
    return directory


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return {"__array__": x.tolist(), "dtype": str(x.dtype)}
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic,)):
        return x.item()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


def _from_json(x: Any) -> Any:
    if isinstance(x, dict) and "__array__" in x:
        return np.asarray(x["__array__"], dtype=x["dtype"])
    if isinstance(x, dict):
        return {k: _from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_from_json(v) for v in x]
    return x


class Converted(NamedTuple):
    """What :func:`restore_converted` returns."""

    state: TrainState
    optimizer: Any
    buffers: Params
    schedule: TorchSchedule | None
    key: Any
    epoch: int
    extra: dict[str, Any]


def restore_converted(directory: str | Path, *, epoch: int | None = None,
                      lr_lambdas: Sequence[Callable] | None = None) -> Converted:
    """Read back a directory written by :func:`convert` (the command): rebuilds the optimizer
    (with its schedule) from ``torch-conversion.json`` and restores the ``TrainState`` with
    :func:`fnlearn.checkpoint.restore`. Continue with ``fit(make_train_step(loss_fn,
    optimizer), state, ..., start_epoch=epoch)``.
    """
    from .. import checkpoint

    directory = Path(directory)
    meta = json.loads((directory / SIDECAR).read_text())
    params = nest({n: jnp.zeros(shape, dtype) for n, shape, dtype in meta["params"]})
    buffers = nest({n: jnp.asarray(_from_json(v)) for n, v in meta["buffers"].items()})
    schedule, tx, opt_state = None, None, None
    o = meta["optimizer"]
    if meta["scheduler"] is not None:
        schedule = schedule_from_torch(
            _from_json(meta["scheduler"]["state_dict"]), meta["scheduler"]["name"],
            optimizer_state_dict=None if o is None else {"param_groups": o["param_groups"]},
            lr_lambdas=lr_lambdas)
    if o is not None:
        tx = spec_from_groups(
            o["name"], o["param_groups"], tuple(map(tuple, o["names"])), tuple(o["frozen"]),
            schedule=schedule, handover=meta["handover_step"],
            steps_per_epoch=meta["steps_per_epoch"]).build()
        opt_state = tx.init(params)
    like = TrainState(params, opt_state, jnp.zeros((), jnp.int32))
    state, key, done = checkpoint.restore(directory, like=like, epoch=epoch)
    return Converted(state, tx, buffers, schedule, key, done, _from_json(meta["extra"]))
