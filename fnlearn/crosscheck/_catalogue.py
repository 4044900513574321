"""The built-in catalogue that ``python -m fnlearn.crosscheck`` runs.

Every fnlearn optimizer with its option combinations (against :func:`to_optax`'s transform,
a few optax-defaults traps, and torch.optim), lr schedules and gradient clipping (through
SGD), and every loss configuration with an optax counterpart or a torch one. Each row has an
expectation: ``match`` (should agree to the dtype's tolerance) or ``differ`` (a documented
semantic difference, with its reason). The run batches the JAX sides: one jitted scan per
kind (optimizers, schedules, clipping) and one jitted call for all losses, so the whole
catalogue compiles four times (a failing side is isolated by bisection).
"""


from __future__ import annotations

import fnmatch
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _compare, _compare_losses, _torch
from ._loss_cases import LossCase, loss_cases
from ._optim_cases import (
    OPTIMIZER_CASES,
    OptJob,
    clip_jobs,
    optimizer_jobs,
    schedule_cases,
    schedule_jobs,
)

#: Verdicts. MISMATCH, UNEXPECTED_MATCH and ERROR make the command fail.
MATCH = "match"
DIFFERS = "differs-as-documented"
BELOW = "below-tolerance"  # a documented difference too small to see in float32
MISMATCH = "MISMATCH"  # should agree and does not
UNEXPECTED_MATCH = "UNEXPECTED-MATCH"  # a documented difference that vanished in float64
ERROR = "ERROR"
FAILING = (MISMATCH, UNEXPECTED_MATCH, ERROR)


@dataclass(frozen=True)
class Row:
    """One line of the cross-check table."""

    kind: str  # "optimizer", "schedule", "clip" or "loss"
    algorithm: str
    options: str
    reference: str  # the optax expression or torch call compared against
    expected: str  # "match" or "differ"
    verdict: str
    max_abs: float = math.nan
    max_rel: float = math.nan
    first_divergence: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "algorithm": self.algorithm,
            "options": self.options,
            "reference": self.reference,
            "expected": self.expected,
            "verdict": self.verdict,
            "max_abs": _compare._num(self.max_abs),
            "max_rel": _compare._num(self.max_rel),
            "first_divergence": self.first_divergence,
            "reason": self.reason,
        }


def verdict(expected: str, agree: bool, dtype: str) -> str:
    """The row verdict from the expectation and whether the two sides agreed.

    Every documented difference in the catalogue is far above float64's tolerance, so in
    float64 a row expected to differ that agrees means the fnlearn side now computes what
    optax computes, not what torch computes: that fails (UNEXPECTED-MATCH). In float32 some
    differences are below the tolerance (BELOW), which is fine.
    """
    if expected == "match":
        return MATCH if agree else MISMATCH
    if agree:
        return UNEXPECTED_MATCH if dtype == "float64" else BELOW
    return DIFFERS


# --------------------------------------------------------------------------------------------
# running


@dataclass(frozen=True)
class Settings:
    steps: int = 100
    dtype: str = "float64"
    only: tuple[str, ...] = ()
    with_torch: bool = True


def _selected(name: str, only: Sequence[str]) -> bool:
    return not only or any(fnmatch.fnmatchcase(name, pat) for pat in only)


def catalogue_names() -> list[str]:
    """The algorithm names ``--only`` can select."""
    names = [a for a, _, _ in OPTIMIZER_CASES] + [c.name for c in schedule_cases()]
    names += [j.algorithm for j in clip_jobs(False)] + [c.fn for c in loss_cases()]
    return sorted(set(names))


def _params(dtype: str) -> dict[str, Any]:
    r = np.random.default_rng(20240613)
    return {"w": jnp.asarray(0.05 * r.standard_normal((4, 3)), dtype=dtype),
            "b": jnp.asarray(0.01 * r.standard_normal(3), dtype=dtype)}


def _error_rows(job: OptJob, message: str) -> list[Row]:
    return [Row(job.kind, job.algorithm, job.options, ref.text, ref.expected, ERROR,
                reason=message) for ref in job.refs] or [
        Row(job.kind, job.algorithm, job.options, "-", "match", ERROR, reason=message)]


