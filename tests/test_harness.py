"""The test harness's own helpers: XLA's settings for the run and the subprocesses'
environment (tests/_xla.py), a fixture's value shared by xdist's workers (tests/_once.py),
subprocesses with a deadline (tests/_processes.py)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests import _once, _processes, _xla


def test_subprocess_env_sets_the_device_count_and_keeps_other_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_a=1 --xla_force_host_platform_device_count=2")
    env = _xla.env(devices=4, EXTRA="x")
    assert env["XLA_FLAGS"] == "--xla_a=1 --xla_force_host_platform_device_count=4"
    assert env["JAX_PLATFORMS"] == "cpu" and env["EXTRA"] == "x"
    assert env["PYTHONPATH"] == str(Path(__file__).resolve().parents[1])
    assert _xla.env()["XLA_FLAGS"] == "--xla_a=1 --xla_force_host_platform_device_count=2"


def test_compile_fast_flags_are_added_unless_asked_for_defaults_or_set(monkeypatch):
    monkeypatch.setattr(_xla, "_known", lambda flags: True)
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=2")
    monkeypatch.delenv("FNLEARN_TEST_XLA_DEFAULTS", raising=False)
    _xla.configure()  # the user's level wins; the other flag is added before theirs
    assert _xla.os.environ["XLA_FLAGS"] == (
        "--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=2")
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setenv("FNLEARN_TEST_XLA_DEFAULTS", "1")
    _xla.configure()
    assert _xla.os.environ["XLA_FLAGS"] == ""
    monkeypatch.delenv("FNLEARN_TEST_XLA_DEFAULTS")
    monkeypatch.setattr(_xla, "_known", lambda flags: False)  # a jaxlib without them
    _xla.configure()
    assert _xla.os.environ["XLA_FLAGS"] == ""


def test_the_flag_probe_tells_known_flags_from_unknown_ones():
    assert _xla._known(" ".join(_xla.COMPILE_FAST))
    assert not _xla._known("--xla_no_such_flag_in_any_jaxlib=1")


class _Factory:
    def __init__(self, base: Path):
        self.base = base

    def getbasetemp(self) -> Path:
        return self.base


def test_once_per_run_computes_once_for_all_workers(monkeypatch, tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"value": len(calls)}

    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    first = _once.once_per_run(_Factory(tmp_path / "popen-gw0"), "shared", compute)
    second = _once.once_per_run(_Factory(tmp_path / "popen-gw1"), "shared", compute)
    assert first == second == {"value": 1} and len(calls) == 1
    monkeypatch.delenv("PYTEST_XDIST_WORKER")  # one process: computed where asked
    assert _once.once_per_run(_Factory(tmp_path / "x"), "shared", compute) == {"value": 2}


_STALLS = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[1], "w").write(str(child.pid))
print("started", flush=True)
def waiting_for_a_peer():
    time.sleep(600)
waiting_for_a_peer()
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie whose parent has not reaped it yet does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_stalled_subprocess_fails_with_its_stacks_and_leaves_nothing_running(tmp_path):
    pid_file = tmp_path / "child.pid"
    with pytest.raises(TimeoutError) as failure:
        _processes.run([sys.executable, "-c", _STALLS, str(pid_file)], env=dict(os.environ),
                       timeout=3)
    report = str(failure.value)
    assert "still running after 3 s" in report and "started" in report
    assert "waiting_for_a_peer" in report  # the launcher's Python stack at the deadline
    assert "Extension modules" not in report
    child = int(pid_file.read_text())
    for _ in range(50):  # its child went with it
        if not _running(child):
            break
        time.sleep(0.1)
    assert not _running(child)


def test_a_finished_subprocess_gives_its_output():
    result = _processes.run([sys.executable, "-c", "print('out'); raise SystemExit(3)"],
                            env=dict(os.environ), timeout=60)
    assert (result.returncode, result.stdout) == (3, "out\n")
