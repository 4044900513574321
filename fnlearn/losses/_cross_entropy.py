"""Cross-entropy and NLL: :func:`cross_entropy`, :func:`nll_loss`, the weighted mean over
non-ignored class-index targets they share, and :func:`check_targets`, the eager check of
class indices.

The class axis is dimension 1 (dimension 0 for an unbatched ``(C,)`` input), as torch has it.
Arithmetic runs in float32 for bfloat16/float16 inputs. A class index out of range is a value
torch checks at run time (see :mod:`fnlearn.losses`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._typing import Array, ArrayLike
from .._validate import is_tracer
from . import _reduction
from ._checks import (
    as_float,
    as_index,
    check_class_indices,
    check_ignore_index,
    check_label_smoothing,
    class_weight,
    compute_dtype,
    legacy_reduction,
    poison,
    result_dtype,
)
from ._reduction import check_reduction

__all__ = [
    "check_targets",
    "cross_entropy",
    "nll_loss",
]


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
    ignore_index = check_ignore_index(ignore_index)
    check_label_smoothing(label_smoothing)
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
    logits = _class_last(x).astype(compute_dtype(dtype))
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
    ct = compute_dtype(dtype)
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
    ignore_index = check_ignore_index(ignore_index)
    x = as_float(input, "input")
    y = as_index(target, "target")
    _check_index_shapes(x, y, "nll_loss")
    check_class_indices(y, x.shape[0] if x.ndim == 1 else x.shape[1], ignore_index)
    dtype = x.dtype
    lp = _class_last(x).astype(compute_dtype(dtype))
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
    nll = poison(nll, valid & ~in_range)
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
        ignore_index = check_ignore_index(ignore_index)
    if x.ndim == 0:
        raise ValueError("input must have a class dimension, got a 0-d array")
    _check_index_shapes(x, y, "check_targets")
    check_class_indices(y, x.shape[0] if x.ndim == 1 else x.shape[1], ignore_index)


def _is_zero(value) -> bool:
    """A static number equal to 0: the one safe Python branch on a hyperparameter."""
    return isinstance(value, (int, float, np.number)) and value == 0


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
