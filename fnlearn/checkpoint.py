"""Checkpoints of a training run with orbax-checkpoint: train state, data-order key, epoch.

``save`` writes ``directory/<epoch>/`` (orbax writes into a temporary directory and renames it
only once everything is written, so a crash during a save leaves the previous checkpoints as
they were) and keeps the ``keep`` most recent epochs. ``restore`` reads one back into the
structure of a template state and checks it: a missing, damaged or mismatched checkpoint
raises a clear error instead of training on from wrong numbers.

Two checks catch damage: a manifest (``fnlearn-files.json``: size and CRC32 of every file,
written once the checkpoint is complete) is verified before orbax reads anything, and the
metadata's per-leaf CRC32 is verified after the arrays are read (it also covers a checkpoint
whose manifest was never written because the process died right after orbax's rename).

orbax-checkpoint is imported on first use (it is an optional dependency of fnlearn).
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._typing import Array

_FORMAT = "fnlearn-checkpoint/1"
_MANIFEST = "fnlearn-files.json"


class CheckpointError(ValueError):
    """A checkpoint that exists but cannot be used: damaged, or not shaped like the template."""


class Restored(NamedTuple):
    """What :func:`restore` returns: unpacks as ``state, key, epoch = restore(...)``."""

    state: Any
    key: Array | None
    epoch: int


def save(
    directory: str | Path, state: Any, *, key: Array | None, epoch: int, keep: int | None = 3
) -> Path:
    """Save ``state`` (any pytree of arrays, e.g. a :class:`~fnlearn.train.TrainState`), the
    data-order ``key`` and ``epoch`` (epochs completed) as ``directory/<epoch>``.

    The save is atomic: the checkpoint appears under its final name only once complete, and
    older checkpoints are deleted (beyond the ``keep`` most recent; ``None`` keeps all) only
    after that. The metadata records every leaf's path, shape, dtype and CRC32, which
    :func:`restore` checks.

    Raises:
      FileExistsError: a checkpoint for ``epoch`` already exists (it is never overwritten).
      ValueError: ``epoch`` is negative or ``keep`` is not a positive integer or ``None``.
    """
    import orbax.checkpoint as ocp

    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ValueError(f"keep must be a positive integer or None, got {keep!r}")
    directory = Path(directory).absolute()
    meta = {"format": _FORMAT, "epoch": int(epoch), "key": _key_to_json(key),
            "leaves": _describe(state, checksums=True)}
    with _manager(directory, keep=keep) as manager:
        if int(epoch) in manager.all_steps():
            raise FileExistsError(f"a checkpoint for epoch {epoch} already exists in {directory}")
        manager.save(int(epoch), args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
        manager.wait_until_finished()
    step_dir = directory / str(int(epoch))
    _write_manifest(step_dir)
    return step_dir


def restore(directory: str | Path, like: Any, *, epoch: int | None = None) -> Restored:
    """Restore the checkpoint of ``epoch`` (default: the latest) in ``directory``.

    Args:
      directory: the directory given to :func:`save`.
      like: a template with the saved state's structure, shapes and dtypes (e.g. the freshly
        created ``TrainState``, or ``jax.eval_shape`` of it); its arrays' shardings are used.
      epoch: which checkpoint; ``None`` for the most recent.

    Returns:
      ``Restored(state, key, epoch)``: the state with ``like``'s structure, the data-order key
      (``None`` if none was saved) and the number of epochs completed.

    Raises:
      FileNotFoundError: no such directory, no checkpoint in it, or none for ``epoch``.
      CheckpointError: the checkpoint is damaged (unreadable files, checksum mismatch) or its
        tree structure, shapes or dtypes differ from ``like``'s; the message names them.
    """
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory {directory}")
    with _manager(directory, keep=None, read_only=True) as manager:
        epochs = sorted(manager.all_steps())
        if not epochs:
            raise FileNotFoundError(f"no checkpoint in {directory}")
        if epoch is None:
            epoch = epochs[-1]
        if epoch not in epochs:
            raise FileNotFoundError(
                f"no checkpoint for epoch {epoch} in {directory}; available: {epochs}"
            )
        where = f"checkpoint {directory / str(epoch)}"
        hint = f" (available epochs: {epochs}; pass epoch=... to restore another)"
        _check_manifest(directory / str(epoch), where + " is damaged: ", hint)
        try:
            meta = manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            meta = meta["meta"]
            saved = [(path, tuple(shape), dtype) for path, shape, dtype, _ in meta["leaves"]]
            crcs = [crc for *_, crc in meta["leaves"]]
        except Exception as exc:
            raise CheckpointError(f"{where} is damaged: its metadata cannot be read{hint}: "
                                  f"{_brief(exc)}") from exc
        _check_like(saved, _describe(like, checksums=False), where)
        target = jax.tree.map(_abstract, like)
        try:
            state = manager.restore(
                epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))
            )["state"]
        except Exception as exc:
            raise CheckpointError(f"{where} is damaged: its arrays cannot be read{hint}: "
                                  f"{_brief(exc)}") from exc
    for (path, *_), crc, (*_, got) in zip(saved, crcs, _describe(state, checksums=True),
                                          strict=True):
        if crc != got:
            raise CheckpointError(f"{where} is damaged: the data of {path} fails its checksum"
                                  f"{hint}")
    return Restored(state, _key_from_json(meta["key"]), int(meta["epoch"]))


def available(directory: str | Path) -> list[int]:
    """The epochs with a complete checkpoint in ``directory``, ascending (``[]`` if none)."""
    directory = Path(directory).absolute()
    if not directory.is_dir():
        return []
    with _manager(directory, keep=None, read_only=True) as manager:
        return sorted(manager.all_steps())


def _write_manifest(step_dir: Path) -> None:
    """Record every file's size and CRC32; written to a temporary name, then renamed."""
    files = {str(p.relative_to(step_dir)): [p.stat().st_size, zlib.crc32(p.read_bytes())]
             for p in sorted(step_dir.rglob("*")) if p.is_file()}
    tmp = step_dir / (_MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"format": _FORMAT, "files": files}))
    os.replace(tmp, step_dir / _MANIFEST)


