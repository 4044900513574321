"""fnlearn.checkpoint: round trips, keep-last-N, bit-identical resume, clear errors for missing,
damaged and mismatched checkpoints, and saves interrupted by an exception or a SIGKILL."""

import errno
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

import fnlearn as fl
from fnlearn import checkpoint
from fnlearn.checkpoint import CheckpointError
from fnlearn.train import TrainState, fit, make_train_step
from tests import _xla

ROOT = Path(__file__).resolve().parents[1]


def _params():
    return {"w": jnp.linspace(-1.0, 1.0, 6).reshape(3, 2), "b": jnp.zeros((1, 2))}


def _state(params=None, skip=True):
    state = TrainState.create(_params() if params is None else params, fl.optim.adam(lr=0.1))
    return state if skip else state._replace(skipped=None)


def _bits(tree):
    return [np.asarray(leaf).tobytes() for leaf in jax.tree.leaves(tree)]


def _mse(params, batch):
    x, y = batch
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3))
    return jnp.asarray(x), jnp.asarray(np.tanh(x[:, :2]) + 0.1 * rng.normal(size=(10, 2)))


@functools.cache  # one compilation for the module; nothing here donates it
def _trained_state():
    state = _state()
    state, _ = make_train_step(_mse, fl.optim.adam(lr=0.1), skip_nonfinite=True)(state, _data())
    return state


def _linen():
    return nn.Dense(2).init(jax.random.key(0), jnp.ones((1, 3), jnp.float32))["params"]


def _nnx():
    return nnx.split(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), nnx.Param)[1]


@pytest.mark.parametrize(
    "key",
    [jax.random.key(5), jax.random.PRNGKey(5), jax.random.key(5, impl="rbg"), None],
    ids=["typed-key", "raw-key", "rbg-key", "no-key"],
)
def test_round_trip_is_bit_identical(tmp_path, key):
    state = _trained_state()
    path = checkpoint.save(tmp_path, state, key=key, epoch=4)
    assert path == tmp_path / "4" and path.is_dir()
    restored, got_key, epoch = checkpoint.restore(tmp_path, like=_state())
    assert epoch == 4 and type(restored) is TrainState
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    assert _bits(restored) == _bits(state)
    assert [x.dtype for x in jax.tree.leaves(restored)] == [x.dtype for x in jax.tree.leaves(state)]
    if key is None:
        assert got_key is None
    else:
        assert got_key.dtype == key.dtype and got_key.shape == key.shape
        np.testing.assert_array_equal(jax.random.key_data(got_key), jax.random.key_data(key))


@pytest.mark.parametrize("make_params", [_linen, _nnx], ids=["flax-linen", "flax-nnx"])
def test_round_trip_of_flax_parameters(tmp_path, make_params):
    state = _state(make_params(), skip=False)
    checkpoint.save(tmp_path, state, key=None, epoch=1)
    restored = checkpoint.restore(tmp_path, like=_state(make_params(), skip=False)).state
    assert type(restored.params) is type(state.params)
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    assert _bits(restored) == _bits(state)


def test_abstract_template_and_epoch_choice(tmp_path):
    states = {}
    for epoch in (1, 2, 3):
        states[epoch] = jax.tree.map(lambda x, e=epoch: x + e, _state())
        checkpoint.save(tmp_path, states[epoch], key=None, epoch=epoch, keep=None)
    like = jax.eval_shape(_state)  # ShapeDtypeStructs only, no sharding
    assert _bits(checkpoint.restore(tmp_path, like).state) == _bits(states[3])
    assert _bits(checkpoint.restore(tmp_path, like, epoch=2).state) == _bits(states[2])


