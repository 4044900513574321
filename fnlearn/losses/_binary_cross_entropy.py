"""Binary cross-entropy: :func:`binary_cross_entropy` on probabilities (torch's -100 clamp
of the log and its backward formulas) and :func:`binary_cross_entropy_with_logits`.

Both compute torch's unreduced loss and hand it to :func:`fnlearn.losses.reduce`; their
``'mean'`` is the plain mean over all elements. Arithmetic runs in float32 for
bfloat16/float16 inputs. A probability outside [0, 1] is a value torch checks at run time
(see :mod:`fnlearn.losses`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from .._typing import Array, ArrayLike
from . import _reduction
from ._checks import (
    as_float,
    compute_dtype,
    elementwise_weight,
    legacy_reduction,
    poison,
    raise_if,
    result_dtype,
)
from ._reduction import check_reduction

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
]


def binary_cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.binary_cross_entropy`.

    .. math::
        \ell_i = -w_i \left[ y_i \max(\log x_i, -100)
                             + (1 - y_i) \max(\log(1 - x_i), -100) \right]

    Legend: :math:`x` = ``input`` (probabilities), :math:`y` = ``target`` (probabilities),
    :math:`w` = ``weight`` (1 when not given).

    Each log is clamped at -100, as torch: :math:`x = 0, y = 1` gives 100, not ``inf``, and
    :math:`x = y = 0` gives 0, not ``nan``. The gradient is torch's, not the derivative of the
    clamped formula:

    .. math::
        \frac{\partial \ell_i}{\partial x_i} = w_i \frac{x_i - y_i}{\max(x_i (1 - x_i),
        \epsilon)}, \qquad
        \frac{\partial \ell_i}{\partial y_i} = w_i \left[\log(1 - x_i) - \log x_i\right]

    with :math:`\epsilon` = float32(1e-12) as in torch (so about :math:`\pm 10^{12}` at
    :math:`x \in \{0, 1\}`).

    Reductions: ``'mean'`` is the plain mean of :math:`\ell` over all elements (**not** divided
    by :math:`\sum w`); ``'sum'`` is :math:`\sum_i \ell_i`.

    Args:
        input: probabilities in [0, 1], floating, any shape.
        target: probabilities in [0, 1], floating, exactly ``input``'s shape.
        weight: rescaling weight, broadcast to ``input``'s shape (e.g. ``(C,)`` per column).
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        input :math:`(*)`, target :math:`(*)`, weight broadcastable to :math:`(*)`; output a
        scalar, or :math:`(*)` for ``'none'``.

    Raises at trace time: ``ValueError`` if ``target``'s shape differs from ``input``'s (torch
    refuses too), or ``weight`` does not broadcast to it; ``TypeError`` for an integer
    ``input`` or ``target``. On concrete arrays, torch's ``RuntimeError("all elements of
    input should be between 0 and 1")`` (and the same for ``target``) for a value outside
    [0, 1] or ``nan``.

    .. warning::
        Under ``jit`` values cannot raise: an element of ``input`` or ``target`` outside
        [0, 1] makes its loss entry (and its gradient) ``nan`` instead.

    .. warning::
        optax has no probability-space BCE. ``optax.losses.sigmoid_binary_cross_entropy(
        logit(x), y)`` agrees away from 0 and 1 but has no -100 clamp (``inf``/``nan`` at the
        ends); prefer :func:`binary_cross_entropy_with_logits` on logits.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import binary_cross_entropy
        >>> x = jnp.array([0.0, 0.5, 1.0])
        >>> [round(float(v), 4) for v in binary_cross_entropy(x, jnp.ones(3), reduction="none")]
        [100.0, 0.6931, -0.0]
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    x = as_float(input, "input")
    y = as_float(target, "target")
    _check_same_shape(x, y, "binary_cross_entropy")
    for arg, name in ((x, "input"), (y, "target")):
        raise_if(lambda v: ~((v >= 0) & (v <= 1)), lambda v, name=name: RuntimeError(
            f"all elements of {name} should be between 0 and 1"), arg)
    dtype = result_dtype(x, y)
    x, y = x.astype(compute_dtype(dtype)), y.astype(compute_dtype(dtype))
    l = poison(_bce(x, y), (x < 0) | (x > 1) | (y < 0) | (y > 1))
    if weight is not None:
        l = elementwise_weight(weight, l.shape, "weight", l.dtype) * l
    return _reduction.reduce(l, reduction).astype(dtype)


# torch's ``EPSILON`` of the BCE backward is the float 1e-12 (float32), also for float64.
_BCE_EPS = float(np.float32(1e-12))


@jax.custom_jvp
def _bce(x: Array, y: Array) -> Array:
    """torch's clamped elementwise BCE (its ``binary_cross_entropy`` CPU kernel)."""
    return (y - 1) * jnp.maximum(jnp.log1p(-x), -100.0) - y * jnp.maximum(jnp.log(x), -100.0)


