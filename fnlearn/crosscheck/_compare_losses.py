"""Run two losses side by side on identical inputs and report the deviations of their values
and gradients (with respect to the chosen inputs, through one vector-Jacobian product)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _torch
from ._compare import (
    TOLERANCES,
    _deviation,
    _finite_max,
    _fmt,
    _num,
    _rel,
    check_dtype,
    format_table,
    precision,
)


@dataclass(frozen=True)
class LossReport:
    """Result of :func:`compare_losses`: deviations of the values and of the gradients.

    One row per compared quantity (``'value'``, then ``'grad[i]'`` for each input ``i`` in
    ``wrt``): ``max |a - b|`` and that divided by ``max(|a|_inf, |b|_inf)`` (finite entries);
    a quantity agrees when ``abs <= atol + rtol * scale`` (``rtol`` of values, ``grad_rtol``
    of gradients). ``nan`` at the same place on both sides agrees (torch's 0/0 means).
    """

    a: str
    b: str
    quantities: tuple[str, ...]
    abs_dev: tuple[float, ...]
    rel_dev: tuple[float, ...]
    ok: tuple[bool, ...]
    dtype: str
    rtol: float
    grad_rtol: float
    atol: float
    note: str = ""

    @property
    def max_abs(self) -> float:
        return max(self.abs_dev, default=0.0)

    @property
    def max_rel(self) -> float:
        return max(self.rel_dev, default=0.0)

    @property
    def agree(self) -> bool:
        return all(self.ok)

    @property
    def verdict(self) -> str:
        """``'match'`` or ``'differ'``."""
        return "match" if self.agree else "differ"

    def __str__(self) -> str:
        head = [
            f"a: {self.a}",
            f"b: {self.b}",
            f"{self.dtype}, tolerance |a - b| <= {self.atol:g} + rtol * max|a|, rtol "
            f"{self.rtol:g} (value), {self.grad_rtol:g} (gradients)",
            f"verdict: {self.verdict} (max rel deviation {_fmt(self.max_rel)})",
        ]
        if self.note:
            head.append(f"note: {self.note}")
        rows = [[q, _fmt(a), _fmt(r), "ok" if o else "DIFFER"]
                for q, a, r, o in zip(self.quantities, self.abs_dev, self.rel_dev, self.ok,
                                      strict=True)]
        return "\n".join(head) + "\n\n" + format_table(["quantity", "max abs", "max rel", ""], rows)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (non-finite numbers as the strings 'inf' / 'nan')."""
        return {
            "kind": "loss",
            "a": self.a,
            "b": self.b,
            "dtype": self.dtype,
            "rtol": self.rtol,
            "grad_rtol": self.grad_rtol,
            "atol": self.atol,
            "verdict": self.verdict,
            "max_abs": _num(self.max_abs),
            "max_rel": _num(self.max_rel),
            "note": self.note,
            "quantities": [
                {"name": q, "max_abs": _num(a), "max_rel": _num(r), "ok": o}
                for q, a, r, o in zip(self.quantities, self.abs_dev, self.rel_dev, self.ok,
                                      strict=True)
            ],
        }


def _jax_inputs(inputs: Sequence[Any], dtype: str) -> list[Any]:
    out = []
    for x in inputs:
        if x is None or isinstance(x, (bool, int, float)):
            out.append(x)
            continue
        a = jnp.asarray(x)
        out.append(a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a)
    return out


def _check_wrt(inputs: Sequence[Any], wrt: Sequence[int]) -> None:
    for i in wrt:
        x = inputs[i]
        if not (hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)):
            raise TypeError(f"wrt={tuple(wrt)} must index floating array inputs; input {i} "
                            f"is {x!r}")


def _vg(fn: Callable[..., Any], inputs: Sequence[Any], wrt: Sequence[int],
        cotangent: Any) -> tuple[Any, tuple[Any, ...]]:
    def partial(*diff: Any) -> Any:
        args = list(inputs)
        for i, x in zip(wrt, diff, strict=True):
            args[i] = x
        return jnp.asarray(fn(*args))

    out, vjp = jax.vjp(partial, *[inputs[i] for i in wrt])
    ct = jnp.ones_like(out) if cotangent is None else jnp.asarray(cotangent, dtype=out.dtype)
    return out, vjp(ct)


