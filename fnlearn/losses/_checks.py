"""Torch-style input checks and broadcasting shared by the losses.

Every check runs at trace time (on shapes and dtypes, never on values) and raises an exception
that names the offending argument. Add new shared checks here, not inside a loss module.
"""

from __future__ import annotations

import warnings

import jax
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


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a loss's arithmetic runs in: float32 for bfloat16/float16, else ``dtype``
    (torch's CPU kernels use float "opmath" for half types; the result is cast back)."""
    return np.dtype(jnp.float32) if jnp.finfo(dtype).bits < 32 else np.dtype(dtype)


def legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """torch's handling of the deprecated ``size_average`` / ``reduce`` arguments.

    When either is not ``None`` it overrides ``reduction`` (``torch.nn._reduction.
    legacy_get_string``): both true (``None`` counts as true) -> ``'mean'``, ``reduce`` true
    -> ``'sum'``, else ``'none'``, with torch's ``UserWarning``. Otherwise ``reduction``.
    """
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
        UserWarning,
        stacklevel=3,
    )
    return ret


def broadcast_pair(
    input: Array,
    target: Array,
    *,
    warn: bool,
    names: tuple[str, str] = ("input", "target"),
    stacklevel: int = 3,
) -> tuple[Array, Array]:
    """Broadcast ``input`` and ``target`` to one shape, as torch's regression losses do.

    With ``warn`` a shape difference emits torch's ``UserWarning`` ("Using a target size ...
    This will likely lead to incorrect results due to broadcasting ..."); shapes that cannot be
    broadcast raise ``ValueError`` naming both arguments. ``stacklevel`` points the warning at
    the caller of the public loss (3 when the loss calls this directly).
    """
    a, b = names
    if input.shape == target.shape:
        return input, target
    try:
        shape = jnp.broadcast_shapes(input.shape, target.shape)
    except ValueError:
        raise ValueError(
            f"{b} of shape {target.shape} cannot be broadcast to {a} of shape {input.shape}"
        ) from None
    if warn:
        warnings.warn(
            f"Using a target size ({_torch_size(target.shape)}) that is different to the input "
            f"size ({_torch_size(input.shape)}). This will likely lead to incorrect results due "
            "to broadcasting. Please ensure they have the same size.",
            UserWarning,
            stacklevel=stacklevel,
        )
    return jnp.broadcast_to(input, shape), jnp.broadcast_to(target, shape)


def _torch_size(shape: tuple[int, ...]) -> str:
    return f"torch.Size([{', '.join(str(d) for d in shape)}])"


def is_concrete(x: object) -> bool:
    """False for a JAX tracer (a value under ``jit``/``grad``/``vmap``): it cannot be checked."""
    return not isinstance(x, jax.core.Tracer)


def broadcast_to_shape(x: ArrayLike, shape: tuple[int, ...], name: str) -> Array:
    """``x`` broadcast to exactly ``shape`` (torch's ``expand`` of a weight or a target).

    Raises ``ValueError`` naming ``name`` when ``x`` cannot be broadcast to ``shape`` or would
    enlarge it (torch: "output with shape [4, 5] doesn't match the broadcast shape [2, 4, 5]").
    """
    x = jnp.asarray(x)
    try:
        ok = jnp.broadcast_shapes(x.shape, tuple(shape)) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} of shape {x.shape} cannot be broadcast to shape {tuple(shape)}")
    return jnp.broadcast_to(x, shape)


def class_weight(weight: ArrayLike | None, num_classes: int, name: str = "weight") -> Array | None:
    """A per-class ``weight``: floating, shape ``(num_classes,)``; ``None`` passes through.

    Raises ``TypeError``/``ValueError`` naming ``name`` (torch: "weight tensor should be defined
    either for all 5 classes or no classes but got weight tensor of shape: [3]").
    """
    if weight is None:
        return None
    w = as_float(weight, name)
    if w.shape != (num_classes,):
        raise ValueError(
            f"{name} must have shape ({num_classes},), one entry per class, got shape {w.shape}"
        )
    return w