def _check_manifest(step_dir: Path, damaged: str, hint: str) -> None:
    """Verify the files against the manifest (if one was written) before orbax reads them."""
    path = step_dir / _MANIFEST
    if not path.exists():
        return
    try:
        files = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{damaged}its manifest {_MANIFEST} cannot be read{hint}") from exc
    for name, (size, crc) in files.items():
        file = step_dir / name
        if not file.is_file():
            raise CheckpointError(f"{damaged}{name} is missing{hint}")
        if file.stat().st_size != size or zlib.crc32(file.read_bytes()) != crc:
            raise CheckpointError(f"{damaged}{name} has changed since it was saved{hint}")


def _manager(directory: Path, *, keep: int | None, read_only: bool = False) -> Any:
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        enable_async_checkpointing=False,
        create=not read_only,
        cleanup_tmp_directories=not read_only,  # a crashed save's leftovers
    )
    handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)


def _describe(tree: Any, *, checksums: bool) -> list[list[Any]]:
    """``[path, shape, dtype(, crc32)]`` per leaf, in flattening order (JSON-ready)."""
    rows = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        leaf = leaf if hasattr(leaf, "dtype") else np.asarray(leaf)
        row = [jax.tree_util.keystr(path), list(leaf.shape), str(np.dtype(leaf.dtype))]
        if checksums:
            row.append(zlib.crc32(np.ascontiguousarray(jax.device_get(leaf)).tobytes()))
        rows.append(row)
    return rows


def _check_like(saved: list[tuple], like: list[list[Any]], where: str) -> None:
    """Raise a CheckpointError naming the first differences between saved and template leaves."""
    saved_paths, like_paths = [s[0] for s in saved], [row[0] for row in like]
    if saved_paths != like_paths:
        missing = [p for p in like_paths if p not in saved_paths][:5]
        extra = [p for p in saved_paths if p not in like_paths][:5]
        raise CheckpointError(
            f"{where} has a different tree structure than `like`: {len(saved_paths)} leaves "
            f"saved, {len(like_paths)} expected; in `like` only: {missing}; in the checkpoint "
            f"only: {extra}"
        )
    diffs = [
        f"{path}: saved {shape} {dtype}, `like` has {tuple(row[1])} {row[2]}"
        for (path, shape, dtype), row in zip(saved, like, strict=True)
        if shape != tuple(row[1]) or dtype != row[2]
    ]
    if diffs:
        raise CheckpointError(f"{where} does not match `like`'s shapes/dtypes: "
                              + "; ".join(diffs[:5]))


def _brief(exc: Exception, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + " ..."


def _abstract(x: Any) -> jax.ShapeDtypeStruct:
    sharding = getattr(x, "sharding", None) or jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


def _key_to_json(key: Array | None) -> dict[str, Any] | None:
    if key is None:
        return None
    key = jnp.asarray(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        impl = str(jax.random.key_impl(key))
        return {"data": np.asarray(jax.random.key_data(key)).tolist(), "impl": impl}
    return {"data": np.asarray(key).tolist(), "impl": None, "dtype": str(key.dtype)}


def _key_from_json(meta: dict[str, Any] | None) -> Array | None:
    if meta is None:
        return None
    if meta["impl"] is None:
        return jnp.asarray(np.asarray(meta["data"], dtype=meta["dtype"]))
    return jax.random.wrap_key_data(jnp.asarray(meta["data"], dtype=jnp.uint32),
                                    impl=meta["impl"])