def _bce_jvp(primals, tangents):
    """torch's backward formulas (``binary_cross_entropy_backward`` / ``_target_backward``).

    Symbolic zeros skip the target term when ``target`` is not differentiated: its factor is
    ``inf`` at :math:`x \\in \\{0, 1\\}`, and ``inf * 0`` would poison the input gradient.
    """
    (x, y), (x_dot, y_dot) = primals, tangents
    out = _bce(x, y)
    out_dot = jnp.zeros_like(out)
    if not isinstance(x_dot, SymbolicZero):
        out_dot = out_dot + x_dot * (x - y) / jnp.maximum((1 - x) * x, _BCE_EPS)
    if not isinstance(y_dot, SymbolicZero):
        out_dot = out_dot + y_dot * (jnp.log1p(-x) - jnp.log(x))
    return out, out_dot


_bce.defjvp(_bce_jvp, symbolic_zeros=True)


def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: ArrayLike | None = None,
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.binary_cross_entropy_with_logits`.

    .. math::
        \ell_i = -w_i \left[ p_i\, y_i \log \sigma(x_i) + (1 - y_i) \log \sigma(-x_i) \right]
               = w_i \left[ (1 - y_i)\, x_i - (1 + (p_i - 1)\, y_i) \log \sigma(x_i) \right]

    Legend: :math:`x` = ``input`` (logits), :math:`y` = ``target`` (probabilities),
    :math:`w` = ``weight``, :math:`p` = ``pos_weight`` (both 1 when not given),
    :math:`\sigma` = sigmoid. The second form is torch's, evaluated with a stable
    :math:`\log\sigma`: logits of :math:`\pm 10^4` give a finite loss and gradient.

    Reductions: ``'mean'`` is the plain mean of :math:`\ell` over all elements (**not**
    divided by :math:`\sum w`); ``'sum'`` is :math:`\sum_i \ell_i`.

    Args:
        input: logits, floating, any shape.
        target: probabilities, floating, exactly ``input``'s shape.
        weight: rescaling weight, broadcast to ``input``'s shape.
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        pos_weight: weight of the positive term, broadcast to ``input``'s shape; usually
            ``(C,)``, one per class along the last dimension.

    Shape:
        input :math:`(*)`, target :math:`(*)`, weight and pos_weight broadcastable to
        :math:`(*)`; output a scalar, or :math:`(*)` for ``'none'``.

    Raises at trace time: ``ValueError`` if ``target``'s shape differs from ``input``'s, or
    ``weight``/``pos_weight`` does not broadcast to it; ``TypeError`` for an integer
    ``input`` or ``target``.

    .. warning::
        ``optax.losses.sigmoid_binary_cross_entropy(input, target)`` equals
        ``reduction='none'`` without ``weight`` and ``pos_weight``; optax has neither and
        returns the unreduced loss.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import binary_cross_entropy_with_logits
        >>> x = jnp.array([-1e4, 0.0, 1e4])
        >>> [round(float(v), 4) for v in binary_cross_entropy_with_logits(
        ...     x, jnp.ones(3), reduction="none")]
        [10000.0, 0.6931, 0.0]
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    x = as_float(input, "input")
    y = as_float(target, "target")
    _check_same_shape(x, y, "binary_cross_entropy_with_logits")
    dtype = result_dtype(x, y)
    x, y = x.astype(compute_dtype(dtype)), y.astype(compute_dtype(dtype))
    log_sig = jax.nn.log_sigmoid(x)
    if pos_weight is None:
        l = (1 - y) * x - log_sig
    else:
        p = elementwise_weight(pos_weight, x.shape, "pos_weight", x.dtype)
        l = (1 - y) * x - ((p - 1) * y + 1) * log_sig
    if weight is not None:
        l = l * elementwise_weight(weight, l.shape, "weight", l.dtype)
    return _reduction.reduce(l, reduction).astype(dtype)


def _check_same_shape(x: Array, y: Array, fn: str) -> None:
    if x.shape != y.shape:
        raise ValueError(
            f"{fn}: target of shape {y.shape} must have input's shape {x.shape} "
            "(torch refuses a different target size)"
        )
