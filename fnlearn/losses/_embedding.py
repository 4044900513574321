"""Embedding and ranking losses: :func:`hinge_embedding_loss`, :func:`margin_ranking_loss`,
:func:`cosine_embedding_loss`, :func:`triplet_margin_loss`,
:func:`triplet_margin_with_distance_loss` (and its default distance, :func:`pairwise_distance`).

Each computes torch's unreduced loss and hands it to :func:`fnlearn.losses.reduce`. Hinges
``max(0, a)`` are torch's ``clamp_min``: the gradient passes at ``a = 0``, and a ``nan`` stays
``nan`` (with a zero gradient, as torch's).

The result has the dtype torch returns (the widest floating operand, unless a loss says
otherwise); arithmetic runs in float32 for bfloat16/float16, as torch's CPU kernels do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._typing import Array, ArrayLike
from .._validate import is_number, is_tracer
from . import _reduction
from ._checks import (
    as_float,
    broadcast_pair,
    compute_dtype,
    legacy_reduction,
    result_dtype,
)
from ._reduction import check_reduction
from ._regression import torch_abs

#: torch's ``EPSILON`` in ``cosine_embedding_loss``, added to each squared norm.
_COSINE_EPS = float(np.float32(1e-12))  # a float32 constant in ATen (9.99999996e-13)


def hinge_embedding_loss(
    input: ArrayLike,
    target: ArrayLike,
    margin: float = 1.0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.hinge_embedding_loss`.

    .. math::
        \ell_i = [y_i \ne -1]\; x_i \;+\; [y_i \ne 1]\, \max(0, \Delta - x_i)

    Legend: :math:`x` = ``input`` (e.g. a distance), :math:`y` = ``target`` in
    :math:`\{1, -1\}`, :math:`\Delta` = ``margin``. So :math:`\ell_i = x_i` for :math:`y_i = 1`
    and :math:`\max(0, \Delta - x_i)` for :math:`y_i = -1`; any other label gets both terms, as
    in torch.

    Reductions: ``'mean'`` divides :math:`\sum_i \ell_i` by the number of elements.

    Args:
        input: any shape, floating; the loss has its dtype.
        target: labels :math:`\pm 1` (any numeric dtype), broadcastable to ``input``.
        margin: :math:`\Delta`.
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        input :math:`(*)`, target :math:`(*)`; output a scalar, or the broadcast shape for
        ``'none'``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import hinge_embedding_loss
        >>> x, y = jnp.array([0.5, 0.25]), jnp.array([1, -1])
        >>> float(hinge_embedding_loss(x, y, reduction="sum"))
        1.25

    .. warning::
        ``optax.losses.hinge_loss`` is a different loss (:math:`\max(0, 1 - y x)`).
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    x = as_float(input, "input")
    dtype = x.dtype
    x, y = broadcast_pair(x.astype(compute_dtype(dtype)), jnp.asarray(target), warn=False)
    zero = jnp.zeros_like(x)
    l = jnp.where(y != 1, _clamp_min0(jnp.asarray(margin, x.dtype) - x), zero)
    l = l + jnp.where(y != -1, x, zero)
    return _reduction.reduce(l, reduction).astype(dtype)


def margin_ranking_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    margin: float = 0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.margin_ranking_loss`.

    .. math::
        \ell_i = \max\!\left(0,\; -y_i\, (x_{1,i} - x_{2,i}) + \Delta\right)

    Legend: :math:`x_1` = ``input1``, :math:`x_2` = ``input2``, :math:`y` = ``target``
    (1: :math:`x_1` should rank higher, -1: :math:`x_2` should), :math:`\Delta` = ``margin``.

    Reductions: ``'mean'`` divides :math:`\sum_i \ell_i` by the number of elements.

    Args:
        input1: scores, floating.
        input2: scores, same number of dimensions as ``input1``.
        target: labels :math:`\pm 1`, same number of dimensions; an integer array is cast.
        margin: :math:`\Delta`.
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        input1, input2, target :math:`(N)` or :math:`()` (any shapes of one rank that
        broadcast); a rank mismatch raises ``ValueError``. Output a scalar, or the broadcast
        shape for ``'none'``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import margin_ranking_loss
        >>> x1, x2, y = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0])
        >>> float(margin_ranking_loss(x1, x2, y, margin=0.5))
        0.75

    optax has no margin ranking loss.
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    x1 = as_float(input1, "input1")
    x2 = as_float(input2, "input2")
    y = jnp.asarray(target)
    if not x1.ndim == x2.ndim == y.ndim:
        raise ValueError(
            "margin_ranking_loss: input1, input2 and target must have the same number of "
            f"dimensions, got shapes input1: {x1.shape}, input2: {x2.shape}, target: {y.shape}"
        )
    dtype = result_dtype(x1, x2, y)
    ct = compute_dtype(dtype)
    named = {"input1": x1.astype(ct), "input2": x2.astype(ct), "target": y.astype(ct)}
    x1, x2, y = _broadcast(named)
    l = _clamp_min0(-y * (x1 - x2) + jnp.asarray(margin, ct))
    return _reduction.reduce(l, reduction).astype(dtype)


def cosine_embedding_loss(
    input1: ArrayLike,
    input2: ArrayLike,
    target: ArrayLike,
    margin: float = 0,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.cosine_embedding_loss`.

    .. math::
        c_i = \frac{\sum_d x_{1,id}\, x_{2,id}}
                   {\sqrt{\left(\sum_d x_{1,id}^2 + \epsilon\right)
                          \left(\sum_d x_{2,id}^2 + \epsilon\right)}}, \qquad
        \ell_i = \begin{cases} 1 - c_i & y_i = 1 \\ \max(0, c_i - \Delta) & y_i = -1 \\
                               0 & \text{otherwise} \end{cases}

    Legend: :math:`x_1` = ``input1``, :math:`x_2` = ``input2``, :math:`y` = ``target``,
    :math:`\Delta` = ``margin``, :math:`\epsilon = 10^{-12}` added to each squared norm (torch's
    placement), so a zero vector gives :math:`c = 0` and :math:`\ell = 1` for :math:`y = 1`,
    with a finite gradient.

    Reductions: ``'mean'`` divides :math:`\sum_i \ell_i` by the number of pairs.

    Args:
        input1: embeddings, floating.
        input2: embeddings, same rank as ``input1`` (broadcastable to it).
        target: labels :math:`\pm 1` (any numeric dtype).
        margin: :math:`\Delta`, usually in :math:`[-1, 1]`.
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        input1, input2 :math:`(N, D)` with target :math:`(N)`, or input1, input2 :math:`(D)` with
        a 0-d target (an unbatched pair). Other ranks raise ``ValueError``. Output a scalar, or
        :math:`(N)` / :math:`()` for ``'none'``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import cosine_embedding_loss
        >>> a, b = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]])
        >>> float(cosine_embedding_loss(a, b, jnp.array([1])))
        1.0

    .. warning::
        ``optax.losses.cosine_distance`` matches the :math:`y = 1` branch only up to
        :math:`\approx 10^{-12}` (it clips the norms instead of adding :math:`\epsilon`), and
        gives ``nan`` for a zero vector where torch and fnlearn give 1.
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    x1 = as_float(input1, "input1")
    x2 = as_float(input2, "input2")
    y = jnp.asarray(target)
    if y.ndim not in (0, 1):
        raise ValueError(
            f"target must be 0-D or 1-D, got shape {y.shape} "
            "(torch: 0D or 1D target tensor expected, multi-target not supported)"
        )
    if not x1.ndim == x2.ndim == y.ndim + 1:
        raise ValueError(
            f"a {y.ndim}-D target expects {y.ndim + 1}-D input1 and input2, "
            f"got shapes input1: {x1.shape}, input2: {x2.shape}"
        )
    dtype = result_dtype(x1, x2)
    ct = compute_dtype(dtype)
    x1, x2 = broadcast_pair(x1.astype(ct), x2.astype(ct), warn=False, names=("input1", "input2"))
    axis = y.ndim
    # torch adds eps in the inputs' dtype: in float16 it rounds to 0, so zero vectors give nan
    eps = jnp.asarray(_COSINE_EPS, dtype).astype(ct)
    prod_sum = jnp.sum(x1 * x2, axis=axis)
    mag_square1 = jnp.sum(x1 * x1, axis=axis) + eps
    mag_square2 = jnp.sum(x2 * x2, axis=axis) + eps
    cos = prod_sum / jnp.sqrt(mag_square1 * mag_square2)
    cos, y = broadcast_pair(cos, y, warn=False, names=("input1", "target"))
    zero = jnp.zeros_like(cos)
    l = jnp.where(y == 1, 1 - cos, zero)
    l = l + jnp.where(y == -1, _clamp_min0(cos - jnp.asarray(margin, ct)), zero)
    return _reduction.reduce(l, reduction).astype(dtype)


def triplet_margin_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.triplet_margin_loss`.

    .. math::
        d(u, v) = \Big\| u - v + \epsilon \Big\|_p
                = \Big(\sum_d |u_d - v_d + \epsilon|^p\Big)^{1/p}, \qquad
        \ell_i = \max\!\left(0,\; d(a_i, p_i) - d_i^- + \Delta\right)

    with :math:`d_i^- = d(a_i, n_i)`, or :math:`\min(d(a_i, n_i), d(p_i, n_i))` when ``swap``.

    Legend: :math:`a` = ``anchor``, :math:`p` = ``positive``, :math:`n` = ``negative``,
    :math:`\Delta` = ``margin``, :math:`\epsilon` = ``eps`` (added to the difference, as
    ``torch.pairwise_distance``), :math:`\|\cdot\|_p` the ``p``-norm over the last dimension
    (``p = inf`` the max norm, ``p = 0`` the number of nonzeros). Gradients at a zero distance
    are 0, as torch's.

    Reductions: ``'mean'`` divides :math:`\sum_i \ell_i` by the number of triplets.

    Args:
        anchor: embeddings, floating.
        positive: embeddings, same rank as ``anchor``.
        negative: embeddings, same rank as ``anchor``.
        margin: :math:`\Delta > 0` (otherwise ``ValueError``).
        p: the norm degree, a Python number (static).
        eps: added to each difference.
        swap: use the distance swap of Balntas et al. (2016).
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        anchor, positive, negative :math:`(N, D)` or :math:`(D)`, all of one rank (broadcast
        against each other); output a scalar, or :math:`(N)` / :math:`()` for ``'none'``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import triplet_margin_loss
        >>> a, p, n = jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.array([[3.0, 4.0]])
        >>> round(float(triplet_margin_loss(a, p, n, margin=6.0)), 4)
        1.0

    .. warning::
        ``optax.losses.triplet_margin_loss`` computes :math:`(\sum_d (u_d - v_d)^p +
        \epsilon)^{1/p}`: :math:`\epsilon` in another place, no absolute value (odd ``p`` gives
        ``nan`` or wrong values; ``p = 1`` differs by orders of magnitude) and no ``swap``.
        It agrees with torch only approximately (:math:`\sim 10^{-6}`) for ``p = 2``.

    References:
        Balntas et al., "Learning local feature descriptors with triplets and shallow
        convolutional neural networks", BMVC 2016.
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    check_triplet_margin(margin)
    check_norm_degree(p)
    a, pos, neg = _triplet(anchor, positive, negative)
    dtype = result_dtype(a, pos, neg)
    ct = compute_dtype(dtype)
    a, pos, neg = _broadcast(
        {"anchor": a.astype(ct), "positive": pos.astype(ct), "negative": neg.astype(ct)}
    )
    eps_ = jnp.asarray(eps, ct)
    dist_pos = _distance(a, pos, eps_, p)
    dist_neg = _distance(a, neg, eps_, p)
    if swap:
        dist_neg = jnp.minimum(dist_neg, _distance(pos, neg, eps_, p))
    l = _clamp_min0(jnp.asarray(margin, ct) + dist_pos - dist_neg)
    return _reduction.reduce(l, reduction).astype(dtype)


def pairwise_distance(
    x1: ArrayLike, x2: ArrayLike, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.pairwise_distance`.

    .. math::
        d(x_1, x_2) = \Big\| x_1 - x_2 + \epsilon \Big\|_p
                    = \Big(\sum_d |x_{1,d} - x_{2,d} + \epsilon|^p\Big)^{1/p}

    over the last dimension (:math:`\epsilon` = ``eps`` is added to each difference; ``p =
    inf`` the max norm, ``p = 0`` the number of nonzeros). Gradients at a zero distance are 0,
    as torch's. The default distance of :func:`triplet_margin_with_distance_loss`, and what
    :func:`triplet_margin_loss` measures.

    Args:
        x1: floating array.
        x2: floating array, broadcastable with ``x1``.
        p: the norm degree, a Python number (static).
        eps: added to each difference.
        keepdim: keep the reduced last dimension (size 1).

    Shape:
        x1, x2 :math:`(N, D)` or :math:`(D)` (broadcast against each other); output
        :math:`(N)` or :math:`()`, with a trailing 1 for ``keepdim``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import pairwise_distance
        >>> round(float(pairwise_distance(jnp.array([3.0, 4.0]), jnp.zeros(2), eps=0.0)), 4)
        5.0
    """
    check_norm_degree(p)
    a, b = as_float(x1, "x1"), as_float(x2, "x2")
    dtype = result_dtype(a, b)
    ct = compute_dtype(dtype)
    a, b = _broadcast({"x1": a.astype(ct), "x2": b.astype(ct)})
    d = _distance(a, b, jnp.asarray(eps, ct), p)
    if keepdim and a.ndim:
        d = d[..., None]
    return d.astype(dtype)


