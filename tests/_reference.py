"""Shared machinery for torch reference data: case tables -> compact committed .npz files.

A case table is a list of ``Case`` (losses) or ``OptCase`` (optimizers) in a ``cases*.py``
module next to the tests that use it. ``tests/generate_reference.py`` (needs torch) runs every
case through torch and writes ``tests/<area>/reference/<table>.npz``; the default test run
reads those files and needs no torch. Inputs are stored in the file too, so both sides see the
same numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TESTS = Path(__file__).parent


def seed_of(case_id: str) -> int:
    """A stable seed derived from a case's readable id."""
    return int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:4], "little")


@dataclass(frozen=True)
class Case:
    """One loss configuration checked against torch.

    ``make(rng)`` returns the array arguments by name: the positional ones listed in ``args``
    (in torch's order) and any array keyword arguments (``weight``, ``pos_weight``, ``var``...).
    Floating arrays are cast to each dtype in ``dtypes``; integer arrays are kept (torch gets
    int64). ``kwargs`` holds the non-array options, the same for torch and fnlearn.
    ``grad`` names the floating arguments whose gradients are compared (torch's backward of
    ``sum(loss * cotangent)`` with a seeded cotangent when the loss is not a scalar).
    """

    id: str
    fn: str
    make: Callable[[np.random.Generator], dict[str, Any]]
    args: tuple[str, ...] = ("input", "target")
    kwargs: dict[str, Any] = field(default_factory=dict)
    grad: tuple[str, ...] = ("input",)
    dtypes: tuple[str, ...] = ("float64", "float32")


@dataclass(frozen=True)
class OptCase:
    """One optimizer configuration checked against torch over a fixed gradient sequence.

    ``name`` is the fnlearn.optim factory, ``torch_name`` the torch.optim class; ``kwargs``
    are passed to both unless ``torch_kwargs`` is given. ``lr_schedule`` optionally names a
    schedule in the table's module (a function ``k -> factor`` applied to lr through torch's
    LambdaLR and through a callable lr in fnlearn).
    """

    id: str
    name: str
    torch_name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    torch_kwargs: dict[str, Any] | None = None
    lr_schedule: str | None = None
    steps: int = 50
    dtypes: tuple[str, ...] = ("float64", "float32")


def key(case_id: str, dtype: str, what: str) -> str:
    """The npz key of one stored array."""
    return f"{case_id}|{dtype}|{what}"


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