def _bisect(run_all: Callable[[list], list], items: list) -> list:
    """``run_all(items)`` (one compile); when it raises, run each half again, down to the
    failing items, whose results are the exceptions they raised (O(log n) extra compiles
    per failure instead of one per item)."""
    if not items:
        return []
    try:
        return list(run_all(items))
    except Exception as e:  # noqa: BLE001 - isolated below, reported as ERROR rows
        if len(items) == 1:
            return [e]
        half = len(items) // 2
        return _bisect(run_all, items[:half]) + _bisect(run_all, items[half:])


def _run_opt_group(jobs: list[OptJob], settings: Settings, params: Any, grads: Any,
                   leaves: tuple[str, ...], rtol: float) -> list[Row]:
    """Run one group of jobs: all their JAX sides in one compile (falling back to one compile
    per side when the batch fails, to isolate the failure), torch sides eagerly."""
    dtype = settings.dtype
    sides: list[tuple[int, int]] = []  # (job index, ref index or -1 for fnlearn)
    transforms: list[Any] = []
    broken: dict[int, str] = {}
    for j, job in enumerate(jobs):
        try:
            built = [job.build()]
            built += [None if ref.torch else ref.build() for ref in job.refs]
        except Exception as e:  # noqa: BLE001 - reported as an ERROR row
            broken[j] = f"{type(e).__name__}: {e}"
            continue
        for r, t in enumerate(built):
            if t is not None:
                sides.append((j, r - 1))
                transforms.append(t)
    trajs = _bisect(lambda ts: _compare.jax_trajectories(ts, params, grads), transforms)
    for (j, _), t in zip(sides, trajs, strict=True):
        if isinstance(t, Exception):
            broken.setdefault(j, _err(t))
    by_side = {side: None if isinstance(t, Exception) else t
               for side, t in zip(sides, trajs, strict=True)}
    p0 = [np.asarray(p, dtype=np.float64) for p in jax.tree.leaves(params)]
    p0_np = [np.asarray(p) for p in jax.tree.leaves(params)]
    g_np = [np.asarray(g) for g in jax.tree.leaves(grads)]
    rows: list[Row] = []
    for j, job in enumerate(jobs):
        if j in broken or by_side.get((j, -1)) is None:
            rows += _error_rows(job, broken.get(j, "fnlearn side failed"))
            continue
        mine = by_side[(j, -1)]
        for r, ref in enumerate(job.refs):
            try:
                if ref.torch:
                    theirs = _torch.run_optimizer(ref.build(), p0_np, g_np, dtype)
                else:
                    theirs = by_side[(j, r)]
                    if theirs is None:
                        raise RuntimeError(broken.get(j, "reference side failed"))
                rep = _compare.report_from(mine, theirs, p0, a="fnlearn", b=ref.text,
                                           leaves=leaves, dtype=dtype, rtol=rtol, atol=0.0)
            except Exception as e:  # noqa: BLE001
                rows.append(Row(job.kind, job.algorithm, job.options, ref.text, ref.expected,
                                ERROR, reason=f"{type(e).__name__}: {e}"))
                continue
            rows.append(Row(job.kind, job.algorithm, job.options, ref.text, ref.expected,
                            verdict(ref.expected, rep.agree, dtype), rep.max_abs, rep.max_rel,
                            rep.first_divergence, ref.reason))
    return rows


def _guard(fn: Callable[[], Any]) -> Any:
    """``fn()``, or the exception it raised (reported as an ERROR row)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        return e


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _loss_refs(case: LossCase, with_torch: bool) -> list[tuple[str, Callable[[], Any], str,
                                                                 str]]:
    """A loss case's references: (text, () -> function, expected, reason)."""
    refs: list[tuple[str, Callable[[], Any], str, str]] = []
    if case.optax is not None:
        refs.append((case.optax_text, lambda: case.optax, case.expected, case.reason))
    if with_torch:
        def make() -> Any:
            return _torch.TorchFunction(case.call(_torch.import_torch().nn.functional))

        refs.append((f"torch.nn.functional.{case.fn}", make, "match", ""))
    return refs


def planned_rows(settings: Settings) -> list[Row]:
    """The rows :func:`run` produces, in order, without running anything (verdict '')."""
    steps, dtype = settings.steps, _compare.check_dtype(settings.dtype)
    jobs = optimizer_jobs(settings.with_torch, dtype) + schedule_jobs(
        steps, dtype, settings.with_torch) + clip_jobs(settings.with_torch)
    groups: dict[str, list[OptJob]] = {}
    for job in jobs:
        if _selected(job.algorithm, settings.only):
            groups.setdefault(job.kind, []).append(job)
    rows = [Row(job.kind, job.algorithm, job.options, ref.text, ref.expected, "",
                reason=ref.reason) for group in groups.values() for job in group
            for ref in job.refs]
    for case in loss_cases():
        if _selected(case.fn, settings.only):
            rows += [Row("loss", case.fn, case.describe(), text, expected, "", reason=reason)
                     for text, _, expected, reason in _loss_refs(case, settings.with_torch)]
    return rows


