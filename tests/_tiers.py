"""The two test tiers: the default run samples each grid, the ``exhaustive`` tier runs all of it.

A grid over configurations (every reference case x dtype, every optimizer case x battery
check) keeps, in the default run, the first configuration of each group (e.g. each optimizer
factory, each loss function), so every module, optimizer, loss and reference table is still
exercised; the others carry ``pytest.mark.exhaustive`` and run in CI's exhaustive tier
(``pytest -m exhaustive``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

import pytest


def first_of_each(params: Iterable[Any], group: Callable[..., Hashable]) -> list[Any]:
    """``params`` (``pytest.param`` sets) with all but the first of each ``group(*values)``
    marked exhaustive (params already marked exhaustive count for no group)."""
    seen: set[Hashable] = set()
    out = []
    for p in params:
        if any(m.name == "exhaustive" for m in p.marks):  # already in the long tier
            out.append(p)
            continue
        key = group(*p.values)
        if key in seen:
            p = pytest.param(*p.values, id=p.id, marks=(*p.marks, pytest.mark.exhaustive))
        seen.add(key)
        out.append(p)
    return out
