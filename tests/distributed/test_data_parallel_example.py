"""examples/data_parallel.py at a tiny size: 4 simulated devices in one process, and (in the
exhaustive tier) 2 processes started by its --processes launcher."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests import _processes, _xla

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "data_parallel.py"
LAYOUTS = ("one device", "data_parallel", "zero1", "fsdp")


def _run(args: list[str], devices: int | None) -> str:
    # the deadline is many times the run's own time: room for a loaded CI machine
    result = _processes.run([sys.executable, str(EXAMPLE), *args],
                            env=_xla.env(devices=devices or None), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _check_table(out: str, processes: int) -> None:
    assert f"digits on 4 devices in {processes} process(es)" in out
    rows = {line[:14].strip(): line.split() for line in out.splitlines()
            if line[:14].strip() in LAYOUTS}
    assert list(rows) == list(LAYOUTS), out  # printed once: by process 0 only
    for row in rows.values():
        train_loss, accuracy, diff = float(row[-4]), float(row[-3]), float(row[-1])
        assert train_loss < 2.3 and accuracy > 0.5  # one epoch: well above chance
        assert diff < 1e-5  # float32 round-off from the one-device run


@pytest.mark.exhaustive  # test_sharded.py's subprocess covers the modes by default
def test_four_simulated_devices():
    _check_table(_run(["0.1"], devices=4), processes=1)


@pytest.mark.exhaustive
def test_two_processes():
    _check_table(_run(["0.1", "--processes", "2"], devices=None), processes=2)
