"""A module fixture's value computed once per test run and shared by xdist's workers.

pytest-xdist runs a module-scoped fixture once in every worker that runs one of the module's
tests; for a fixture that runs a subprocess for a minute, that is a minute per worker. The
first worker to get here computes the value under a file lock, the others read it.
"""

from __future__ import annotations

import fcntl
import os
import pickle
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def once_per_run(tmp_path_factory: pytest.TempPathFactory, name: str,
                 compute: Callable[[], T]) -> T:
    """``compute()``, run by one worker of this test run; its (picklable) value for all."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: nothing to share
        return compute()
    shared = tmp_path_factory.getbasetemp().parent  # this run's, common to its workers
    path = shared / f"{name}.pickle"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            value: Any = pickle.loads(path.read_bytes())
            return value
        value = compute()
        partial = path.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(value))
        partial.replace(path)
        return value
