"""The small argument checks that optim, schedules, train, checkpoint, data and crosscheck share.

One home per meaning:

- :func:`is_number`: a concrete real Python/NumPy number (not a bool): the only kind of value
  code may branch on in Python (``if weight_decay != 0``), since arrays may be tracers.
- :func:`concrete_float`: the value of a number or of a concrete (non-traced) one-element
  array, for range checks that also cover ``jnp.array(-1.0)``; ``None`` where the value is
  unknown until run time (a tracer, a schedule).
- :func:`is_int`: "a Python/NumPy integer, not a bool, at least ``minimum``" (counts, sizes,
  epochs); each caller keeps its own message.
- :func:`hyperparameter`: what torch accepts for a numeric hyperparameter (a number, a 0-d or
  one-element array, a traced scalar, a schedule ``step -> value``), normalized to a number,
  a 0-d array or the schedule; the rest refused with a ``TypeError`` naming the argument.
- :func:`require_extra`: import an optional dependency, or say which extra installs it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

#: The extra that installs each optional dependency of the training helpers.
EXTRA_INSTALL = 'pip install "fnlearn[train]"'


def is_number(value: Any) -> bool:
    """True for a concrete real Python/NumPy number; False for a bool, an array, a tracer, a
    schedule or anything else."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def is_tracer(value: Any) -> bool:
    """True for a value traced by ``jit``, ``grad``, ``vmap`` (its number is unknown)."""
    return isinstance(value, jax.core.Tracer)


def concrete_float(value: Any) -> float | None:
    """``float(value)`` for a number or a concrete one-element real array; ``None`` for a
    tracer, a schedule, or an array of another size (the caller checks sizes)."""
    if is_number(value):
        return float(value)
    if isinstance(value, (jax.Array, np.ndarray)) and not is_tracer(value) and value.size == 1:
        if not (jnp.issubdtype(value.dtype, jnp.integer)
                or jnp.issubdtype(value.dtype, jnp.floating)):
            return None
        return float(np.asarray(value).reshape(()))
    return None


def is_int(value: Any, minimum: int | None = None) -> bool:
    """True for a Python/NumPy integer (not a bool) that is at least ``minimum`` (if given)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return False
    return minimum is None or value >= minimum


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def hyperparameter(value: Any, arg: str, owner: str, *, schedule: bool = True) -> Any:
    """A numeric hyperparameter as torch accepts it, or a clear error.

    Accepted (and returned as shown): a Python/NumPy number (unchanged: code may branch on
    it); a bool (torch takes ``True`` as 1: returned as the int); a real array with one
    element, concrete or traced (returned as a 0-d array: torch's one-element tensor lr is
    used as a scalar, whereas a ``(1,)`` array would broadcast a 0-d parameter to ``(1,)``);
    with ``schedule=True`` a callable ``step -> value`` (unchanged).

    Refused: an array with more than one element (``ValueError``: torch's "Tensor lr must be
    1-element"; a ``(2,)`` lr would otherwise scale each column differently), and anything
    else (a string, ``None``, a list or tuple: ``TypeError``, torch's class for them).
    """
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if is_number(value):
        return value
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        dtype = np.dtype(value.dtype)
        if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
            raise TypeError(f"{owner}: {arg} must be a real number, got an array of {dtype}")
        if value.size != 1:
            raise ValueError(f"{owner}: Tensor {arg} must be 1-element, got an array of shape "
                             f"{tuple(value.shape)} (a hyperparameter is one number)")
        return value.reshape(()) if value.ndim else value
    if schedule and callable(value):
        return value
    kinds = "a number, a 0-d array or a schedule step -> value" if schedule else (
        "a number or a 0-d array")
    hint = ""
    if isinstance(value, str):
        try:
            hint = f"; write {arg}={float(value)!r}, not the string {value!r}"
        except ValueError:
            hint = ""
    elif isinstance(value, (list, tuple)) and len(value) == 1:
        hint = f"; write {arg}={value[0]!r}"
    raise TypeError(f"{owner}: {arg} must be {kinds}, got {_describe(value)}{hint}")


def check_range(value: Any, message: str, ok: Callable[[float], bool]) -> None:
    """``ValueError(f"{message}: {value}")`` when ``value`` is concrete and ``ok`` fails (NaN
    fails every comparison); traced values and schedules are checked by no one, as torch
    checks only at construction."""
    v = concrete_float(value)
    if v is not None and (math.isnan(v) or not ok(v)):
        raise ValueError(f"{message}: {v if not is_number(value) else value}")


def require_extra(module: str, what: str) -> ModuleType:
    """``import module``, or an ``ImportError`` saying that ``what`` needs it and which extra
    installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{what} needs {module.split('.')[0]}, which is not installed: "
                          f"{EXTRA_INSTALL} installs it (or pip install {_PIP[module]})"
                          ) from e


#: The pip package of each optional module.
_PIP = {"orbax.checkpoint": "orbax-checkpoint", "matplotlib.figure": "matplotlib",
        "tqdm": "tqdm"}
