"""A test's subprocesses with a deadline: one that stalls fails its test with every process's
Python stacks, and leaves nothing running behind it.

Each command starts in a session of its own, so that it and whatever it starts (a launcher's
children) are one process group. Past the deadline every group is sent SIGABRT, on which
Python's faulthandler (``PYTHONFAULTHANDLER``) prints each thread's stack, then SIGKILL.
Output goes to files rather than pipes: two processes that wait for each other in a
collective cannot block on a pipe nobody is reading.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
#: the most seconds between SIGABRT and SIGKILL (faulthandler writes its stacks at once)
_DUMP_S = 10.0


@dataclass
class Process:
    popen: subprocess.Popen
    stdout: IO[str]
    stderr: IO[str]


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def start(args: Sequence[str], env: dict[str, str], cwd: Path = ROOT) -> Process:
    """Start ``args`` in a new session with unbuffered output and faulthandler on."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    popen = subprocess.Popen(list(args), cwd=cwd, stdout=out, stderr=err, text=True,
                             env={**env, "PYTHONFAULTHANDLER": "1", "PYTHONUNBUFFERED": "1"},
                             start_new_session=True)
    return Process(popen, out, err)


def _read(file: IO[str]) -> str:
    file.seek(0)
    text = file.read()
    file.close()
    return text


def _stacks(text: str) -> str:
    """``text`` without faulthandler's list of loaded extension modules (one long line per
    process, which would crowd the stacks out of the report)."""
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith("Extension modules:"))


def _signal_group(process: Process, sig: signal.Signals) -> None:
    try:
        os.killpg(process.popen.pid, sig)
    except ProcessLookupError:  # the group has already gone
        pass


def finish(processes: Sequence[Process], timeout: float) -> list[Result]:
    """Wait for every process, ``timeout`` seconds in all; past it, abort them all (stacks
    first) and raise ``TimeoutError`` with each one's output."""
    deadline = time.monotonic() + timeout
    try:
        for p in processes:
            p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in processes:
            _signal_group(p, signal.SIGABRT)
        time.sleep(1.0)  # a launcher's children write their stacks too
        dumped = time.monotonic() + _DUMP_S
        for p in processes:
            try:
                p.popen.wait(timeout=max(0.0, dumped - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in processes:
            _signal_group(p, signal.SIGKILL)
            p.popen.wait()
        report = "\n".join(
            f"--- process {i}: {p.popen.args}\nstdout:\n{_read(p.stdout)[-2000:]}\n"
            f"stderr (the Python stacks at the deadline):\n{_stacks(_read(p.stderr))[-8000:]}"
            for i, p in enumerate(processes))
        raise TimeoutError(f"still running after {timeout:.0f} s\n{report}") from None
    # a launcher's children share its group: none may outlive it
    for p in processes:
        _signal_group(p, signal.SIGKILL)
    return [Result(p.popen.returncode, _read(p.stdout), _read(p.stderr)) for p in processes]


def run(args: Sequence[str], env: dict[str, str], timeout: float, cwd: Path = ROOT) -> Result:
    """One command (and whatever it starts) to its end, within ``timeout`` seconds."""
    return finish([start(args, env, cwd)], timeout)[0]
