"""The one way to resolve a hyperparameter that may be a schedule."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from .._typing import Array, ScalarOrSchedule
from .._validate import is_number


def resolve(value: ScalarOrSchedule, count: Array, dtype: np.dtype) -> Array:
    """The value of a hyperparameter for the update with step count ``count``.

    ``value`` is a number, a (possibly traced) array, or a schedule ``count -> value``; the
    k-th update (``count = k``, k = 0, 1, ...) uses ``schedule(k)``, which is torch's lr of
    the k-th ``optimizer.step()`` with ``scheduler.step()`` called after each step. The
    result is a scalar of ``dtype`` (the optimizer's compute dtype, never below float32).
    """
    if callable(value):
        value = value(count)
    return jnp.asarray(value, dtype=dtype)


def resolve_one_minus(value: ScalarOrSchedule, count: Array, dtype: np.dtype) -> Array:
    """``1 - value`` for the update with step count ``count`` (e.g. ``1 - beta2``).

    For a static number the difference is taken in Python's double precision before the cast,
    as torch does with its Python-float betas: in float32, ``1 - float32(0.999)`` is off by
    1.3e-5 relative, ``float32(1 - 0.999)`` by 6e-8. Traced values and schedules are
    resolved first (their precision is the caller's).
    """
    if is_number(value):
        return jnp.asarray(1 - value, dtype=dtype)
    return 1 - resolve(value, count, dtype)


def resolve_betas(
    betas: tuple[ScalarOrSchedule, ScalarOrSchedule], count: Array, dtype: np.dtype
) -> tuple[Array, Array, Array, Array]:
    """``(beta1, 1 - beta1, beta2, 1 - beta2)`` for the update with step count ``count``, each
    ``1 - beta`` as :func:`resolve_one_minus` computes it."""
    return (resolve(betas[0], count, dtype), resolve_one_minus(betas[0], count, dtype),
            resolve(betas[1], count, dtype), resolve_one_minus(betas[1], count, dtype))


def resolve_one_minus_pow(
    value: ScalarOrSchedule, t: Array, count: Array, dtype: np.dtype
) -> Array:
    """``1 - value**t``, a bias correction (``t >= 1`` in ``dtype``), accurate in float32.

    For a static ``value`` it is ``-expm1(t * log(value))`` with the log taken in double
    precision: the float32 ``1 - float32(0.999)**t`` is off by 1.3e-5 relative for small
    ``t`` (more for large ``t``); torch computes ``1 - beta**t`` in Python doubles.
    """
    if is_number(value):
        if value == 0:
            return jnp.ones_like(t)
        return -jnp.expm1(t * jnp.asarray(math.log(value), dtype=dtype))
    return 1 - resolve(value, count, dtype) ** t
