"""Torch-style input checks and broadcasting shared by the losses.

Every check runs at trace time (on shapes and dtypes, never on values) and raises an exception
that names the offending argument. Add new shared checks here, not inside a loss module.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .._typing import Array, ArrayLike


def as_float(x: ArrayLike, name: str) -> Array:
    """``x`` as a floating jax array; integer/bool input raises ``TypeError`` naming ``name``.

    torch refuses integer inputs to float losses (``"mse_cpu" not implemented for 'Long'``).
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
    return x


def as_index(x: ArrayLike, name: str) -> Array:
    """``x`` as an integer jax array of class indices; a float array raises ``TypeError``."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(
            f"{name} must hold integer class indices, got dtype {x.dtype} "
            "(torch: expected target dtype to be Long or Byte)"
        )
    return x


def result_dtype(*arrays: Array) -> np.dtype:
    """The floating dtype torch would return for a loss over ``arrays`` (the widest one)."""
    floats = [a.dtype for a in arrays if jnp.issubdtype(a.dtype, jnp.floating)]
    return max(floats, key=lambda d: (np.dtype(d).itemsize, d != jnp.float16))