def test_keeps_the_last_n(tmp_path):
    for epoch in range(1, 6):
        checkpoint.save(tmp_path, _state(), key=None, epoch=epoch, keep=2)
    assert checkpoint.available(tmp_path) == [4, 5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["4", "5"]
    with pytest.raises(FileNotFoundError, match=r"no checkpoint for epoch 3 .* \[4, 5\]"):
        checkpoint.restore(tmp_path, _state(), epoch=3)


def test_save_errors(tmp_path):
    checkpoint.save(tmp_path, _state(), key=None, epoch=1)
    with pytest.raises(FileExistsError, match="a checkpoint for epoch 1 already exists"):
        checkpoint.save(tmp_path, _state(), key=None, epoch=1)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer, got -1"):
        checkpoint.save(tmp_path, _state(), key=None, epoch=-1)
    with pytest.raises(ValueError, match="keep must be a positive integer or None, got 0"):
        checkpoint.save(tmp_path, _state(), key=None, epoch=2, keep=0)


def test_missing_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint directory .*nowhere"):
        checkpoint.restore(tmp_path / "nowhere", _state())
    assert not (tmp_path / "nowhere").exists()  # restore creates nothing
    with pytest.raises(FileNotFoundError, match="no checkpoint in "):
        checkpoint.restore(tmp_path, _state())
    assert checkpoint.available(tmp_path / "nowhere") == [] and checkpoint.available(tmp_path) == []


@pytest.mark.parametrize(
    "like, match",
    [
        (lambda: _state(skip=False), r"different tree structure .* in the checkpoint only: "
                                     r"\['.skipped'\]"),
        (lambda: _state({**_params(), "extra": jnp.zeros(2)}),
         r"different tree structure .* in `like` only: \[\"\.params\['extra'\]\""),
        (lambda: _state({"w": jnp.zeros((3, 3)), "b": jnp.zeros((1, 3))}),
         r"does not match `like`'s shapes/dtypes: .params\['b'\]: saved \(1, 2\) float64, "
         r"`like` has \(1, 3\) float64"),
        (lambda: _state(jax.tree.map(lambda x: x.astype(jnp.float32), _params())),
         r"\.params\['w'\]: saved \(3, 2\) float64, `like` has \(3, 2\) float32"),
    ],
    ids=["missing-leaf", "extra-leaf", "shape", "dtype"],
)
def test_mismatched_template_is_a_clear_error(tmp_path, like, match):
    checkpoint.save(tmp_path, _state(), key=None, epoch=1)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.restore(tmp_path, like())


def _garble_metadata(step_dir):
    (step_dir / "meta" / "metadata").write_text('{"format": "fnlearn-checkpoint/1", "epo')


def _array_files(step_dir):
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files
    return files


def _delete_array_data(step_dir):
    for p in _array_files(step_dir):
        p.unlink()


def _flip_array_bytes(step_dir):
    for p in _array_files(step_dir):
        raw = bytearray(p.read_bytes())
        for i in range(len(raw) // 2, len(raw)):
            raw[i] ^= 0x5A
        p.write_bytes(bytes(raw))


def _garble_manifest(step_dir):
    (step_dir / "fnlearn-files.json").write_text("{")


def _without_manifest(damage):
    """As if the process died after orbax's rename, before the manifest was written."""

    def damage_it(step_dir):
        (step_dir / "fnlearn-files.json").unlink()
        damage(step_dir)

    return damage_it


def _wrong_checksum(step_dir):
    meta_file = step_dir / "meta" / "metadata"
    meta = json.loads(meta_file.read_text())
    meta["leaves"][0][3] ^= 1
    meta_file.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage, match, listed",  # listed: what available() shows; only reading the arrays
    [                         # finds damage that keeps every file's size
        (_garble_metadata, "is damaged: meta/metadata has changed since it was saved", [1]),
        (_delete_array_data, r"is damaged: state/(.*/)?d/\w+ is missing", [1]),
        (_flip_array_bytes, r"is damaged: state/(.*/)?d/\w+ has changed since it was saved",
         [1, 2]),
        (_garble_manifest, "is damaged: its manifest fnlearn-files.json cannot be read", [1]),
        (_without_manifest(_garble_metadata), "is damaged: its metadata cannot be read", [1]),
        (_without_manifest(_wrong_checksum),
         r"is damaged: the data of \.params\['b'\] fails its checksum", [1, 2]),
    ],
    ids=["garbled-metadata", "deleted-array-files", "flipped-array-bytes", "garbled-manifest",
         "no-manifest-garbled-metadata", "no-manifest-wrong-array-checksum"],
)
def test_damaged_checkpoint_is_a_clear_error(tmp_path, damage, match, listed):
    checkpoint.save(tmp_path, _trained_state(), key=None, epoch=1)
    checkpoint.save(tmp_path, _trained_state(), key=None, epoch=2)
    damage(tmp_path / "2")
    assert checkpoint.available(tmp_path) == listed
    with pytest.raises(CheckpointError, match=match) as info:  # the latest, damaged or not
        checkpoint.restore(tmp_path, _state())
    assert f"available epochs: {listed}; pass epoch=... to restore another" in str(info.value)
    assert _bits(checkpoint.restore(tmp_path, _state(), epoch=1).state) == _bits(_trained_state())


def test_a_checkpoint_without_its_manifest_still_restores(tmp_path):
    checkpoint.save(tmp_path, _trained_state(), key=None, epoch=1)
    (tmp_path / "1" / "fnlearn-files.json").unlink()
    assert checkpoint.available(tmp_path) == [1]
    assert _bits(checkpoint.restore(tmp_path, _state()).state) == _bits(_trained_state())


class _Crash(Exception):
    pass


async def _raise(*args, **kwargs):  # both patched methods are coroutines
    raise _Crash("interrupted")


@pytest.mark.parametrize(
    "owner, method",
    [(ocp.StandardCheckpointHandler, "async_save"),
     (ocp.path.atomicity.AtomicRenameTemporaryPath, "finalize")],
    ids=["while-writing-arrays", "before-the-final-rename"],
)
def test_interrupted_save_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, owner, method):
    good = _trained_state()
    checkpoint.save(tmp_path, good, key=jax.random.key(1), epoch=1, keep=1)
    with monkeypatch.context() as patch:
        patch.setattr(owner, method, _raise)
        with pytest.raises(_Crash):
            checkpoint.save(tmp_path, _state(), key=jax.random.key(2), epoch=2, keep=1)
    assert checkpoint.available(tmp_path) == [1]
    restored, key, epoch = checkpoint.restore(tmp_path, _state())
    assert epoch == 1 and _bits(restored) == _bits(good)
    np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(jax.random.key(1)))
    checkpoint.save(tmp_path, _state(), key=None, epoch=2, keep=1)  # the retry succeeds
    assert checkpoint.available(tmp_path) == [2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2"]  # leftovers cleaned up


def test_save_killed_by_sigkill_keeps_the_last_good_checkpoint(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        import jax.numpy as jnp
        import orbax.checkpoint as ocp
        from fnlearn import checkpoint

        checkpoint.save({str(tmp_path)!r}, {{"w": jnp.arange(6.0)}}, key=None, epoch=1, keep=1)

        async def die(self, *args, **kwargs):  # everything written, nothing renamed yet
            os.kill(os.getpid(), signal.SIGKILL)

        ocp.path.atomicity.AtomicRenameTemporaryPath.finalize = die
        checkpoint.save({str(tmp_path)!r}, {{"w": -jnp.arange(6.0)}}, key=None, epoch=2, keep=1)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=_xla.env(), capture_output=True,
                          timeout=120, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert any(p.name != "1" for p in tmp_path.iterdir())  # the killed save's leftovers
    assert checkpoint.available(tmp_path) == [1]
    like = {"w": jnp.zeros(6, jnp.float32)}  # the subprocess runs without x64
    restored = checkpoint.restore(tmp_path, like).state
    np.testing.assert_array_equal(restored["w"], np.arange(6.0))
    checkpoint.save(tmp_path, {"w": jnp.ones(6)}, key=None, epoch=2, keep=1)
    assert checkpoint.available(tmp_path) == [2]


CHILD = ROOT / "tests" / "_checkpoint_child.py"
RETIRED = ".fnlearn-deleting"


def _child(directory, *args):
    return subprocess.Popen([sys.executable, str(CHILD), str(directory), *args], env=_xla.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_every_listed_epoch_restores(directory):
    """Every epoch listed restores bit-identically (epoch e saved arange(6) * e, float32)."""
    listed = checkpoint.available(directory)
    for epoch in listed:
        state, key, got = checkpoint.restore(directory, {"w": jnp.zeros(6, jnp.float32)},
                                             epoch=epoch)
        assert got == epoch and key is None
        assert state["w"].tobytes() == (np.arange(6.0, dtype=np.float32) * epoch).tobytes()
    return listed


def _check_cleaned_up_by_the_next_save(directory, epoch):
    assert not list(directory.glob("*" + RETIRED))  # restore removed the deletions' leftovers
    checkpoint.save(directory, {"w": jnp.arange(6.0, dtype=jnp.float32) * epoch}, key=None,
                    epoch=epoch, keep=1)
    assert sorted(p.name for p in directory.iterdir()) == [str(epoch)]
    assert _check_every_listed_epoch_restores(directory) == [epoch]


# kill point in the save of epoch 3 (keep=1: retires 1 and 2) -> the epochs available() lists
# after the kill, and whether a renamed step is left over
_KILL_POINTS = {
    "before-rename-1": ([1, 2, 3], False),
    "after-rename-1": ([2, 3], True),
    "unlink-3": ([3], True),  # while a renamed step's files are being deleted
}
_MORE_KILL_POINTS = {
    "before-manifest-1": ([1, 2, 3], False),  # 3 committed by orbax, without its manifest
    "after-rename-2": ([3], True),
    "deleted-1": ([3], True),
    "deleted-2": ([3], False),
}


def _check_killed_run(directory, proc, listed, leftover):
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    assert bool(list(directory.glob("*" + RETIRED))) == leftover
    assert _check_every_listed_epoch_restores(directory) == listed
    assert checkpoint.restore(directory, {"w": jnp.zeros(6, jnp.float32)}).epoch == 3
    _check_cleaned_up_by_the_next_save(directory, 4)


@pytest.fixture(scope="module")
def _killed_runs(tmp_path_factory):
    """One child per kill point, all started at once (each is mostly JAX's import time)."""
    runs = {}
    for point in _KILL_POINTS:
        directory = tmp_path_factory.mktemp(point)
        runs[point] = (directory, _child(directory, point))
    yield runs
    for _, proc in runs.values():
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("point", list(_KILL_POINTS))
def test_killed_during_retention_every_listed_epoch_restores(_killed_runs, point):
    directory, proc = _killed_runs[point]
    _check_killed_run(directory, proc, *_KILL_POINTS[point])


def test_a_partly_deleted_step_is_not_listed(tmp_path):
    # what orbax's own retention left when killed: a step deleted file by file under its name
    checkpoint.save(tmp_path, _trained_state(), key=None, epoch=1)
    checkpoint.save(tmp_path, _trained_state(), key=None, epoch=2)
    (tmp_path / "1" / "_CHECKPOINT_METADATA").unlink()
    assert checkpoint.available(tmp_path) == [2]
    with pytest.raises(CheckpointError, match=r"1 is damaged: _CHECKPOINT_METADATA is missing "
                                              r"\(available epochs: \[2\]"):
        checkpoint.restore(tmp_path, _state(), epoch=1)
    assert checkpoint.restore(tmp_path, _state()).epoch == 2
    checkpoint.save(tmp_path, _trained_state(), key=None, epoch=3, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3"]


def test_retention_keeps_the_last_n_complete_checkpoints(tmp_path):
    for epoch in (1, 2, 3):
        checkpoint.save(tmp_path, _state(), key=None, epoch=epoch, keep=None)
    (tmp_path / "3" / "meta" / "metadata").write_text("{")  # damaged: not one of the kept
    checkpoint.save(tmp_path, _state(), key=None, epoch=4, keep=2)
    assert checkpoint.available(tmp_path) == [2, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2", "3", "4"]


def test_restore_works_where_leftovers_cannot_be_removed(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, _trained_state(), key=None, epoch=1)
    leftover = tmp_path / ("0" + RETIRED)
    leftover.mkdir()
    (leftover / "x").write_text("a deletion interrupted by a crash")

    def read_only(*args, **kwargs):  # as on a read-only file system (root ignores chmod)
        raise PermissionError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as patch:
        patch.setattr(os, "unlink", read_only)
        patch.setattr(os, "rmdir", read_only)
        assert _bits(checkpoint.restore(tmp_path, _state()).state) == _bits(_trained_state())
    assert leftover.exists()
    checkpoint.restore(tmp_path, _state())
    assert not leftover.exists()


@pytest.mark.exhaustive
def test_killed_at_every_retention_step_every_listed_epoch_restores(tmp_path):
    control = _child(tmp_path / "control", "none")
    out, err = control.communicate(timeout=120)
    assert control.returncode == 0, err[-2000:]
    unlinked = int(out.split()[-1])
    assert unlinked > 10  # both retired steps' files
    points = {**_MORE_KILL_POINTS,
              **{f"unlink-{n}": ([3], True) for n in range(1, unlinked + 1)}}
    for point, (listed, leftover) in points.items():
        _check_killed_run(tmp_path / point, _child(tmp_path / point, point), listed, leftover)


@pytest.mark.exhaustive
@pytest.mark.parametrize("seed", range(8))
def test_killed_at_random_moments_the_newest_checkpoint_restores(tmp_path, seed):
    rng = np.random.default_rng(seed)
    proc = _child(tmp_path, "loop", "1000")
    assert proc.stdout.readline() == "saved 1\n"  # JAX imported, saves under way
    time.sleep(rng.uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    saved = int(("saved 1\n" + (out or "")).split()[-1])
    listed = _check_every_listed_epoch_restores(tmp_path)
    assert listed and listed[-1] >= saved  # the newest complete save is never lost
    assert listed[-1] <= saved + 1  # at most the save in progress, once committed
    _check_cleaned_up_by_the_next_save(tmp_path, listed[-1] + 1)


def test_resume_after_epoch_k_is_bit_identical(tmp_path):
    opt = fl.optim.adam(lr=0.05)
    key = jax.random.key(42)
    kwargs = dict(epochs=4, batch_size=4, progress=False)

    def step():  # a fresh compiled step, as in a new process
        return make_train_step(_mse, opt, skip_nonfinite=True)

    full, full_history = fit(step(), _state(), _data(), key=key, **kwargs)

    _, first = fit(step(), _state(), _data(), key=key, checkpoint_dir=tmp_path, keep=2,
                   **{**kwargs, "epochs": 2})  # the run "crashes" after epoch 2
    state, saved_key, done = checkpoint.restore(tmp_path, like=_state())
    assert done == 2
    resumed, rest = fit(step(), state, _data(), key=saved_key, start_epoch=done,
                        checkpoint_dir=tmp_path, keep=2, **kwargs)
    assert _bits(resumed) == _bits(full)
    assert first.loss + rest.loss == full_history.loss
    assert [e["epoch"] for e in rest.epochs] == [3, 4]
    assert checkpoint.available(tmp_path) == [3, 4]
    assert _bits(checkpoint.restore(tmp_path, _state()).state) == _bits(full)
