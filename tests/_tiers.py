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


def one_in(k: int, offset: int, params: Iterable[Any]) -> list[Any]:
    """``params`` with all but every ``k``-th (from ``offset``) marked exhaustive: k checks
    over one list, each given a different offset, keep every entry in the default run once
    (each optimizer or loss under one of the k checks) while running 1/k of the product.
    Params already marked exhaustive are not counted."""
    out, i = [], 0
    for p in map(_as_param, params):
        if any(m.name == "exhaustive" for m in p.marks):  # already in the long tier
            out.append(p)
            continue
        if (i - offset) % k:
            p = pytest.param(*p.values, id=p.id, marks=(*p.marks, pytest.mark.exhaustive))
        i += 1
        out.append(p)
    return out


def each_with_one(names: Iterable[Any], values: Iterable[Any]) -> list[Any]:
    """Every ``(name, value)`` pair as params ``name-value``; by default each name meets one of
    ``values``, in turn (name i with value i mod len(values)), the rest are exhaustive. A name
    or a value may be a ``pytest.param`` carrying several values (its id names it in the pair's
    id, its marks stay on every pair it is in)."""
    names, values = [_as_param(n) for n in names], [_as_param(v) for v in values]
    return [pytest.param(*n.values, *v.values, id=f"{n.id}-{v.id}",
                         marks=(*n.marks, *v.marks,
                                *((pytest.mark.exhaustive,) if (i - j) % len(values) else ())))
            for i, n in enumerate(names) for j, v in enumerate(values)]


def _as_param(p: Any) -> Any:
    """``p`` as a ``pytest.param`` set: a bare value is one value with its ``str`` as id."""
    return p if isinstance(p, type(pytest.param(None))) else pytest.param(p, id=str(p))
