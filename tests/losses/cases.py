"""Loss case tables: the configurations checked against torch reference data.

Each table is a list of ``tests._reference.Case``; ``TABLES`` maps a table name to its list
and to the reference file ``tests/losses/reference/<name>.npz``. Module owners add cases to
their own table file (``cases_<module>.py``) and register it here.
"""

from __future__ import annotations

import importlib

TABLE_MODULES = ("regression", "classification", "ctc", "linear_cross_entropy")


def tables() -> dict[str, list]:
    """Every loss table, by name."""
    return {name: importlib.import_module(f"tests.losses.cases_{name}").CASES
            for name in TABLE_MODULES}


def default_run(table: str) -> set[str] | None:
    """The case ids of ``table`` that run by default (its module's ``DEFAULT_RUN``), or
    ``None`` when all do; the others are marked ``exhaustive``."""
    return getattr(importlib.import_module(f"tests.losses.cases_{table}"), "DEFAULT_RUN", None)
