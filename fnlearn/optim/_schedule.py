"""The one way to resolve a hyperparameter that may be a schedule."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .._typing import Array, ScalarOrSchedule


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
