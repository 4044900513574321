"""Margin losses: :func:`soft_margin_loss`, :func:`multilabel_soft_margin_loss`,
:func:`multi_margin_loss` and :func:`multilabel_margin_loss`.

Each computes torch's unreduced loss and hands it to :func:`fnlearn.losses.reduce`; the
docstrings state the denominator of each ``'mean'``. Arithmetic runs in float32 for
bfloat16/float16 inputs. A class index out of range is a value torch checks at run time (see
:mod:`fnlearn.losses`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._typing import Array, ArrayLike
from . import _reduction
from ._checks import (
    as_float,
    as_index,
    broadcast_to_shape,
    class_weight,
    compute_dtype,
    elementwise_weight,
    legacy_reduction,
    poison,
    raise_if,
    result_dtype,
)
from ._reduction import check_reduction

__all__ = [
    "multi_margin_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "soft_margin_loss",
]


def soft_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.soft_margin_loss`.

    .. math::
        \ell_i = \log(1 + \exp(-y_i x_i))

    Legend: :math:`x` = ``input``, :math:`y` = ``target`` (labels :math:`\pm 1`, broadcast to
    ``input``'s shape).

    Reductions: ``'mean'`` is the plain mean over all elements; ``'sum'`` the sum.

    Args:
        input: scores, floating, any shape.
        target: labels, usually :math:`\pm 1`; floating or integer (as torch), broadcastable
            to ``input``'s shape.
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        input :math:`(*)`, target broadcastable to :math:`(*)`; output a scalar, or
        :math:`(*)` for ``'none'``.

    .. note::
        Computed as a stable softplus: where torch's ``log1p(exp(.))`` overflows
        (:math:`-y x \gtrsim 89` in float32, 710 in float64) torch returns ``inf`` and a
        ``nan`` gradient, this returns the finite value :math:`-y x` and gradient.

    .. warning::
        optax: ``optax.losses.sigmoid_binary_cross_entropy(target * input, 1)`` equals
        ``reduction='none'``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import soft_margin_loss
        >>> round(float(soft_margin_loss(jnp.array([2.0, -1.0]), jnp.array([1.0, 1.0]))), 4)
        0.7201
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    x = as_float(input, "input")
    y = broadcast_to_shape(jnp.asarray(target), x.shape, "target")
    dtype = result_dtype(x, y)
    x, y = x.astype(compute_dtype(dtype)), y.astype(compute_dtype(dtype))
    l = jax.nn.softplus(-y * x)
    return _reduction.reduce(l, reduction).astype(dtype)


def multilabel_soft_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.multilabel_soft_margin_loss`.

    .. math::
        \ell_n = -\frac{1}{C} \sum_c w_c \left[ y_{n,c} \log \sigma(x_{n,c})
                 + (1 - y_{n,c}) \log \sigma(-x_{n,c}) \right]

    Legend: :math:`x` = ``input``, :math:`y` = ``target`` (0/1 labels per class),
    :math:`w` = ``weight`` (1 when not given), :math:`C` = size of the **last** dimension
    (torch's class dim ``input.dim() - 1``), :math:`\sigma` = sigmoid.

    Reductions: ``'mean'`` is the plain mean of :math:`\ell_n` over the samples (all
    dimensions but the last); ``'sum'`` their sum.

    Args:
        input: scores, floating, at least 1-D, classes on the last dimension.
        target: labels in {0, 1} (or probabilities), floating or integer, broadcastable to
            ``input``'s shape.
        weight: rescaling weight broadcastable to ``input``'s shape (usually :math:`(C,)`).
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        input :math:`(*, C)`, target broadcastable to it; output a scalar, or :math:`(*)` for
        ``'none'``.

    .. warning::
        optax: ``optax.losses.sigmoid_binary_cross_entropy(input, target).mean(-1)`` equals
        ``reduction='none'`` without ``weight``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import multilabel_soft_margin_loss
        >>> x = jnp.array([[0.0, 2.0]])
        >>> round(float(multilabel_soft_margin_loss(x, jnp.array([[1.0, 1.0]]))), 4)
        0.41
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    x = as_float(input, "input")
    if x.ndim == 0:
        raise ValueError("input must have a class (last) dimension, got a 0-d array")
    y = broadcast_to_shape(jnp.asarray(target), x.shape, "target")
    dtype = result_dtype(x, y)
    ct = compute_dtype(dtype)
    x, y = x.astype(ct), y.astype(ct)
    terms = -(y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x))
    if weight is not None:
        terms = terms * elementwise_weight(weight, x.shape, "weight", ct)
    l = jnp.sum(terms, axis=-1) / x.shape[-1]
    return _reduction.reduce(l, reduction).astype(dtype)


def multi_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    p: int = 1,
    margin: float = 1.0,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.multi_margin_loss`.

    .. math::
        \ell_n = \frac{1}{C} \sum_{j \ne y_n} w_{y_n} \max(0,\ \text{margin} - x_{n, y_n}
                 + x_{n, j})^p

    Legend: :math:`x` = ``input``, :math:`y` = ``target`` (class indices), :math:`w` =
    ``weight`` (1 when not given), :math:`p` = ``p`` (1 or 2), :math:`C` classes.

    Reductions: ``'mean'`` is the plain mean of :math:`\ell_n` over :math:`N` (**not**
    divided by the weights); ``'sum'`` their sum.

    Args:
        input: scores, floating, :math:`(N, C)`, :math:`(C,)` or :math:`()` (one class).
        target: integer class indices, :math:`(N,)`; :math:`()` or :math:`(1,)` for a 1-D or
            0-d ``input``.
        p: 1 or 2 (a Python int; anything else raises ``ValueError``).
        margin: the margin (may be a traced value).
        weight: per-class weight of shape :math:`(C,)`.
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        input :math:`(N, C)`, :math:`(C)` or :math:`()`, target :math:`(N)` (or :math:`()`);
        output a scalar, or target's shape for ``'none'``.

    The gradient of the hinge at exactly 0 is 0, as torch's (``z > 0``); a ``nan`` hinge
    term counts as 0, as in torch's kernel (``if (z > 0)``).

    On a concrete ``target``, a class index outside :math:`[0, C)` raises torch's
    ``RuntimeError("target out of range")``.

    .. warning::
        Under ``jit`` values cannot raise: an out-of-range class index makes that sample's loss
        and gradient ``nan``. An empty batch gives ``nan`` for ``'mean'`` (torch 2.13 returns
        an uninitialized number there).

    .. warning::
        optax's ``multiclass_hinge_loss`` is a different loss (Crammer-Singer: the **max**
        over :math:`j` of :math:`x_j + 1 - [j = y] - x_y`, not this mean of hinges).

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import multi_margin_loss
        >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8]])
        >>> round(float(multi_margin_loss(x, jnp.array([3]))), 4)
        0.325
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"only p == 1 and p == 2 supported, got p={p!r}")
    x = as_float(input, "input")
    y = as_index(target, "target")
    _check_margin_shapes(x, y)
    dtype = x.dtype
    ct = compute_dtype(dtype)
    C = x.shape[-1] if x.ndim else 1
    raise_if(lambda t: (t < 0) | (t >= C), lambda t: RuntimeError("target out of range"), y)
    x2 = x.reshape(-1, C).astype(ct)
    y1 = y.reshape(-1)
    w = class_weight(weight, C)
    in_range = (y1 >= 0) & (y1 < C)
    y_safe = jnp.where(in_range, y1, 0)
    x_y = jnp.take_along_axis(x2, y_safe[:, None], axis=1)
    z = jnp.asarray(margin, ct) - x_y + x2
    # torch's kernel adds a term only ``if (z > 0)``: a nan z (or weight) adds nothing, and
    # passes no gradient (z is zeroed first, so no nan * 0 from the unused branch)
    keep = (z > 0) & (jnp.arange(C)[None, :] != y_safe[:, None])
    z = jnp.where(keep, z, jnp.zeros_like(z))
    h = z if p == 1 else z * z
    if w is not None:
        h = h * w.astype(ct)[y_safe][:, None]
    h = jnp.where(keep, h, jnp.zeros_like(h))
    l = poison(jnp.sum(h, axis=1) / C, ~in_range).reshape(y.shape)
    return _reduction.reduce(l, reduction).astype(dtype)


def multilabel_margin_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.multilabel_margin_loss`.

    .. math::
        \ell_n = \frac{1}{C} \sum_{j \in J_n} \sum_{k \notin T_n}
                 \max(0,\ 1 - (x_{n, y_{n,j}} - x_{n, k}))

    Legend: :math:`x` = ``input``, :math:`y` = ``target``; :math:`J_n` = the positions of
    :math:`y_n` before its first -1 (torch reads targets up to the first -1; a repeated class
    counts once per position), :math:`T_n = \{y_{n,j} : j \in J_n\}` the target classes,
    :math:`C` classes.

    Reductions: ``'mean'`` is the plain mean of :math:`\ell_n` over :math:`N`; ``'sum'``
    their sum.

    Args:
        input: scores, floating, :math:`(N, C)`, :math:`(C,)` or :math:`()` (one class).
        target: integer class indices padded with -1, ``input``'s shape (for a 1-D or 0-d
            ``input``, any shape of :math:`C` elements, as torch).
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        input :math:`(N, C)`, :math:`(C)` or :math:`()`, target the same; output a scalar, or
        :math:`(N)` (:math:`()` for 1-D or 0-d input) for ``'none'``.

    A ``nan`` hinge term counts as 0, as in torch's kernel (``if (z > 0)``). On a concrete
    ``target``, a value outside :math:`[-1, C)` raises torch's ``RuntimeError("argument #2
    'target' is out of range")``.

    .. warning::
        Under ``jit`` values cannot raise: a target value outside :math:`[-1, C)` anywhere in a
        row makes that sample's loss and gradient ``nan``. optax has no equivalent loss.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import multilabel_margin_loss
        >>> x = jnp.array([[0.1, 0.2, 0.4, 0.8]])
        >>> round(float(multilabel_margin_loss(x, jnp.array([[3, 0, -1, 1]]))), 4)
        0.85
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    x = as_float(input, "input")
    y = as_index(target, "target")
    if x.ndim > 2 or (x.ndim and x.shape[-1] == 0):
        raise ValueError(f"input must be a (C,) or (N, C) array with C > 0 (or a 0-d array), "
                         f"got shape {x.shape}")
    unbatched = x.ndim < 2
    if (y.shape != x.shape) and not (unbatched and y.ndim <= 1 and y.size == max(x.size, 1)):
        raise ValueError(f"target must have input's shape {x.shape}, got shape {y.shape}")
    dtype = x.dtype
    ct = compute_dtype(dtype)
    C = x.shape[-1] if x.ndim else 1
    raise_if(lambda t: (t < -1) | (t >= C),
             lambda t: RuntimeError("argument #2 'target' is out of range"), y)
    x2, y2 = x.reshape(-1, C).astype(ct), y.reshape(-1, C)
    active = jnp.cumsum(y2 < 0, axis=1) == 0  # positions before the first -1
    bad = jnp.any((y2 < -1) | (y2 >= C), axis=1)
    y_safe = jnp.where(active & ~bad[:, None], y2, 0)
    classes = jnp.arange(C)[None, None, :]
    is_target = jnp.any(active[:, :, None] & (y_safe[:, :, None] == classes), axis=1)
    x_t = jnp.take_along_axis(x2, y_safe, axis=1)
    z = 1 - x_t[:, :, None] + x2[:, None, :]  # (sample, target position j, class k)
    keep = (z > 0) & active[:, :, None] & ~is_target[:, None, :]
    l = jnp.sum(jnp.where(keep, z, jnp.zeros_like(z)), axis=(1, 2)) / C
    l = poison(l, bad).reshape(x.shape[:-1] if x.ndim else ())
    if reduction == "mean" and l.size == 0:  # torch's kernel: an empty batch's mean is 0
        return jnp.zeros((), dtype)
    return _reduction.reduce(l, reduction).astype(dtype)


def _check_margin_shapes(x: Array, y: Array) -> None:
    """multi_margin_loss: input ``()``, ``(C,)`` or ``(N, C)`` with C > 0, target ``(N,)``
    (``()`` or ``(1,)`` unbatched); an empty batch is allowed, as torch."""
    if x.ndim > 2 or (x.ndim and x.shape[-1] == 0):
        raise ValueError(f"input must be a (C,) or (N, C) array with C > 0 (or a 0-d array), "
                         f"got shape {x.shape}")
    expected = [(), (1,)] if x.ndim < 2 else [(x.shape[0],)]
    if y.shape not in expected:
        raise ValueError(
            f"target must have shape {expected[-1]} (one class index per sample) for input of "
            f"shape {x.shape}, got shape {y.shape}"
        )
