"""Torch-style input checks and broadcasting shared by the losses.

Shape and dtype checks run at trace time and raise an exception that names the offending
argument. Value checks (a class index out of range, a probability outside [0, 1], a negative
length) go through :func:`concrete_values`: they run, with torch's exception class and message,
only when the values are known, that is on concrete arrays (eager calls, also under an eager
``jax.grad``); under ``jit``/``vmap`` the values are tracers and the loss gives ``nan`` instead.
Add new shared checks here, not inside a loss module.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._typing import Array, ArrayLike
from .._validate import is_tracer


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

    With ``warn`` a shape difference emits torch's ``UserWarning`` in JAX's terms ("Using a
    target of shape (4, 1) that is different to the input's shape (4, 5). This will likely lead
    to incorrect results due to broadcasting ..."); shapes that cannot be
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
            f"Using a target of shape {target.shape} that is different to the input's shape "
            f"{input.shape}. This will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same shape.",
            UserWarning,
            stacklevel=stacklevel,
        )
    return jnp.broadcast_to(input, shape), jnp.broadcast_to(target, shape)


try:  # the value behind an eager jax.grad's tracer; private, hence the fallback
    from jax._src.core import to_concrete_value as _to_concrete_value
except ImportError:  # pragma: no cover - other JAX versions: tracers stay unchecked
    def _to_concrete_value(x: object) -> object:
        return None


def concrete_values(*arrays: ArrayLike | None) -> tuple[np.ndarray | None, ...] | None:
    """The arrays' values as NumPy arrays when every one is known, else ``None``.

    Known: any non-tracer (a jax or NumPy array, a Python number) and the tracer of an eager
    ``jax.grad`` (its primal is concrete). Under ``jit``, ``vmap`` or ``scan`` the values are
    unknown and value checks are skipped. ``None`` entries pass through as ``None``. Reading
    the values waits for the device, so eager calls that check values synchronize.
    """
    out = []
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        if isinstance(a, jax.core.Tracer):
            a = _to_concrete_value(a)
            if a is None:
                return None
        out.append(np.asarray(a))
    return tuple(out)


def raise_if(
    bad: Callable[..., np.ndarray | bool],
    error: Callable[..., Exception],
    *arrays: ArrayLike | None,
) -> None:
    """Raise ``error(*values)`` when ``bad(*values)`` holds anywhere, on concrete values only.

    The one mechanism behind the losses' value checks: ``bad`` and ``error`` receive the
    NumPy values of ``arrays`` (see :func:`concrete_values`); under ``jit`` nothing is checked
    and the loss marks the offending entries ``nan`` itself. Example: torch's BCE check is
    ``raise_if(lambda x: ~((x >= 0) & (x <= 1)), lambda x: RuntimeError("all elements of input
    should be between 0 and 1"), input)`` (``nan`` fails it, as in torch).
    """
    values = concrete_values(*arrays)
    if values is not None and np.any(bad(*values)):
        raise error(*values)


def check_class_indices(target: ArrayLike, num_classes: int, ignore_index: int | None) -> None:
    """torch's ``IndexError("Target 7 is out of bounds.")`` for the first class index outside
    ``[0, num_classes)`` that is not ``ignore_index`` (concrete targets only)."""

    def bad(t: np.ndarray) -> np.ndarray:
        out = (t < 0) | (t >= num_classes)
        return out if ignore_index is None else out & (t != ignore_index)

    def error(t: np.ndarray) -> IndexError:
        first = t.reshape(-1)[np.argmax(bad(t).reshape(-1))]
        return IndexError(f"Target {int(first)} is out of bounds.")

    raise_if(bad, error, target)


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


def poison(loss: Array, bad: Array) -> Array:
    """``loss`` with ``nan`` where ``bad``: the value and its gradient (``nan * dloss``)."""
    return loss * jnp.where(bad, jnp.nan, 1.0).astype(loss.dtype)


def elementwise_weight(weight: ArrayLike, shape: tuple[int, ...], name: str, dtype) -> Array:
    """An elementwise weight, floating, broadcast to ``shape`` (ValueError naming it)."""
    return broadcast_to_shape(as_float(weight, name), shape, name).astype(dtype)


def check_ignore_index(ignore_index) -> int:
    try:
        return operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"ignore_index must be a Python int, got {ignore_index!r}") from None


def check_label_smoothing(label_smoothing) -> None:
    """``0 <= label_smoothing <= 1`` when concrete; negative values are refused (torch: 0)."""
    if not is_tracer(label_smoothing) and np.ndim(label_smoothing) != 0:
        raise ValueError(f"label_smoothing must be a scalar, got shape {np.shape(label_smoothing)}")
    if not is_tracer(label_smoothing) and not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
