"""The final linear layer and cross-entropy in one call, chunked over the batch:
:func:`linear_cross_entropy` (torch 2.13's ``linear_cross_entropy``).

The ``(N, C)`` logits of a large vocabulary are the biggest buffer of a language model's step.
Here the batch is cut into chunks of rows; one ``lax.scan`` computes each chunk's logits and its
:func:`cross_entropy` (``reduction='none'``), and the chunk's body is rematerialized in the
backward pass (``jax.checkpoint``), so neither pass holds more than one chunk's logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from .._typing import Array, ArrayLike
from .._validate import is_int
from . import _reduction
from ._checks import as_float, check_class_indices, check_label_smoothing, class_weight
from ._cross_entropy import cross_entropy, index_target_mean
from ._reduction import check_reduction

__all__ = ["LinearCrossEntropyOptions", "linear_cross_entropy"]


@dataclass(frozen=True)
class LinearCrossEntropyOptions:
    """How :func:`linear_cross_entropy` cuts the batch (torch's
    :class:`torch.nn.LinearCrossEntropyOptions`, the fields that mean something in JAX).

    Attributes:
        batch_chunk_size: rows per chunk, or ``None`` to let ``chunking_method`` pick.
        chunking_method: ``"aspect_ratio"`` (a chunk's ``(rows, C)`` logits about the size
            of the ``(N, in_features)`` input: ``next_pow2(ceil(N / ceil(C /
            in_features)))`` rows), ``"aspect_ratio:k"`` (that divided by ``k``), ``"auto"``
            (torch's default: ``"aspect_ratio:2"``, or ``batch_chunk_size`` when that is
            given), or ``None`` to use ``batch_chunk_size`` (all rows when that is ``None``).

    torch's other fields (``allow_retain_graph``, ``acc_policy``, ``acc_dtype``) steer its
    in-place backward buffers and have no JAX counterpart; a torch options object is accepted
    too (its ``batch_chunk_size`` and ``chunking_method`` are read).
    """

    batch_chunk_size: int | None = None
    chunking_method: str | None = "auto"

    def __post_init__(self) -> None:
        size = self.batch_chunk_size
        if size is not None and not is_int(size, 1):
            raise ValueError(f"batch_chunk_size must be positive int or None, got "
                             f"{self.batch_chunk_size!r}")
        _aspect_factor(self.chunking_method)


def _aspect_factor(method: str | None) -> int | None:
    """The ``k`` of ``"aspect_ratio:k"`` (1 for ``"aspect_ratio"``, 2 for ``"auto"``)."""
    if method is None:
        return None
    if method == "auto":
        return 2
    name, sep, factor = str(method).partition(":")
    factor = factor if sep else "1"
    if not (name == "aspect_ratio" and factor.isdigit() and int(factor) > 0):
        raise ValueError(f"invalid chunking_method: {method!r}")
    return int(factor)


#: Chunks of the default (``options=None``): each scan step adds its chunk's weight gradient
#: into the whole ``(C, in_features)`` one, so many small chunks cost time (torch's
#: aspect-ratio rule gives 2-row chunks at n=512, d=256, C=32768: 17x slower than unchunked
#: on CPU); 8 chunks keep 1/8 of the logits live at about twice the unchunked time.
DEFAULT_CHUNKS = 8


def _chunk_rows(options: Any, n: int, in_features: int, num_classes: int) -> int:
    """Rows per chunk: ``ceil(n / DEFAULT_CHUNKS)`` without options, else torch's
    ``LinearCrossEntropyOptions._adjust`` rule."""
    if options is None:
        return max(-(-n // DEFAULT_CHUNKS), 1)
    given = getattr(options, "batch_chunk_size", None)
    method = getattr(options, "chunking_method", None)
    if method == "auto" and given is not None:
        method = None  # an explicit size wins over the default rule, as in torch
    size = n if given is None else min(given, n)
    factor = _aspect_factor(method)
    if factor is not None:
        rows = math.ceil(n / max(math.ceil(num_classes / max(in_features, 1)), 1))
        size = min((1 << max(rows - 1, 0).bit_length()) // factor, n)
        if given is not None and given != size:
            raise ValueError(f"batch_chunk_size (={given}) and chunking_method ('{method}') give "
                             f"different chunk sizes ({given} vs {size}); pass only one.")
    return max(int(size), 1)


def linear_cross_entropy(
    input: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    options: LinearCrossEntropyOptions | Any | None = None,
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.linear_cross_entropy`.

    .. math::
        z = x A^\top + b, \qquad \ell = \mathrm{cross\_entropy}(z, y, \ldots)

    Legend: :math:`x` = ``input``, :math:`A` = ``linear_weight``, :math:`b` =
    ``linear_bias`` (0 when not given), :math:`y` = ``target``; ``weight``, ``reduction``,
    ``ignore_index`` and ``label_smoothing`` are :func:`cross_entropy`'s, with its formulas
    and reductions: ``'mean'`` over the summed weight of the non-ignored class-index targets,
    the plain mean for probability targets, ``nan`` when every target is ignored.
    ``ignore_index=None`` means -100 for index targets (torch's mapping); with probability
    targets it must stay ``None``.

    The logits are never materialized whole: the :math:`N` rows are processed in chunks
    (8 chunks by default; ``options`` sets the size, ``LinearCrossEntropyOptions()`` gives
    torch's ``"aspect_ratio:2"`` rule), one ``lax.scan`` step per chunk, and the backward
    pass recomputes each chunk's logits instead of storing them (``jax.checkpoint``). Peak
    memory is then one chunk's :math:`(\text{rows}, C)` logits and gradient instead of
    :math:`(N, C)`, at the price of a second forward matmul in the backward pass and of one
    update of the whole weight gradient per chunk (small chunks are slow; see
    ``benchmarks/linear_cross_entropy.py``). Values equal
    ``cross_entropy(input @ linear_weight.T + linear_bias, target, ...)`` to rounding.

    Args:
        input: :math:`(\text{in})` or :math:`(N, \text{in})`, floating.
        linear_weight: :math:`(C, \text{in})`, or :math:`(C, d_1, \ldots, d_K, \text{in})` for
            a K-dimensional loss (batched ``input`` only).
        target: class indices :math:`()`, :math:`(N)` or :math:`(N, d_1, \ldots, d_K)`, or
            class probabilities of the logits' shape :math:`(C)`, :math:`(N, C)`,
            :math:`(N, C, d_1, \ldots, d_K)`.
        linear_bias: :math:`(C)` or :math:`(C, d_1, \ldots, d_K)`.
        weight: per-class weight :math:`(C)`.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        ignore_index: the ignored class index (``None``: -100 for index targets).
        label_smoothing: :math:`\varepsilon \in [0, 1]`.
        options: a :class:`LinearCrossEntropyOptions` (or torch's, read by attribute) setting
            the chunk size; ``None``: 8 chunks. Unlike torch's (where ``None`` is the
            unchunked reference path), every call is chunked.

    Shape:
        As :func:`cross_entropy` on the logits :math:`(N, C, d_1, \ldots, d_K)` (or
        :math:`(C)` unbatched); output a scalar, or target's shape (without the class axis)
        for ``'none'``.

    Raises at trace time, with torch's messages (``RuntimeError``): ``input`` not 1-D or 2-D,
    ``linear_weight`` below 2-D, different in_features, a ``linear_bias`` of another shape,
    a K-dimensional weight with unbatched input, ``ignore_index`` with probability targets.
    On a concrete ``target``, torch's ``IndexError: Target 7 is out of bounds.``; under
    ``jit`` an out-of-range index gives ``nan`` (see :func:`cross_entropy`).

    .. warning::
        optax has no fused linear + cross-entropy; ``optax.losses.
        softmax_cross_entropy_with_integer_labels(input @ linear_weight.T, target)`` equals
        ``reduction='none'`` without ``weight``/``ignore_index``/smoothing, with the logits
        materialized.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import linear_cross_entropy
        >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> A = jnp.array([[2.0, 0.0], [0.0, 0.0], [0.0, 1.0]])  # 3 classes
        >>> round(float(linear_cross_entropy(x, A, jnp.array([0, 2]))), 4)
        0.3955
    """
    reduction = check_reduction(reduction)
    check_label_smoothing(label_smoothing)
    x = as_float(input, "input")
    A = as_float(linear_weight, "linear_weight")
    y = jnp.asarray(target)
    if x.ndim not in (1, 2):
        raise RuntimeError(f"expected input with dimensionality 1 or 2, got {x.ndim}")
    if A.ndim < 2:
        raise RuntimeError(
            f"expected linear_weight with dimensionality at least 2, got {A.ndim}")
    in_features = x.shape[-1]
    if in_features != A.shape[-1]:
        raise RuntimeError(
            "expected equal input and linear_weight last dimensions (in_features), "
            f"got {in_features} and {A.shape[-1]}, respectively")
    C, out_features = A.shape[0], A.shape[1:-1]
    b = None if linear_bias is None else as_float(linear_bias, "linear_bias")
    if b is not None and b.shape != (C, *out_features):
        raise RuntimeError(f"expected linear_bias shape {(C, *out_features)}, got {b.shape}")
    if out_features and x.ndim == 1:
        raise RuntimeError(
            f"K-dimensional loss defined by linear_weight shape {A.shape} requires batched "
            f"input, (N, {in_features}), got unbatched input with shape {x.shape}")
    if x.dtype != A.dtype or (b is not None and b.dtype != A.dtype):
        raise TypeError(f"input, linear_weight and linear_bias must have one dtype, got "
                        f"{x.dtype}, {A.dtype} and {None if b is None else b.dtype}")
    logits_shape = (*x.shape[:-1], C, *out_features)
    probabilities = y.shape == logits_shape
    if probabilities and ignore_index is not None:
        raise RuntimeError("ignore_index cannot be specified when target contains probabilities")
    ignore = -100 if ignore_index is None else ignore_index
    w = class_weight(weight, C)
    if not probabilities and jnp.issubdtype(y.dtype, jnp.integer):
        check_class_indices(y, C, ignore)

    unbatched = x.ndim == 1
    if unbatched:
        x, y = x[None], y[None]
    n = x.shape[0]
    rows = _chunk_rows(options, n, in_features, C * math.prod(out_features))
    chunks = -(-n // rows) if n else 0
    pad = chunks * rows - n
    pad_value = 0 if probabilities else ignore
    xs = jnp.pad(x, ((0, pad), (0, 0))).reshape(chunks, rows, in_features)
    ys = jnp.pad(y, ((0, pad),) + ((0, 0),) * (y.ndim - 1), constant_values=pad_value)
    ys = ys.reshape(chunks, rows, *y.shape[1:])
    A_flat = A.reshape(-1, in_features)
    b_flat = None if b is None else b.reshape(-1)

    @jax.checkpoint  # the backward pass recomputes the chunk's logits instead of storing them
    def chunk_loss(x_c: Array, y_c: Array) -> Array:
        z = x_c @ A_flat.T
        if b_flat is not None:
            z = z + b_flat[None, :]
        z = z.reshape(rows, C, *out_features)
        return cross_entropy(z, y_c, weight=w, ignore_index=ignore, reduction="none",
                             label_smoothing=label_smoothing)

    def body(carry: None, chunk: tuple[Array, Array]) -> tuple[None, Array]:
        return carry, chunk_loss(*chunk)

    _, losses = lax.scan(body, None, (xs, ys))
    loss = losses.reshape(chunks * rows, *losses.shape[2:])[:n]
    if reduction == "mean" and not probabilities:
        return index_target_mean(loss, y, w, ignore, C)
    out = _reduction.reduce(loss, reduction)
    return out[0] if unbatched and reduction == "none" else out
