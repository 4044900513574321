"""Checkpoints of a training run with orbax-checkpoint: train state, data-order key, epoch.

``save`` writes ``directory/<epoch>/`` and keeps the ``keep`` most recent epochs. ``restore``
reads one back into the structure of a template state and checks it: a missing, damaged or
mismatched checkpoint raises a clear error instead of training on from wrong numbers.
``available`` lists the epochs that restore.

Crash safety: every checkpoint that :func:`available` lists restores, whenever the process
died (e.g. SIGKILL) during a save or its clean-up, and the newest complete checkpoint is never
lost. It rests on three atomic steps:

- orbax writes a checkpoint into a temporary directory and commits it, once every process's
  part is written, by renaming it to ``<epoch>`` (its commit marker; a crash before that
  leaves only the temporary directory, never listed);
- fnlearn then writes a manifest (``fnlearn-files.json``: size and CRC32 of every file of the
  step, all processes' files included) to a temporary name and renames it into place;
- retention moves an old checkpoint out of the listed names in one rename
  (``<epoch>`` -> ``<epoch>.fnlearn-deleting``) before deleting any of its files.

A checkpoint is listed only when it is complete as a whole: orbax committed the step, and its
manifest's files are all there with their recorded sizes (without a manifest, when the process
died between the commit and the manifest, its metadata must be readable). The next ``save``
removes the leftovers of interrupted saves and clean-ups; ``restore`` removes those of
interrupted clean-ups (not the temporary directory of a save, which may be another process's
save in progress).

Two checks catch damage at restore: the manifest (sizes and CRC32s) is verified before orbax
reads anything, and the metadata's per-leaf CRC32 is verified after the arrays are read (it
also covers a checkpoint whose manifest was never written).

orbax-checkpoint is imported on first use (it is an optional dependency of fnlearn).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._typing import Array
from ._validate import is_int, require_extra
from .flat import Flat, is_flat, unpadded
from .sharding import gather

_FORMAT = "fnlearn-checkpoint/1"
_MANIFEST = "fnlearn-files.json"
_META_FILE = Path("meta", "metadata")  # the JSON item, where orbax's JsonCheckpointHandler puts it
_RETIRED = ".fnlearn-deleting"  # an old checkpoint's name while retention deletes it


class CheckpointError(ValueError):
    """A checkpoint that exists but cannot be used: damaged, or not shaped like the template."""


class Restored(NamedTuple):
    """What :func:`restore` returns: unpacks as ``state, key, epoch = restore(...)``."""

    state: Any
    key: Array | None
    epoch: int


def _orbax() -> Any:
    """orbax.checkpoint, or an ImportError naming the extra that installs it."""
    return require_extra("orbax.checkpoint", "fnlearn.checkpoint")


def save(
    directory: str | Path, state: Any, *, key: Array | None, epoch: int, keep: int | None = 3
) -> Path:
    """Save ``state`` (any pytree of arrays, e.g. a :class:`~fnlearn.train.TrainState`), the
    data-order ``key`` and ``epoch`` (epochs completed) as ``directory/<epoch>``.

    The save is atomic: the checkpoint appears under its final name only once complete. Only
    after that are older checkpoints deleted: those older than the ``keep`` most recent
    complete ones (``None`` keeps all), each first renamed out of the listed names, so a crash
    during the deletion leaves every listed checkpoint whole (see the module docstring). The
    leftovers of earlier interrupted saves and deletions are removed first. The metadata
    records every leaf's path, shape, dtype and CRC32, which :func:`restore` checks.

    A sharded state (placed on a mesh, e.g. by :meth:`fnlearn.sharding.Plan.put`): in a
    multi-process run every process calls ``save`` with the same arguments; each writes its
    own shards, orbax commits the step once all are written, and process 0 writes the
    manifest and retires old checkpoints. The checksums are of the whole arrays (a leaf
    split over several processes is gathered to each for it).

    Raises:
      FileExistsError: a checkpoint for ``epoch`` already exists (it is never overwritten).
      ValueError: ``epoch`` is negative or ``keep`` is not a positive integer or ``None``.

    Example:
      >>> import tempfile
      >>> import jax.numpy as jnp
      >>> from fnlearn import checkpoint
      >>> run = tempfile.mkdtemp()
      >>> for epoch in (1, 2, 3):
      ...     path = checkpoint.save(run, {"w": jnp.ones(3)}, key=None, epoch=epoch, keep=2)
      >>> checkpoint.available(run)
      [2, 3]
    """
    ocp = _orbax()

    if not is_int(epoch, 0):
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    if keep is not None and not is_int(keep, 1):
        raise ValueError(f"keep must be a positive integer or None, got {keep!r}")
    directory = Path(directory).absolute()
    state = unpadded(state)  # a Flat's padding depends on the mesh: it is never saved
    meta = {"format": _FORMAT, "epoch": int(epoch), "key": _key_to_json(key),
            "leaves": _describe(state, checksums=True)}
    primary = jax.process_index() == 0  # orbax commits a step on the primary process
    with _manager(directory) as manager:  # opening it removes interrupted saves' leftovers
        if primary:
            _remove_retired(directory, ignore_errors=False)
        if int(epoch) in manager.all_steps():
            raise FileExistsError(f"a checkpoint for epoch {epoch} already exists in {directory}")
        manager.save(int(epoch), args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
        manager.wait_until_finished()
        committed = sorted(manager.all_steps())
    step_dir = directory / str(int(epoch))
    if primary:
        _write_manifest(step_dir)
        if keep is not None:
            _retire(directory, committed, keep)
    return step_dir


def restore(directory: str | Path, like: Any, *, epoch: int | None = None) -> Restored:
    """Restore the checkpoint of ``epoch`` (default: the latest) in ``directory``.

    Every epoch that :func:`available` lists restores; the latest committed checkpoint is the
    default even when it is damaged (an error then names the epochs that do restore, rather
    than training on silently from an older one).

    Args:
      directory: the directory given to :func:`save`.
      like: a template with the saved state's structure, shapes and dtypes (e.g. the freshly
        created ``TrainState``, or ``jax.eval_shape`` of it); its arrays' shardings are used,
        so a checkpoint saved on one mesh restores onto another (4 devices to 1, 1 to 4, two
        processes to one: place the template with :meth:`fnlearn.sharding.Plan.put`).
      epoch: which checkpoint; ``None`` for the most recent.

    Returns:
      ``Restored(state, key, epoch)``: the state with ``like``'s structure, the data-order key
      (``None`` if none was saved) and the number of epochs completed.

    Raises:
      FileNotFoundError: no such directory, no checkpoint in it, or none for ``epoch``.
      CheckpointError: the checkpoint is damaged (missing or changed files, unreadable
        metadata, checksum mismatch) or its tree structure, shapes or dtypes differ from
        ``like``'s, or ``like``'s sharding cannot hold a leaf (a mesh axis that does not
        divide its dimension, devices this run lacks); the message names them.

    Example:
      >>> import tempfile
      >>> import jax.numpy as jnp
      >>> from fnlearn import checkpoint
      >>> run = tempfile.mkdtemp()
      >>> _ = checkpoint.save(run, {"w": jnp.arange(3.0)}, key=None, epoch=1)
      >>> state, key, epoch = checkpoint.restore(run, like={"w": jnp.zeros(3)})
      >>> state["w"].tolist(), key, epoch
      ([0.0, 1.0, 2.0], None, 1)
    """
    ocp = _orbax()

    directory = Path(directory).absolute()
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory {directory}")
    _remove_retired(directory, ignore_errors=True)  # best effort: the directory may be read-only
    with _manager(directory, read_only=True) as manager:
        committed = sorted(manager.all_steps())
        if not committed:
            raise FileNotFoundError(f"no checkpoint in {directory}")
        epochs = _complete(directory, committed)
        if epoch is None:
            epoch = committed[-1]
        if epoch not in committed:
            raise FileNotFoundError(
                f"no checkpoint for epoch {epoch} in {directory}; available: {epochs}"
            )
        where = f"checkpoint {directory / str(epoch)}"
        hint = f" (available epochs: {epochs}; pass epoch=... to restore another)"
        damage = _damage(directory / str(epoch), read=True)
        if damage is not None:
            raise CheckpointError(f"{where} is damaged: {damage}{hint}")
        try:
            meta = manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            meta = meta["meta"]
            saved = [(path, tuple(shape), dtype) for path, shape, dtype, _ in meta["leaves"]]
            crcs = [crc for *_, crc in meta["leaves"]]
        except Exception as exc:
            raise CheckpointError(f"{where} is damaged: its metadata cannot be read{hint}: "
                                  f"{_brief(exc)}") from exc
        as_saved = _as_saved(like)
        _check_like(saved, _describe(as_saved, checksums=False), where)
        _check_placement(like, where)
        target = jax.tree.map(_abstract, as_saved)
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
    state = jax.tree.map(_padded_like, state, like, is_leaf=is_flat)
    return Restored(state, _key_from_json(meta["key"]), int(meta["epoch"]))


def available(directory: str | Path) -> list[int]:
    """The epochs whose checkpoint in ``directory`` is complete, ascending (``[]`` if none).

    Complete means complete as a whole, the check :func:`restore` makes before reading the
    arrays: orbax committed the step, which for a multi-process (sharded) save it does only
    once every process's part is written, and every file in fnlearn's manifest (written after
    the commit, listing all processes' files) is there with its recorded size; a checkpoint
    whose process died before its manifest was written needs readable metadata instead. A
    checkpoint is never listed because one process's files exist. So every epoch listed
    restores with :func:`restore`, whenever a save or its clean-up was interrupted (the
    arrays' checksums are verified there). Lists, never writes.

    Example:
      >>> import tempfile
      >>> from fnlearn import checkpoint
      >>> checkpoint.available(tempfile.mkdtemp())
      []
    """
    directory = Path(directory).absolute()
    if not directory.is_dir():
        return []
    with _manager(directory, read_only=True) as manager:
        return _complete(directory, sorted(manager.all_steps()))


def _complete(directory: Path, committed: list[int]) -> list[int]:
    """The committed steps that pass the completeness check, in the given order."""
    return [step for step in committed if _damage(directory / str(step), read=False) is None]


def _damage(step_dir: Path, *, read: bool) -> str | None:
    """What makes a committed step incomplete or damaged, or ``None`` if nothing does.

    With a manifest: every file it lists must exist with its size (and, with ``read``, its
    CRC32). Without one (the process died between orbax's commit and the manifest): fnlearn's
    metadata must be readable, in fnlearn's format.
    """
    path = step_dir / _MANIFEST
    if not path.exists():
        try:
            if json.loads((step_dir / _META_FILE).read_text())["format"] == _FORMAT:
                return None
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return "its metadata cannot be read"
    try:
        files = [(name, int(size), int(crc))
                 for name, (size, crc) in json.loads(path.read_text())["files"].items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"its manifest {_MANIFEST} cannot be read"
    for name, size, crc in files:
        file = step_dir / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size or (read and zlib.crc32(file.read_bytes()) != crc):
            return f"{name} has changed since it was saved"
    return None


def _write_manifest(step_dir: Path) -> None:
    """Record every file's size and CRC32; written to a temporary name, then renamed."""
    files = {str(p.relative_to(step_dir)): [p.stat().st_size, zlib.crc32(p.read_bytes())]
             for p in sorted(step_dir.rglob("*")) if p.is_file()}
    tmp = step_dir / (_MANIFEST + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps({"format": _FORMAT, "files": files}))
        f.flush()
        os.fsync(f.fileno())  # on disk before its name, should the machine lose power
    os.replace(tmp, step_dir / _MANIFEST)
    _fsync_dir(step_dir)


def _retire(directory: Path, committed: list[int], keep: int) -> None:
    """Delete the steps older than the ``keep`` most recent complete ones, crash-safely.

    All of them first leave the listed names, each in one atomic rename to
    ``<epoch>.fnlearn-deleting`` (made durable before any file is deleted); a crash at any
    point leaves every listed step whole, and the renamed leftovers are removed later.
    """
    complete = _complete(directory, committed)
    if len(complete) <= keep:
        return
    retired = []
    for step in committed:
        if step < complete[-keep]:
            target = directory / f"{step}{_RETIRED}"
            os.rename(directory / str(step), target)
            retired.append(target)
    _fsync_dir(directory)  # the renames on disk before any deletion, as for the manifest
    for target in retired:
        shutil.rmtree(target)


def _remove_retired(directory: Path, *, ignore_errors: bool) -> None:
    """Finish the deletions that a crash interrupted (their steps are no longer listed)."""
    for path in directory.glob("*" + _RETIRED):
        shutil.rmtree(path, ignore_errors=ignore_errors)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _manager(directory: Path, *, read_only: bool = False) -> Any:
    """orbax's manager; retention is fnlearn's (:func:`_retire`), not orbax's ``max_to_keep``,
    which deletes a step file by file under its listed name."""
    ocp = _orbax()

    options = ocp.CheckpointManagerOptions(
        max_to_keep=None,
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
            # of the whole array (gathered when split over processes): restores onto any mesh
            row.append(zlib.crc32(np.ascontiguousarray(gather(leaf)).tobytes()))
        rows.append(row)
    return rows


def _check_placement(like: Any, where: str) -> None:
    """A CheckpointError naming the leaf and mesh axis where ``like``'s sharding cannot hold
    the saved array (a dimension the axis does not divide, devices this run does not have)."""
    here = set(jax.devices())
    for path, leaf in jax.tree_util.tree_flatten_with_path(like)[0]:
        sharding = getattr(leaf, "sharding", None)
        if sharding is None:
            continue
        name = jax.tree_util.keystr(path)
        missing = set(sharding.device_set) - here
        if missing:
            raise CheckpointError(
                f"{where} cannot be restored onto `like`{name}'s sharding: it names "
                f"{len(missing)} device(s) this run does not have "
                f"(e.g. {sorted(missing, key=str)[0]})"
            )
        spec = getattr(sharding, "spec", None)
        if spec is None:
            continue
        for d, entry in enumerate(spec):
            if entry is None:
                continue
            axes = entry if isinstance(entry, tuple) else (entry,)
            size = int(np.prod([sharding.mesh.shape[a] for a in axes]))
            if d >= len(leaf.shape) or leaf.shape[d] % size:
                raise CheckpointError(
                    f"{where} cannot be restored onto `like`{name}'s mesh: its shape "
                    f"{tuple(leaf.shape)} does not split over mesh axis {entry!r} of size "
                    f"{size} at dimension {d}"
                )


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


def _as_saved(like: Any) -> Any:
    """``like`` as :func:`save` wrote it: every padded :class:`~fnlearn.flat.Flat` becomes
    one without padding, its buffers whole on their mesh (an unpadded length need not split
    over it); :func:`_padded_like` pads and places them as ``like`` after reading."""

    def whole(buf: Any, length: int) -> jax.ShapeDtypeStruct:
        sharding = getattr(buf, "sharding", None)
        if isinstance(sharding, jax.sharding.NamedSharding):
            sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
        return jax.ShapeDtypeStruct((length,), buf.dtype, sharding=sharding)

    def plain(x: Any) -> Any:
        if not is_flat(x) or x.layout.multiple == 1:
            return x
        layout = dataclasses.replace(x.layout, multiple=1)
        return Flat(tuple(whole(b, layout.length(g)) for g, b in enumerate(x.buffers)), layout)

    return jax.tree.map(plain, like, is_leaf=is_flat)


def _padded_like(restored: Any, like: Any) -> Any:
    """A restored leaf or :class:`~fnlearn.flat.Flat` with ``like``'s padding and shardings."""
    if not is_flat(restored) or restored.layout == like.layout:
        return restored
    shardings = [getattr(b, "sharding", None) for b in like.buffers]
    out = None if None in shardings else Flat(tuple(shardings), like.layout)
    return jax.jit(lambda f: f.padded(like.layout.multiple), out_shardings=out)(restored)


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