def jax_values_and_grads(
    items: Sequence[tuple[Callable[..., Any], Sequence[Any], Sequence[int], Any]],
) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Values and gradients of several JAX functions, in ONE jitted call (a single compile).

    Each item is ``(fn, inputs, wrt, cotangent)``; the result holds, per item, the value of
    ``fn(*inputs)`` and the gradients of ``sum(value * cotangent)`` (of the value itself
    when ``cotangent`` is None) with respect to ``inputs[i]``, ``i in wrt``. Array inputs are
    traced; anything else (Python scalars, None) is passed as a constant.
    """
    for _, inputs, wrt, _ in items:
        _check_wrt(inputs, wrt)
    arrays = [[x if isinstance(x, jax.Array) else None for x in inputs]
              for _, inputs, _, _ in items]
    cots = [None if c is None else np.asarray(c) for *_, c in items]

    def run(arrays: list, cots: list) -> list:
        out = []
        for (fn, inputs, wrt, _), arrs, cot in zip(items, arrays, cots, strict=True):
            full = [x if a is None else a for a, x in zip(arrs, inputs, strict=True)]
            out.append(_vg(fn, full, wrt, cot))
        return out

    results = jax.jit(run)(arrays, cots)
    return [(np.asarray(v, dtype=np.float64), [np.asarray(g, dtype=np.float64) for g in gs])
            for v, gs in results]


def jax_value_and_grads(
    fn: Callable[..., Any], inputs: Sequence[Any], wrt: Sequence[int], cotangent: Any
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Value of a JAX function and the gradients of ``sum(out * cotangent)`` w.r.t. inputs."""
    return jax_values_and_grads([(fn, inputs, wrt, cotangent)])[0]


def output_shape(fn: Any, inputs: Sequence[Any], dtype: str) -> tuple[int, ...]:
    """The shape of ``fn(*inputs)``, without compiling a JAX function."""
    if _torch.is_torch_function(fn):
        return tuple(np.shape(_torch.value_and_grads(fn, inputs, (), dtype, None)[0]))
    args = _jax_inputs(inputs, dtype)
    arrays = [x if isinstance(x, jax.Array) else None for x in args]

    def call(arrs: list) -> Any:
        return jnp.asarray(fn(*[x if a is None else a for a, x in zip(arrs, args, strict=True)]))

    return tuple(jax.eval_shape(call, arrays).shape)


def loss_report_from(
    va: np.ndarray,
    ga: Sequence[np.ndarray],
    vb: np.ndarray,
    gb: Sequence[np.ndarray],
    *,
    a: str,
    b: str,
    wrt: Sequence[int],
    dtype: str,
    rtol: float,
    grad_rtol: float,
    atol: float,
) -> LossReport:
    """Build a :class:`LossReport` from both sides' values and gradients."""
    names, abs_dev, rel_dev, ok = [], [], [], []
    note = ""
    pairs = [("value", va, vb, rtol)] + [
        (f"grad[{i}]", x, y, grad_rtol) for i, x, y in zip(wrt, ga, gb, strict=True)]
    for name, x, y, tol in pairs:
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            note += f"{name}: shapes differ, {x.shape} vs {y.shape}. "
            d, r, good = math.inf, math.inf, False
        else:
            dev = _deviation(x, y)
            d = float(dev.max()) if dev.size else 0.0
            scale = max(_finite_max(x), _finite_max(y))
            r = _rel(d, scale)
            good = d <= atol + tol * scale
        names.append(name)
        abs_dev.append(d)
        rel_dev.append(r)
        ok.append(bool(good))
    return LossReport(a=a, b=b, quantities=tuple(names), abs_dev=tuple(abs_dev),
                      rel_dev=tuple(rel_dev), ok=tuple(ok), dtype=dtype, rtol=rtol,
                      grad_rtol=grad_rtol, atol=atol, note=note.strip())


def _cotangent(shape: tuple[int, ...], key: int | None) -> np.ndarray | None:
    if shape == ():
        return None
    return np.random.default_rng(0 if key is None else int(key)).standard_normal(shape)


