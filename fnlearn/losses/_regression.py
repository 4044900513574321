"""Regression losses: :func:`mse_loss`, :func:`l1_loss`, :func:`smooth_l1_loss`, :func:`huber_loss`.

Each computes torch's unreduced elementwise loss over the broadcast of ``input`` and ``target``
and hands it to :func:`fnlearn.losses.reduce`. A ``target`` whose shape differs from
``input``'s is broadcast with torch's ``UserWarning``; shapes that cannot be broadcast raise
``ValueError``. ``input`` must be floating; an integer ``target`` is cast to ``input``'s dtype.

The result has the dtype torch returns (the widest floating operand, unless a loss says
otherwise); arithmetic runs in float32 for bfloat16/float16, as torch's CPU kernels do.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._typing import Array, ArrayLike
from .._validate import is_tracer
from . import _reduction
from ._checks import (
    as_float,
    broadcast_pair,
    compute_dtype,
    legacy_reduction,
    result_dtype,
)
from ._reduction import check_reduction


def mse_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.mse_loss`.

    .. math::
        \ell_i = w_i \, (x_i - y_i)^2

    Legend: :math:`x` = ``input``, :math:`y` = ``target`` (broadcast to :math:`x`),
    :math:`w` = ``weight`` (1 when not given).

    Reductions: ``'none'`` gives :math:`\ell`; ``'sum'`` gives :math:`\sum_i \ell_i`;
    ``'mean'`` divides that sum by the number of elements, or **by** :math:`\sum_i w_i` when
    ``weight`` is given (torch 2.13's weighted mean).

    Args:
        input: predictions, any shape, floating.
        target: same shape as ``input`` (a different but broadcastable shape warns, as torch).
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        weight: elementwise weights with exactly ``input``'s shape.

    Shape:
        input :math:`(*)`, target :math:`(*)`, weight :math:`(*)`; output a scalar, or the
        broadcast shape for ``'none'``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import mse_loss
        >>> float(mse_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0])))
        2.5

    optax: ``optax.losses.squared_error(input, target)`` equals ``reduction='none'`` (optax's
    ``l2_loss`` is half of it); optax has no weighted mean.
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    x, y, w, dtype = _operands(input, target, weight, target_sets_dtype=True)
    l = (x - y) ** 2
    return _reduce(l, w, reduction, weighted_mean=True).astype(dtype)


def l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.l1_loss`.

    .. math::
        \ell_i = w_i \, |x_i - y_i|

    Legend: :math:`x` = ``input``, :math:`y` = ``target`` (broadcast to :math:`x`),
    :math:`w` = ``weight`` (1 when not given).

    Reductions: ``'none'`` gives :math:`\ell`; ``'sum'`` gives :math:`\sum_i \ell_i`;
    ``'mean'`` divides that sum by the number of elements, or **by** :math:`\sum_i w_i` when
    ``weight`` is given (torch 2.13's weighted mean).

    Args:
        input: predictions, any shape, floating.
        target: same shape as ``input`` (a different but broadcastable shape warns, as torch).
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        weight: elementwise weights with exactly ``input``'s shape.

    Shape:
        input :math:`(*)`, target :math:`(*)`, weight :math:`(*)`; output a scalar, or the
        broadcast shape for ``'none'``.

    The gradient at :math:`x_i = y_i` is 0, as torch's ``sgn``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import l1_loss
        >>> float(l1_loss(jnp.array([1.0, -3.0]), jnp.array([0.0, 0.0])))
        2.0

    optax has no L1 loss (use ``jnp.abs(input - target)``).
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    x, y, w, dtype = _operands(input, target, weight, target_sets_dtype=True)
    l = torch_abs(x - y)
    return _reduce(l, w, reduction, weighted_mean=True).astype(dtype)


def smooth_l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.smooth_l1_loss`.

    .. math::
        d_i = |x_i - y_i|, \qquad
        \ell_i = \begin{cases} 0.5\, d_i^2 / \beta & d_i < \beta \\
                               d_i - 0.5\, \beta & \text{otherwise} \end{cases}

    Legend: :math:`x` = ``input``, :math:`y` = ``target`` (broadcast to :math:`x`),
    :math:`\beta` = ``beta``. With :math:`\beta = 0` the loss is exactly :func:`l1_loss` (no
    division by zero, also for a traced ``beta``).

    Reductions: ``'mean'`` divides :math:`\sum_i \ell_i` by the number of elements.

    Args:
        input: predictions, any shape, floating.
        target: same shape as ``input`` (a different but broadcastable shape warns, as torch).
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        beta: the threshold, ``>= 0`` (a negative number raises ``ValueError``).

    Shape:
        input :math:`(*)`, target :math:`(*)`; output a scalar, or the broadcast shape for
        ``'none'``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import smooth_l1_loss
        >>> float(smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]), reduction="sum"))
        2.625

    optax: ``optax.losses.huber_loss(input, target, delta=beta) / beta`` equals
    ``reduction='none'`` for ``beta > 0``.
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    check_beta(beta)
    x, y, _, dtype = _operands(input, target, None, target_sets_dtype=True)
    d = torch_abs(x - y)
    b = jnp.asarray(beta, x.dtype)
    b_safe = jnp.where(b == 0, jnp.ones_like(b), b)  # beta = 0: the first branch is never taken
    # torch's backward takes the quadratic branch unless |x - y| > beta, so a nan has a nan
    # gradient (except for beta = 0, which is l1_loss: sgn(nan) = 0)
    small = (d < b) | (jnp.isnan(d) & (b > 0))
    d_small = jnp.where(small, d, jnp.zeros_like(d))  # no inf * 0 from the unused branch
    l = jnp.where(small, 0.5 * d_small * d_small / b_safe, d - 0.5 * b)
    return _reduction.reduce(l, reduction).astype(dtype)


def huber_loss(
    input: ArrayLike,
    target: ArrayLike,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: ArrayLike | None = None,
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.huber_loss`.

    .. math::
        d_i = |x_i - y_i|, \qquad
        \ell_i = w_i \begin{cases} 0.5\, d_i^2 & d_i \le \delta \\
                                   \delta\, (d_i - 0.5\, \delta) & \text{otherwise}
                     \end{cases}

    Legend: :math:`x` = ``input``, :math:`y` = ``target`` (broadcast to :math:`x`),
    :math:`\delta` = ``delta``, :math:`w` = ``weight`` (1 when not given).
    ``huber_loss(delta) == delta * smooth_l1_loss(beta=delta)``.

    Reductions: ``'mean'`` divides :math:`\sum_i \ell_i` by the number of elements, **also
    with** ``weight`` (torch 2.13 takes the plain mean of :math:`w_i \ell_i` here, unlike the
    :math:`\sum w` denominator of :func:`mse_loss` and :func:`l1_loss`).

    Args:
        input: predictions, any shape, floating; the unweighted loss has its dtype (torch
            computes huber in ``input``'s dtype).
        target: same shape as ``input`` (a different but broadcastable shape warns, as torch).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        delta: the threshold, ``> 0`` (otherwise ``ValueError``).
        weight: elementwise weights with exactly ``input``'s shape.

    Shape:
        input :math:`(*)`, target :math:`(*)`, weight :math:`(*)`; output a scalar, or the
        broadcast shape for ``'none'``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import huber_loss
        >>> float(huber_loss(jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0]), reduction="sum"))
        2.625

    optax: ``optax.losses.huber_loss(input, target, delta)`` equals ``reduction='none'``
    without ``weight``.
    """
    reduction = check_reduction(reduction)
    check_delta(delta)
    x, y, w, dtype = _operands(input, target, weight, target_sets_dtype=False)
    d = torch_abs(x - y)
    delta_ = jnp.asarray(delta, x.dtype)
    small = ~(d > delta_)  # torch's backward: a nan takes the quadratic branch (nan gradient)
    d_small = jnp.where(small, d, jnp.zeros_like(d))  # no inf * 0 from the unused branch
    l = jnp.where(small, 0.5 * d_small * d_small, delta_ * (d - 0.5 * delta_))
    return _reduce(l, w, reduction, weighted_mean=False).astype(dtype)