def triplet_margin_with_distance_loss(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    distance_function: Callable[[Array, Array], Array] | None = None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.triplet_margin_with_distance_loss`.

    .. math::
        \ell_i = \max\!\left(0,\; d(a_i, p_i) - d_i^- + \Delta\right)

    with :math:`d_i^- = d(a_i, n_i)`, or :math:`\min(d(a_i, n_i), d(p_i, n_i))` when ``swap``;
    :math:`d` = ``distance_function``, by default :func:`pairwise_distance` (:math:`\|u - v +
    10^{-6}\|_2` over the last dimension, torch's ``PairwiseDistance()``), with which this is
    :func:`triplet_margin_loss` with ``p=2``.

    Legend: :math:`a` = ``anchor``, :math:`p` = ``positive``, :math:`n` = ``negative``,
    :math:`\Delta` = ``margin``. The distances are the function's output, in its dtype (torch
    calls it on the inputs as given); the hinge passes the gradient at 0, as torch's
    ``clamp_min``.

    Reductions: ``'mean'`` is the mean of :math:`\ell` over all its elements, ``'sum'`` the sum.

    Args:
        anchor: embeddings, floating.
        positive: embeddings, same rank as ``anchor``.
        negative: embeddings, same rank as ``anchor``.
        distance_function: ``(x, y) -> distances``, a JAX function (any jit-able callable,
            e.g. ``functools.partial(pairwise_distance, p=1)`` for torch's
            ``nn.PairwiseDistance(p=1)``); ``None``: :func:`pairwise_distance`.
        margin: :math:`\Delta > 0` (otherwise ``ValueError``).
        swap: use the distance swap of Balntas et al. (2016).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        anchor, positive, negative :math:`(N, D)` or :math:`(D)`, all of one rank; output a
        scalar, or the distances' shape (:math:`(N)` / :math:`()`) for ``'none'``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import triplet_margin_with_distance_loss
        >>> a, p, n = jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.array([[3.0, 4.0]])
        >>> l1 = lambda x, y: jnp.sum(jnp.abs(x - y), axis=-1)
        >>> float(triplet_margin_with_distance_loss(a, p, n, distance_function=l1, margin=9.0))
        2.0

    References:
        Balntas et al., "Learning local feature descriptors with triplets and shallow
        convolutional neural networks", BMVC 2016.
    """
    reduction = check_reduction(reduction)
    check_triplet_margin(margin)
    if distance_function is not None and not callable(distance_function):
        raise TypeError(f"distance_function must be callable or None, got {distance_function!r}")
    a, pos, neg = _triplet(anchor, positive, negative)
    distance = pairwise_distance if distance_function is None else distance_function
    dist_pos = jnp.asarray(distance(a, pos))
    dist_neg = jnp.asarray(distance(a, neg))
    if swap:
        dist_neg = jnp.minimum(dist_neg, jnp.asarray(distance(pos, neg)))
    l = _clamp_min0(jnp.asarray(margin, dist_pos.dtype) + dist_pos - dist_neg)
    return _reduction.reduce(l, reduction)


def _triplet(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike
             ) -> tuple[Array, Array, Array]:
    """The three embeddings as floating arrays, of one rank (else ``ValueError``)."""
    a = as_float(anchor, "anchor")
    pos = as_float(positive, "positive")
    neg = as_float(negative, "negative")
    if not a.ndim == pos.ndim == neg.ndim:
        raise ValueError(
            "anchor, positive and negative must have the same number of dimensions, got "
            f"anchor {a.ndim}D, positive {pos.ndim}D and negative {neg.ndim}D"
        )
    return a, pos, neg


def check_triplet_margin(margin: float) -> None:
    """triplet_margin_loss's ``margin > 0`` (checked when ``margin`` is concrete)."""
    if not is_tracer(margin) and not np.all(np.asarray(margin) > 0):
        raise ValueError(f"margin must be greater than 0, got {margin}")


def check_norm_degree(p: float) -> None:
    """triplet_margin_loss's ``p``: a Python number, since the norm's form depends on it."""
    if not is_number(p):
        raise TypeError(f"p must be a Python number (the norm degree is static), got {p!r}")


def _clamp_min0(a: Array) -> Array:
    """``max(a, 0)`` as torch's ``clamp_min``: ``nan`` stays ``nan``; the gradient is 1 where
    ``a >= 0`` (also at 0) and 0 elsewhere, ``nan`` included (torch's ``a >= min`` mask)."""
    kept_nan = jnp.where(jnp.isnan(a), lax.stop_gradient(a), jnp.zeros_like(a))
    return jnp.where(a >= 0, a, kept_nan)


def _distance(u: Array, v: Array, eps: Array, p: float) -> Array:
    """``torch.pairwise_distance(u, v, p, eps)``: ``||u - v + eps||_p`` over the last axis; a
    0-d pair gives ``|u - v + eps|`` (torch reads it as one element)."""
    diff = u - v + eps
    return _pnorm(diff if diff.ndim else diff[None], p)


def _pnorm(d: Array, p: float) -> Array:
    """``torch.norm(d, p, dim=-1)`` with torch's gradients (0 where the norm is 0)."""
    a = torch_abs(d)
    if p == math.inf:
        return _extreme(a, True)
    if p == -math.inf:
        return _extreme(a, False)
    if p == 0:
        return jnp.sum((a != 0).astype(d.dtype), axis=-1)
    if p == 1:
        return jnp.sum(a, axis=-1)
    if p < 0:
        return jnp.sum(a**p, axis=-1) ** (1 / p)
    if p == 2:
        s = jnp.sum(d * d, axis=-1)
    else:
        a_safe = jnp.where(a == 0, jnp.ones_like(a), a)
        s = jnp.sum(jnp.where(a == 0, jnp.zeros_like(a), a_safe**p), axis=-1)
    s_safe = jnp.where(s == 0, jnp.ones_like(s), s)
    return jnp.where(s == 0, jnp.zeros_like(s), jnp.sqrt(s_safe) if p == 2 else s_safe ** (1 / p))


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _extreme(a: Array, largest: bool) -> Array:
    """``max`` (or ``min``) over the last axis with torch's norm gradient: split equally
    between the entries equal to it, and 0 when none is (a ``nan`` entry; ``jnp.max``'s
    gradient divides by that count of 0 there)."""
    return jnp.max(a, axis=-1) if largest else jnp.min(a, axis=-1)


@_extreme.defjvp
def _extreme_jvp(largest, primals, tangents):
    (a,), (t,) = primals, tangents
    out = _extreme(a, largest)
    hit = a == out[..., None]
    count = jnp.sum(hit, axis=-1).astype(a.dtype)
    tangent = jnp.sum(jnp.where(hit, t, jnp.zeros_like(t)), axis=-1)
    return out, tangent / jnp.maximum(count, 1)


def _broadcast(named: dict[str, Array]) -> tuple[Array, ...]:
    """Broadcast same-rank arrays to one shape; a mismatch raises ``ValueError`` naming them."""
    shapes = {n: a.shape for n, a in named.items()}
    try:
        shape = jnp.broadcast_shapes(*shapes.values())
    except ValueError:
        listed = ", ".join(f"{n} {s}" for n, s in shapes.items())
        raise ValueError(f"shapes cannot be broadcast together: {listed}") from None
    return tuple(jnp.broadcast_to(a, shape) for a in named.values())
