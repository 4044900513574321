"""Classification losses: binary and multi-class cross-entropy, NLL, and the margin losses.

:func:`binary_cross_entropy`, :func:`binary_cross_entropy_with_logits`, :func:`cross_entropy`,
:func:`nll_loss`, :func:`soft_margin_loss`, :func:`multilabel_soft_margin_loss`,
:func:`multi_margin_loss`, :func:`multilabel_margin_loss`, and :func:`check_targets`, the eager
check of class indices.

Each loss computes torch's unreduced loss and hands it to :func:`fnlearn.losses.reduce`; the
docstrings state the denominator of each ``'mean'``. Class-index losses put the class axis at
dimension 1 (dimension 0 for an unbatched ``(C,)`` input), as torch does.

Arithmetic runs in float32 for bfloat16/float16 inputs (and in the input's dtype otherwise);
the result has the dtype torch returns.

**Values torch checks at run time** (a class index out of range, a probability outside
[0, 1]): on concrete arrays (eager calls) the losses raise torch's exception with torch's
message. Under ``jit`` there are no run-time errors, so the affected loss entries are ``nan``
instead, and so is the gradient of the affected sample: never a silently wrong finite number.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from .._typing import Array, ArrayLike
from .._validate import is_tracer
from . import _reduction
from ._checks import (
    as_float,
    as_index,
    broadcast_to_shape,
    check_class_indices,
    class_weight,
    legacy_reduction,
    raise_if,
    result_dtype,
)
from ._reduction import check_reduction

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "check_targets",
    "cross_entropy",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "soft_margin_loss",
]


# --------------------------------------------------------------------------------------------
# Binary cross-entropy
# --------------------------------------------------------------------------------------------


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
    x, y = x.astype(_compute(dtype)), y.astype(_compute(dtype))
    l = _poison(_bce(x, y), (x < 0) | (x > 1) | (y < 0) | (y > 1))
    if weight is not None:
        l = _weight(weight, l.shape, "weight", l.dtype) * l
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
    x, y = x.astype(_compute(dtype)), y.astype(_compute(dtype))
    log_sig = jax.nn.log_sigmoid(x)
    if pos_weight is None:
        l = (1 - y) * x - log_sig
    else:
        p = _weight(pos_weight, x.shape, "pos_weight", x.dtype)
        l = (1 - y) * x - ((p - 1) * y + 1) * log_sig
    if weight is not None:
        l = l * _weight(weight, l.shape, "weight", l.dtype)
    return _reduction.reduce(l, reduction).astype(dtype)


# --------------------------------------------------------------------------------------------
# Cross-entropy and NLL (class axis 1)
# --------------------------------------------------------------------------------------------


def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.cross_entropy`.

    With :math:`q_{i,c} = \log \mathrm{softmax}(x_i)_c` over the class axis, :math:`C`
    classes and :math:`\varepsilon` = ``label_smoothing``:

    **Class-index targets** (integer ``target`` without the class axis):

    .. math::
        \ell_i = m_i \left[ (1 - \varepsilon)\, w_{y_i} (-q_{i, y_i})
                 + \frac{\varepsilon}{C} \sum_c w_c (-q_{i,c}) \right],
        \qquad m_i = [y_i \ne \text{ignore\_index}]

    ``'mean'`` divides :math:`\sum_i \ell_i` by :math:`W = \sum_i m_i w_{y_i}`, the summed
    weight of the non-ignored targets (their count without ``weight``), the smoothing term
    included (this is why class weights change the smoothing, pytorch#104776). Ignored entries
    are 0 in ``'none'``. All targets ignored: ``'mean'`` is ``nan`` (0/0, as torch) with a
    **zero** gradient, ``'sum'`` is 0. ``ignore_index`` may be a real class: its targets drop
    out of numerator and denominator, yet the class still appears in the softmax.

    **Class-probability targets** (floating ``target`` of ``input``'s shape):

    .. math::
        \ell_i = -\sum_c w_c\, t_{i,c}\, q_{i,c}, \qquad
        t = (1 - \varepsilon)\, \text{target} + \varepsilon / C

    ``'mean'`` is the plain mean over the :math:`N d_1 \cdots d_k` samples, weighted or not.

    Legend: :math:`x` = ``input`` (logits), :math:`y` = ``target``, :math:`w` = ``weight``
    (1 when not given), :math:`\varepsilon` = ``label_smoothing``.

    The loss equals ``nll_loss(log_softmax(input, axis=1), target, ...)`` without smoothing.

    Args:
        input: logits, floating, class axis 1 (axis 0 when unbatched).
        target: integer class indices (any integer dtype) of shape :math:`(N, d_1, ...)`, or
            floating class probabilities of ``input``'s shape (the dispatch is torch's:
            same shape means probabilities).
        weight: per-class rescaling weight of shape :math:`(C,)`.
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        ignore_index: a target value that is ignored (index targets only; probability targets
            accept only a negative value, as torch).
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        label_smoothing: :math:`\varepsilon \in [0, 1]`; may be a traced value.

    Shape:
        input :math:`(C)`, :math:`(N, C)` or :math:`(N, C, d_1, ..., d_k)`; target
        :math:`()`, :math:`(N)` or :math:`(N, d_1, ..., d_k)` with class indices in
        :math:`[0, C)`, or ``input``'s shape with probabilities; output a scalar, or
        :math:`()`, :math:`(N)`, :math:`(N, d_1, ..., d_k)` for ``'none'``.

    Raises at trace time: ``TypeError`` for a floating index target or an integer
    probability target; ``ValueError`` for a batch or spatial size mismatch, a ``weight`` not of
    shape :math:`(C,)`, a non-negative ``ignore_index`` with probability targets, and
    ``label_smoothing`` outside [0, 1]. On a concrete ``target``, torch's ``IndexError:
    Target 7 is out of bounds.`` for a class index outside :math:`[0, C)` that is not
    ``ignore_index``.

    .. warning::
        Differences from torch. Under ``jit`` values cannot raise: an out-of-range class
        index makes its loss entry ``nan``, so ``'mean'``/``'sum'`` are ``nan`` too and that
        sample's gradient is ``nan``. A negative ``label_smoothing`` raises ``ValueError``
        (torch silently treats it as 0). Any integer dtype is accepted for indices (torch:
        int64 or uint8 only).

    .. warning::
        optax: ``softmax_cross_entropy_with_integer_labels(input, target, axis=1)`` equals
        ``reduction='none'`` without ``weight``, ``ignore_index`` and smoothing; it has none
        of them, and a label of -100 (or any out-of-range label) gives ``nan`` silently.
        ``softmax_cross_entropy(input, target, axis=1)`` equals the probability-target
        ``'none'`` without ``weight``; torch's smoothing equals
        ``optax.smooth_labels(one_hot, label_smoothing)`` on one-hot targets.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import cross_entropy
        >>> logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> round(float(cross_entropy(logits, jnp.array([0, -100]))), 4)
        0.2395
        >>> round(float(cross_entropy(logits, jnp.array([0, 1]), label_smoothing=0.1)), 4)
        0.4955
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    ignore_index = _check_ignore_index(ignore_index)
    _check_label_smoothing(label_smoothing)
    x = as_float(input, "input")
    y = jnp.asarray(target)
    if x.ndim == 0:
        raise ValueError("input must have a class dimension, got a 0-d array")
    if y.shape == x.shape:
        return _cross_entropy_probs(x, y, weight, ignore_index, reduction, label_smoothing)
    y = as_index(y, "target")
    _check_index_shapes(x, y, "cross_entropy")
    check_class_indices(y, x.shape[0] if x.ndim == 1 else x.shape[1], ignore_index)
    dtype = x.dtype
    logits = _class_last(x).astype(_compute(dtype))
    # log_softmax without materializing it: the target's log-prob is (x_y - m) - lse, the
    # same float operations as jax.nn.log_softmax followed by a gather (the same bits), but
    # no (N, ..., C) log-prob buffer for XLA to write and read back: value-and-grad 2-3x
    # faster at C >= 1000, level with optax's (benchmarks/cross_entropy.py)
    m = lax.stop_gradient(jnp.max(logits, axis=-1, initial=-jnp.inf, keepdims=True))
    lse = jnp.log(jnp.sum(jnp.exp(logits - m), axis=-1, keepdims=True))

    def log_prob_at(y_safe):
        return (_take_class(logits, y_safe) - m[..., 0]) - lse[..., 0]

    def log_probs():
        return (logits - m) - lse

    l = _index_loss(log_prob_at, log_probs, logits.shape, y, weight, ignore_index,
                    reduction, label_smoothing, _out_shape(x, y))
    return l.astype(dtype)


def _cross_entropy_probs(x, y, weight, ignore_index, reduction, label_smoothing):
    """cross_entropy with class-probability targets (``target`` has ``input``'s shape)."""
    if not jnp.issubdtype(y.dtype, jnp.floating):
        raise TypeError(
            f"target of input's shape {x.shape} holds class probabilities and must be "
            f"floating, got dtype {y.dtype} (class indices have no class axis)"
        )
    if ignore_index >= 0:
        raise ValueError(
            f"ignore_index={ignore_index} is not supported for class-probability targets"
        )
    dtype = result_dtype(x, y)
    ct = _compute(dtype)
    C = x.shape[0] if x.ndim == 1 else x.shape[1]
    lp = jax.nn.log_softmax(_class_last(x).astype(ct), axis=-1)
    t = _class_last(y).astype(ct)
    if not _is_zero(label_smoothing):
        e = jnp.asarray(label_smoothing, ct)
        t = t * (1 - e) + e / C
    terms = lp * t
    w = class_weight(weight, C)
    if w is not None:
        terms = terms * _along_last(w.astype(ct), terms.ndim)
    l = -jnp.sum(terms, axis=-1)
    if x.ndim == 1:
        l = l[0]
    return _reduction.reduce(l, reduction).astype(dtype)


def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.nll_loss`.

    .. math::
        \ell_i = -m_i\, w_{y_i}\, x_{i, y_i}, \qquad m_i = [y_i \ne \text{ignore\_index}]

    Legend: :math:`x` = ``input`` (log-probabilities, class axis 1), :math:`y` = ``target``
    (class indices), :math:`w` = ``weight`` (1 when not given).

    Reductions: ``'mean'`` divides :math:`\sum_i \ell_i` by :math:`\sum_i m_i w_{y_i}`, the
    summed weight of the non-ignored targets (their count without ``weight``); all targets
    ignored gives ``nan`` (0/0, as torch) with a zero gradient. ``'sum'`` is
    :math:`\sum_i \ell_i`; ``'none'`` has 0 at ignored entries.

    Args:
        input: log-probabilities, floating, class axis 1 (axis 0 when unbatched).
        target: integer class indices in :math:`[0, C)` or ``ignore_index``.
        weight: per-class rescaling weight of shape :math:`(C,)`.
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        ignore_index: a target value that is ignored (may be a real class).
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        input :math:`(C)`, :math:`(N, C)` or :math:`(N, C, d_1, ..., d_k)`; target
        :math:`()`, :math:`(N)` or :math:`(N, d_1, ..., d_k)`; output a scalar, or target's
        shape for ``'none'``.

    Raises at trace time: ``TypeError`` for a floating ``target``; ``ValueError`` for a
    batch or spatial size mismatch or a ``weight`` not of shape :math:`(C,)`. On a concrete
    ``target``, torch's ``IndexError: Target 7 is out of bounds.``

    .. warning::
        Under ``jit`` values cannot raise: a class index outside :math:`[0, C)` that is not
        ``ignore_index`` makes its loss entry and that sample's gradient ``nan``. optax has no
        NLL loss (``-take_along_axis``).

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import nll_loss
        >>> logp = jnp.log(jnp.array([[0.5, 0.5], [0.1, 0.9]]))
        >>> round(float(nll_loss(logp, jnp.array([0, 1]), weight=jnp.array([1.0, 3.0]))), 4)
        0.2523
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    ignore_index = _check_ignore_index(ignore_index)
    x = as_float(input, "input")
    y = as_index(target, "target")
    _check_index_shapes(x, y, "nll_loss")
    check_class_indices(y, x.shape[0] if x.ndim == 1 else x.shape[1], ignore_index)
    dtype = x.dtype
    lp = _class_last(x).astype(_compute(dtype))
    l = _index_loss(lambda y_safe: _take_class(lp, y_safe), lambda: lp, lp.shape, y, weight,
                    ignore_index, reduction, 0.0, _out_shape(x, y))
    return l.astype(dtype)


def _index_loss(log_prob_at, log_probs, lp_shape, target, weight, ignore_index, reduction,
                label_smoothing, shape) -> Array:
    """NLL (plus torch's smoothing term) of class-last log-probs at class indices.

    The log-probs, of ``lp_shape`` = ``(N, d1, ..., C)`` (``(1, C)`` when unbatched), are
    given as ``log_prob_at(y)`` (at class indices ``y`` of shape ``(N, d1, ...)``) and
    ``log_probs()`` (all of them, asked for only by the smoothing term); ``'none'`` has
    ``shape``.
    """
    C = lp_shape[-1]
    y = target.reshape(lp_shape[:-1])
    valid = y != ignore_index
    in_range = (y >= 0) & (y < C)
    y_safe = jnp.where(valid & in_range, y, 0)
    nll = -log_prob_at(y_safe)
    w = class_weight(weight, C)
    w = None if w is None else w.astype(nll.dtype)
    nll = _poison(nll, valid & ~in_range)
    w_y = jnp.ones_like(nll) if w is None else w[y_safe]
    zero = jnp.zeros_like(nll)
    parts = [jnp.where(valid, w_y * nll, zero)]
    if not _is_zero(label_smoothing):
        lp = log_probs()
        e = jnp.asarray(label_smoothing, lp.dtype)
        smooth = -jnp.sum(lp if w is None else lp * _along_last(w, lp.ndim), axis=-1)
        parts = [(1 - e) * parts[0], (e / C) * jnp.where(valid, smooth, zero)]
    # torch reduces the NLL and the smoothing term separately, over one denominator.
    if reduction == "mean":
        return _mean_over_weight(parts, valid, w_y, weighted=w is not None)
    out = sum(_reduction.reduce(p, reduction) for p in parts)
    return out.reshape(shape) if reduction == "none" else out


def _mean_over_weight(parts: list[Array], valid: Array, w_y: Array, *, weighted: bool) -> Array:
    """The ``'mean'`` of class-index losses: each part's sum over ``W``, the summed weight
    ``w_y`` of the ``valid`` (non-ignored) targets; ``nan`` with a zero gradient when none is
    valid."""
    total_weight = jnp.sum(jnp.where(valid, w_y, jnp.zeros_like(w_y)))
    # unweighted, the count is 0 exactly when none is valid (one reduction, not two)
    none_valid = ~jnp.any(valid) if weighted else total_weight == 0
    safe = jnp.where(none_valid, jnp.ones_like(total_weight), total_weight)
    out = sum(_reduction.reduce(p, "mean", denominator=safe) for p in parts)
    # All ignored: nan (0/0), with the zero gradient of the safe denominator.
    return jnp.where(none_valid, jnp.nan, out).astype(parts[0].dtype)


def index_target_mean(loss: Array, target: Array, weight: Array | None, ignore_index: int,
                      num_classes: int) -> Array:
    """``cross_entropy``'s ``'mean'`` from its ``'none'`` loss (``target``'s shape): the sum
    over the summed class weight of the non-ignored targets (``nan`` when all are ignored)."""
    valid = target != ignore_index
    in_range = (target >= 0) & (target < num_classes)
    if weight is None:
        w_y = jnp.ones(target.shape, loss.dtype)
    else:
        w_y = weight.astype(loss.dtype)[jnp.where(valid & in_range, target, 0)]
    return _mean_over_weight([loss], valid, w_y, weighted=weight is not None)


def check_targets(
    input: ArrayLike, target: ArrayLike, *, ignore_index: int | None = -100
) -> None:
    """Raise torch's ``IndexError`` for an out-of-range class index, eagerly.

    The losses raise it themselves on concrete arrays, but under ``jit`` an out-of-range index
    gives a ``nan`` loss instead. Call this outside ``jit`` (e.g. once per dataset) to check
    the targets of a jitted :func:`cross_entropy`, :func:`nll_loss` (with their
    ``ignore_index``) or :func:`multi_margin_loss` (``ignore_index=None``).

    Args:
        input: the loss's ``input`` (only its shape is read; class axis 1, or 0 when 1-D).
        target: integer class indices, concrete.
        ignore_index: the value that is skipped, or ``None``.

    Raises:
        IndexError: ``"Target 5 is out of bounds."`` for the first index outside
            :math:`[0, C)` that is not ``ignore_index``.
        TypeError: ``target`` is not integer, or is traced (inside ``jit``/``vmap``).
        ValueError: the shapes do not fit, as the losses check.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import check_targets
        >>> check_targets(jnp.zeros((2, 3)), jnp.array([0, 3]))
        Traceback (most recent call last):
        ...
        IndexError: Target 3 is out of bounds.
    """
    if is_tracer(input) or is_tracer(target):
        raise TypeError("check_targets needs concrete arrays: call it outside jax.jit/vmap")
    x = jnp.asarray(input)
    y = as_index(target, "target")
    if ignore_index is not None:
        ignore_index = _check_ignore_index(ignore_index)
    if x.ndim == 0:
        raise ValueError("input must have a class dimension, got a 0-d array")
    _check_index_shapes(x, y, "check_targets")
    check_class_indices(y, x.shape[0] if x.ndim == 1 else x.shape[1], ignore_index)


# --------------------------------------------------------------------------------------------
# Margin losses
# --------------------------------------------------------------------------------------------


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
    x, y = x.astype(_compute(dtype)), y.astype(_compute(dtype))
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
    ct = _compute(dtype)
    x, y = x.astype(ct), y.astype(ct)
    terms = -(y * jax.nn.log_sigmoid(x) + (1 - y) * jax.nn.log_sigmoid(-x))
    if weight is not None:
        terms = terms * _weight(weight, x.shape, "weight", ct)
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
    ct = _compute(dtype)
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
    l = _poison(jnp.sum(h, axis=1) / C, ~in_range).reshape(y.shape)
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
    ct = _compute(dtype)
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
    l = _poison(l, bad).reshape(x.shape[:-1] if x.ndim else ())
    if reduction == "mean" and l.size == 0:  # torch's kernel: an empty batch's mean is 0
        return jnp.zeros((), dtype)
    return _reduction.reduce(l, reduction).astype(dtype)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _compute(dtype) -> np.dtype:
    """The dtype arithmetic runs in: float32 for bfloat16/float16, else ``dtype``."""
    return np.dtype(jnp.float32) if jnp.finfo(dtype).bits < 32 else np.dtype(dtype)


def _is_zero(value) -> bool:
    """A static number equal to 0: the one safe Python branch on a hyperparameter."""
    return isinstance(value, (int, float, np.number)) and value == 0


def _poison(loss: Array, bad: Array) -> Array:
    """``loss`` with ``nan`` where ``bad``: the value and its gradient (``nan * dloss``)."""
    return loss * jnp.where(bad, jnp.nan, 1.0).astype(loss.dtype)


def _weight(weight: ArrayLike, shape: tuple[int, ...], name: str, dtype) -> Array:
    """An elementwise weight, floating, broadcast to ``shape`` (ValueError naming it)."""
    return broadcast_to_shape(as_float(weight, name), shape, name).astype(dtype)


def _along_last(w: Array, ndim: int) -> Array:
    """A per-class ``(C,)`` vector shaped ``(1, ..., 1, C)`` to meet a class-last array."""
    return w.reshape((1,) * (ndim - 1) + w.shape)


def _take_class(x: Array, index: Array) -> Array:
    """Class-last ``x`` at class indices ``index`` (``x``'s shape without the class axis)."""
    return jnp.take_along_axis(x, index[..., None], axis=-1)[..., 0]


def _class_last(x: Array) -> Array:
    """``(C,)`` -> ``(1, C)``; ``(N, C, d1, ...)`` -> ``(N, d1, ..., C)``."""
    return x[None] if x.ndim == 1 else jnp.moveaxis(x, 1, -1)


def _out_shape(x: Array, y: Array) -> tuple[int, ...]:
    """'none' shape of the class-index losses: target's, or ``()`` for an unbatched input
    (torch returns a 0-d loss also for a ``(1,)`` target there)."""
    return () if x.ndim == 1 else y.shape


def _check_same_shape(x: Array, y: Array, fn: str) -> None:
    if x.shape != y.shape:
        raise ValueError(
            f"{fn}: target of shape {y.shape} must have input's shape {x.shape} "
            "(torch refuses a different target size)"
        )


def _check_ignore_index(ignore_index) -> int:
    try:
        return operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"ignore_index must be a Python int, got {ignore_index!r}") from None


def _check_label_smoothing(label_smoothing) -> None:
    """``0 <= label_smoothing <= 1`` when concrete; negative values are refused (torch: 0)."""
    if not is_tracer(label_smoothing) and np.ndim(label_smoothing) != 0:
        raise ValueError(f"label_smoothing must be a scalar, got shape {np.shape(label_smoothing)}")
    if not is_tracer(label_smoothing) and not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")


def _check_index_shapes(x: Array, y: Array, fn: str) -> None:
    """torch's shape rules for class-index targets (class axis 1, or 0 when unbatched)."""
    if x.ndim == 1:
        if y.shape not in ((), (1,)):
            raise ValueError(
                f"{fn}: target for an unbatched input of shape {x.shape} must be a single class "
                f"index of shape () or (1,), got shape {y.shape}"
            )
        return
    if y.ndim != x.ndim - 1:
        expected = (x.shape[0], *x.shape[2:])
        raise ValueError(
            f"{fn}: target must hold class indices of shape {expected} for input of shape "
            f"{x.shape}, got shape {y.shape}"
        )
    if y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{fn}: Expected input batch_size ({x.shape[0]}) to match target batch_size "
            f"({y.shape[0]}) (target of shape {y.shape}, input of shape {x.shape})."
        )
    if y.shape[1:] != x.shape[2:]:
        raise ValueError(
            f"{fn}: target's spatial size mismatch (got input: {x.shape}, target: {y.shape}); "
            f"expected target of shape {(x.shape[0], *x.shape[2:])}"
        )


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
