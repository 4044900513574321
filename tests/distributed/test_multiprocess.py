"""2 processes x 2 simulated CPU devices on localhost (jax.distributed, gloo collectives).

Each test launches tests/distributed/_process.py twice (one per process) and compares with
this process's one-device run of the same script: ``fit`` with a ZeRO-1 plan, checkpoints
and validation. Launching processes costs JAX's start-up and the distributed handshake
twice, so these are in the exhaustive tier.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from fnlearn import checkpoint, train
from tests import _processes, _xla
from tests.distributed import _process

pytestmark = pytest.mark.exhaustive


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(directory: Path, die_at: int | None = None) -> list[_processes.Process]:
    env = _xla.env(devices=2)
    port = _free_port()
    extra = [] if die_at is None else [str(die_at)]
    return [_processes.start([sys.executable, "-m", "tests.distributed._process", str(port),
                              str(i), str(directory), *extra], env)
            for i in range(2)]


def _finish(procs: list[_processes.Process], timeout: float = 300) -> list[tuple[int, str]]:
    return [(r.returncode, r.stderr) for r in _processes.finish(procs, timeout)]


def _one_device_run():
    params, data, val, loss_fn, opt = _process.model()
    state = train.TrainState.create(params, opt)
    step = train.make_train_step(loss_fn, opt)
    return train.fit(step, state, data, epochs=_process.EPOCHS, batch_size=_process.BATCH,
                     key=jax.random.key(7), eval_step=train.make_eval_step(loss_fn),
                     val_data=val, progress=False)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("two")
    for rc, err in _finish(_launch(directory)):
        assert rc == 0, err[-3000:]
    return directory


def _result(directory: Path) -> list[np.ndarray]:
    with np.load(directory / "result.npz") as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def test_two_processes_equal_one_device(two_process_run):
    state, history = _one_device_run()
    got = _result(two_process_run)
    for want, have in zip(jax.tree.leaves(state), got, strict=True):
        np.testing.assert_allclose(have, np.asarray(want), rtol=1e-12, atol=1e-14)
    saved = json.loads((two_process_run / "history.json").read_text())
    np.testing.assert_allclose(saved["loss"], history.loss, rtol=1e-12)
    # evaluate's mean over both processes' rows is the whole validation set's loss
    np.testing.assert_allclose([e["val_loss"] for e in saved["epochs"]],
                               [e["val_loss"] for e in history.epochs], rtol=1e-12)


def test_two_process_checkpoint_restores_on_one_device(two_process_run):
    params, *_, opt = _process.model()
    like = train.TrainState.create(params, opt)
    ckpt = two_process_run / "ckpt"
    assert checkpoint.available(ckpt) == [2, 3]
    state, _, epoch = checkpoint.restore(ckpt, like)
    assert epoch == 3
    for want, have in zip(_result(two_process_run), jax.tree.leaves(state), strict=True):
        assert want.tobytes() == np.asarray(have).tobytes()


def test_dead_process_fails_the_other_then_resume_is_bit_identical(two_process_run, tmp_path):
    procs = _launch(tmp_path, die_at=7)  # epoch 2's third step; epoch 1 is checkpointed
    procs[1].popen.wait(timeout=300)
    died = time.monotonic()
    (rc0, err0), (rc1, _) = _finish(procs, timeout=120)
    waited = time.monotonic() - died
    assert rc1 == 3
    assert rc0 != 0, "the surviving process must fail, not hang or succeed"
    assert waited < 60, f"the surviving process took {waited:.0f} s to fail"
    assert "another task died" in err0 and "stopped sending heartbeats" in err0, err0[-3000:]
    assert checkpoint.available(tmp_path / "ckpt") == [1]
    for rc, err in _finish(_launch(tmp_path)):  # restart: resumes from epoch 1
        assert rc == 0, err[-3000:]
    assert json.loads((tmp_path / "history.json").read_text())["start"] == 1
    for want, have in zip(_result(two_process_run), _result(tmp_path), strict=True):
        assert want.tobytes() == have.tobytes()