def _run_losses(cases: Sequence[LossCase], dtype: str, with_torch: bool) -> list[Row]:
    """Every loss case: the JAX sides (fnlearn and optax) of all cases in ONE compile (one
    compile per side when the batch fails, to isolate the failure), torch eagerly."""
    import fnlearn.losses as fl

    prepared = []
    for case in cases:
        refs = [(text, make(), expected, reason)
                for text, make, expected, reason in _loss_refs(case, with_torch)]
        if not refs:
            continue
        seed = zlib.crc32(f"{case.fn}|{case.describe()}".encode())
        inputs = case.make(np.random.default_rng(seed))
        shape = _guard(lambda case=case, inputs=inputs: _compare_losses.output_shape(
            case.call(fl), inputs, dtype))
        cot = shape if isinstance(shape, Exception) else _compare_losses._cotangent(shape, seed)
        prepared.append((case, refs, inputs, cot))

    items, owners = [], []
    for i, (case, refs, inputs, cot) in enumerate(prepared):
        if isinstance(cot, Exception):
            continue
        jin = _compare_losses._jax_inputs(inputs, dtype)
        items.append((case.call(fl), jin, case.wrt, cot))
        owners.append((i, -1))
        for r, (_, fn, _, _) in enumerate(refs):
            if not isinstance(fn, _torch.TorchFunction):
                items.append((fn, jin, case.wrt, cot))
                owners.append((i, r))
    results = _bisect(_compare_losses.jax_values_and_grads, items)
    by_owner = dict(zip(owners, results, strict=True))

    rv, rg = _compare.TOLERANCES[dtype]
    rows = []
    for i, (case, refs, inputs, cot) in enumerate(prepared):
        mine = cot if isinstance(cot, Exception) else by_owner[(i, -1)]
        for r, (text, fn, expected, reason) in enumerate(refs):
            row = dict(kind="loss", algorithm=case.fn, options=case.describe(), reference=text,
                       expected=expected)
            if isinstance(mine, Exception):
                rows.append(Row(**row, verdict=ERROR, reason=_err(mine)))
                continue
            if isinstance(fn, _torch.TorchFunction):
                theirs = _guard(lambda fn=fn, inputs=inputs, case=case, cot=cot:
                                _torch.value_and_grads(fn, inputs, case.wrt, dtype, cot))
            else:
                theirs = by_owner[(i, r)]
            if isinstance(theirs, Exception):
                rows.append(Row(**row, verdict=ERROR, reason=_err(theirs)))
                continue
            rep = _compare_losses.loss_report_from(*mine, *theirs, a="fnlearn", b=text,
                                                   wrt=case.wrt, dtype=dtype, rtol=rv,
                                                   grad_rtol=rg, atol=0.0)
            rows.append(Row(**row, verdict=verdict(expected, rep.agree, dtype), max_abs=rep.max_abs,
                            max_rel=rep.max_rel, reason=reason))
    return rows


def run(settings: Settings) -> list[Row]:
    """Run the catalogue (the part selected by ``settings.only``) and return its rows."""
    dtype = _compare.check_dtype(settings.dtype)
    rtol = _compare.OPT_RTOL[dtype]
    rows: list[Row] = []
    with _compare.precision(dtype):
        params = _params(dtype)
        grads, steps = _compare.resolve_grads(params, None, settings.steps, 0,
                                              _compare.GRAD_SCALE)
        leaves = _compare._leaf_names(params)
        jobs = optimizer_jobs(settings.with_torch, dtype)
        jobs += schedule_jobs(steps, dtype, settings.with_torch)
        jobs += clip_jobs(settings.with_torch)
        groups: dict[str, list[OptJob]] = {}  # one compile per kind
        for job in jobs:
            if _selected(job.algorithm, settings.only):
                groups.setdefault(job.kind, []).append(job)
        for group in groups.values():
            rows += _run_opt_group(group, settings, params, grads, leaves, rtol)
        cases = [c for c in loss_cases() if _selected(c.fn, settings.only)]
        rows += _run_losses(cases, dtype, settings.with_torch)
    return rows
