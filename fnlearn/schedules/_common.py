"""What every schedule shares: the default float dtype, the step as a number, and torch's
argument checks."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._typing import Array, ArrayLike
from .._validate import concrete_float, hyperparameter, is_int, is_number, is_tracer


def _dtype() -> np.dtype:
    """The default float dtype at call time (float64 with x64, else float32)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def _f(x: ArrayLike) -> Array:
    """A hyperparameter or value as a scalar of the default float dtype."""
    return jnp.asarray(x, dtype=_dtype())


def _k(count: ArrayLike) -> Array:
    """The step as an integer-valued float (torch computes with Python ints and floats)."""
    return jnp.asarray(count).astype(_dtype())


def _kint(count: ArrayLike) -> Array:
    """The step as an int32 scalar."""
    return jnp.asarray(count).astype(jnp.int32)


def _concrete_max(count: ArrayLike) -> int | None:
    """The largest step in ``count`` when it is known now (a number or a concrete array);
    ``None`` under a trace."""
    if is_tracer(count):
        return None
    values = np.asarray(count)
    return int(values.max()) if values.size else None


def _check_int(value: object, name: str, minimum: int) -> None:
    """``value`` must be a Python/numpy integer >= minimum."""
    if not is_int(value, minimum):
        what = "positive integer" if minimum == 1 else f"integer >= {minimum}"
        raise ValueError(f"Expected {what} {name}, but got {value!r}")


def _nonneg(value: object, name: str, owner: str) -> ArrayLike:
    """``value`` as torch's schedulers take it (a number, or a 0-d / one-element array:
    :func:`fnlearn._validate.hyperparameter`), checked ``>= 0`` and not NaN where concrete."""
    value = hyperparameter(value, name, owner, schedule=False)
    v = concrete_float(value)
    if v is not None and (math.isnan(v) or v < 0):
        raise ValueError(f"Expected non-negative {name}, but got {value!r}")
    return value


def _check_positive(value: object, name: str) -> None:
    """``value`` must be a Python/numpy number > 0."""
    if not is_number(value) or value <= 0:
        raise ValueError(f"Expected positive {name}, but got {value!r}")


def _check_anneal_strategy(anneal_strategy: object) -> None:
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(
            f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
        )


def _check_schedules(schedulers: list, owner: str) -> None:
    """Every entry of ``schedulers`` must be callable (TypeError naming ``owner``)."""
    for i, s in enumerate(schedulers):
        if not callable(s):
            raise TypeError(
                f"{owner} at index {i} should be a schedule (a function of the step), "
                f"but got {type(s).__name__}"
            )


def _check_callable(fn: object, name: str) -> None:
    if not callable(fn):
        raise TypeError(f"{name} should be a function, but got {type(fn).__name__}")