@jax.custom_jvp
def torch_abs(d: Array) -> Array:
    """``|d|`` with torch's gradient ``sgn(d)``: 0 at ``d = 0`` (``jnp.abs`` gives 1 there)
    and at ``d = nan`` (``jnp.abs`` gives -1 there)."""
    return jnp.abs(d)


@torch_abs.defjvp
def _torch_abs_jvp(primals, tangents):
    (d,), (t,) = primals, tangents
    sgn = jnp.where(jnp.isnan(d), jnp.zeros_like(d), jnp.sign(d))
    return jnp.abs(d), sgn * t


def check_beta(beta: float) -> None:
    """smooth_l1_loss's ``beta >= 0`` (checked when ``beta`` is concrete)."""
    if not is_tracer(beta) and not np.all(np.asarray(beta) >= 0):
        raise ValueError(f"smooth_l1_loss does not support negative values for beta, got {beta}")


def check_delta(delta: float) -> None:
    """huber_loss's ``delta > 0`` (checked when ``delta`` is concrete)."""
    if not is_tracer(delta) and not np.all(np.asarray(delta) > 0):
        raise ValueError(f"huber_loss does not support non-positive values for delta, got {delta}")


def _operands(
    input: ArrayLike, target: ArrayLike, weight: ArrayLike | None, *, target_sets_dtype: bool
) -> tuple[Array, Array, Array | None, np.dtype]:
    """Check and broadcast as torch: input/target (warning), weight (input's shape).

    Returns the operands in the compute dtype and the result dtype: the widest floating dtype
    of input and target, or input's alone when ``target_sets_dtype`` is false (torch's huber
    kernel); a weight widens it.
    """
    x = as_float(input, "input")
    y = jnp.asarray(target)
    w = None if weight is None else jnp.asarray(weight)
    if w is not None and w.shape != x.shape:
        raise ValueError(
            f"weight must have input's shape {x.shape}, got {w.shape} "
            "(torch: Weights and input must have the same size.)"
        )
    dtype = result_dtype(x, *([y] if target_sets_dtype else []), *([] if w is None else [w]))
    ct = compute_dtype(dtype)
    x, y = broadcast_pair(x.astype(ct), y.astype(ct), warn=True, stacklevel=4)
    return x, y, None if w is None else w.astype(ct), dtype


def _reduce(l: Array, w: Array | None, reduction: str, *, weighted_mean: bool) -> Array:
    """Apply the elementwise weight (input's shape, broadcast to ``l``'s), then reduce;
    ``weighted_mean`` divides by ``sum(w)`` over ``w`` as given, as torch."""
    if w is None:
        return _reduction.reduce(l, reduction)
    denominator = jnp.sum(w) if weighted_mean else None
    return _reduction.reduce(jnp.broadcast_to(w, l.shape) * l, reduction, denominator=denominator)