def compare_losses(
    fn_a: Callable[..., Any],
    fn_b: Callable[..., Any],
    *inputs: Any,
    wrt: Sequence[int] = (0,),
    dtype: Any = "float64",
    rtol: float | None = None,
    grad_rtol: float | None = None,
    atol: float = 0.0,
    key: int | None = None,
    names: tuple[str | None, str | None] = (None, None),
) -> LossReport:
    """Compare two loss functions on the same inputs: values and gradients.

    Each function is a JAX function (fnlearn, optax, your own) or torch code: functions of
    ``torch.*`` modules (e.g. ``torch.nn.functional.cross_entropy``, or a ``functools.partial``
    of one), ``torch.nn.Module`` instances, or anything wrapped in
    :class:`TorchFunction`. Both get ``inputs`` positionally: floating arrays cast to
    ``dtype``, integer arrays kept (int64 for torch), Python scalars unchanged; fix options
    with a lambda or ``functools.partial``.

    Gradients are taken with respect to ``inputs[i]`` for ``i in wrt``: of the loss itself
    when it is a scalar, else of ``sum(loss * c)`` with a seeded normal cotangent ``c`` (the
    same for both sides).

    Args:
      fn_a, fn_b: the two loss functions.
      *inputs: their positional arguments.
      wrt: indices of the floating inputs to differentiate (default: the first).
      dtype: ``'float64'`` (default; runs with x64 enabled) or ``'float32'`` (x64 disabled).
      rtol, grad_rtol, atol: a quantity agrees when ``max|a - b| <= atol + rtol * max|a|``;
        defaults 1e-10 / 1e-10 in float64, 1e-5 (values) / 2e-5 (gradients) in float32.
      key: an int seed for the cotangent.
      names: labels of the two sides in the report.

    Returns:
      A :class:`LossReport` with one row per quantity (value, each gradient).

    Example::

        >>> import jax.numpy as jnp
        >>> import optax, fnlearn.crosscheck as cc
        >>> x, y = jnp.ones((4, 3)), jnp.zeros((4, 3))
        >>> mse = lambda x, y: jnp.mean((x - y) ** 2)
        >>> cc.compare_losses(mse, lambda x, y: optax.losses.squared_error(x, y).mean(),
        ...                   x, y).verdict
        'match'
    """
    dtype = check_dtype(dtype)
    rtol_v, rtol_g = TOLERANCES[dtype]
    rtol = rtol_v if rtol is None else float(rtol)
    grad_rtol = rtol_g if grad_rtol is None else float(grad_rtol)
    for name, fn in (("fn_a", fn_a), ("fn_b", fn_b)):
        if not callable(fn):
            raise TypeError(f"{name} must be callable, got {fn!r}")
    wrt = tuple(int(i) for i in wrt)
    for i in wrt:
        if not 0 <= i < len(inputs):
            raise ValueError(f"wrt index {i} is out of range for {len(inputs)} inputs")
    with precision(dtype):
        shape_a = output_shape(fn_a, inputs, dtype)
        shape_b = output_shape(fn_b, inputs, dtype)
        cot_a = _cotangent(shape_a, key)
        cot_b = cot_a if shape_b == shape_a else _cotangent(shape_b, key)
        sides = [(fn_a, cot_a), (fn_b, cot_b)]
        jax_sides = [(fn, _jax_inputs(inputs, dtype), wrt, cot) for fn, cot in sides
                     if not _torch.is_torch_function(fn)]
        jax_results = iter(jax_values_and_grads(jax_sides) if jax_sides else [])
        (va, ga), (vb, gb) = [
            _torch.value_and_grads(fn, inputs, wrt, dtype, cot)
            if _torch.is_torch_function(fn) else next(jax_results)
            for fn, cot in sides
        ]
    return loss_report_from(
        va, ga, vb, gb,
        a=names[0] or _torch.describe_callable(fn_a),
        b=names[1] or _torch.describe_callable(fn_b),
        wrt=wrt, dtype=dtype, rtol=rtol, grad_rtol=grad_rtol, atol=float(atol),
    )
