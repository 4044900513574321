"""torch.nn-style loss classes: options fixed and validated at construction, called like torch.

``CrossEntropyLoss(label_smoothing=0.1)(input, target)`` is
``cross_entropy(input, target, label_smoothing=0.1)``: each class has its torch.nn
constructor signature (array options such as ``weight`` and ``pos_weight`` are given there),
checks the options torch checks when the instance is built (``reduction``, ``beta``,
``delta``, ``margin``, ``p``, ``label_smoothing``, ``ignore_index``, the weights' dtype and
rank), and forwards each call to the functional form with the stored options. Shape and value
checks on the call's arrays happen at call (trace) time, in the function.

Instances are immutable (assigning an attribute raises ``AttributeError``), hold only Python
values and jax arrays, and are safe to close over in ``jax.jit``: a stored weight becomes a
constant of the compiled computation. Options are readable as attributes, as in torch
(``loss.reduction``, ``loss.weight``).
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias

import jax
import numpy as np

from .._typing import Array, ArrayLike
from .._validate import is_tracer
from ._binary_cross_entropy import binary_cross_entropy, binary_cross_entropy_with_logits
from ._checks import as_float, check_ignore_index, check_label_smoothing, legacy_reduction
from ._cross_entropy import cross_entropy, nll_loss
from ._ctc import ctc_loss
from ._embedding import (
    check_norm_degree,
    check_triplet_margin,
    cosine_embedding_loss,
    hinge_embedding_loss,
    margin_ranking_loss,
    triplet_margin_loss,
    triplet_margin_with_distance_loss,
)
from ._margin import (
    multi_margin_loss,
    multilabel_margin_loss,
    multilabel_soft_margin_loss,
    soft_margin_loss,
)
from ._probabilistic import gaussian_nll_loss, kl_div, poisson_nll_loss
from ._reduction import check_reduction
from ._regression import check_beta, check_delta, huber_loss, l1_loss, mse_loss, smooth_l1_loss

_ARRAY_OPTIONS = ("weight", "pos_weight")
#: torch's deprecated ``size_average`` / ``reduce`` flags (folded into ``reduction``).
_Legacy: TypeAlias = "bool | None"


class _Loss:
    """Base of the loss classes: store validated options, call ``_fn(*arrays, **options)``.

    A subclass names its function (``_fn``), spells out torch's constructor signature and
    passes every option to ``_Loss.__init__`` by keyword; ``size_average``/``reduce`` (torch's
    deprecated arguments) are folded into ``reduction`` there.
    """

    _fn: ClassVar[Callable[..., Array]]
    _extra_reductions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options: Any) -> None:
        if "size_average" in options or "reduce" in options:
            options["reduction"] = legacy_reduction(
                options.pop("size_average", None), options.pop("reduce", None),
                options["reduction"])
        check_reduction(options["reduction"], self._extra_reductions)
        for name in _ARRAY_OPTIONS:
            if options.get(name) is not None:
                options[name] = as_float(options[name], name)
        object.__setattr__(self, "_options", MappingProxyType(options))

    def __call__(self, input: ArrayLike, target: ArrayLike) -> Array:
        return type(self)._fn(input, target, **self._options)

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("_options", {})
        if name in options:
            return options[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: build a new one to change "
                             f"{name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self._options.items())
        return f"{type(self).__name__}({shown})"


def _short(value: Any) -> str:
    if isinstance(value, (jax.Array, np.ndarray)):
        return f"Array(shape={tuple(value.shape)}, dtype={value.dtype})"
    return repr(value)


def _one_dimensional(weight: ArrayLike | None) -> None:
    """A per-class weight must be 1-D (torch: ``weight must be one-dimensional``)."""
    if weight is not None and np.ndim(weight) != 1:
        raise ValueError(f"weight must be one-dimensional (one entry per class), got shape "
                         f"{np.shape(weight)}")


# --- regression ------------------------------------------------------------------------------

class MSELoss(_Loss):
    """JAX counterpart of :class:`torch.nn.MSELoss`; calls :func:`mse_loss`."""

    _fn = staticmethod(mse_loss)

    def __init__(self, size_average: _Legacy = None, reduce: _Legacy = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average=size_average, reduce=reduce, reduction=reduction)


class L1Loss(_Loss):
    """JAX counterpart of :class:`torch.nn.L1Loss`; calls :func:`l1_loss`."""

    _fn = staticmethod(l1_loss)

    def __init__(self, size_average: _Legacy = None, reduce: _Legacy = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average=size_average, reduce=reduce, reduction=reduction)


class SmoothL1Loss(_Loss):
    """JAX counterpart of :class:`torch.nn.SmoothL1Loss`; calls :func:`smooth_l1_loss`."""

    _fn = staticmethod(smooth_l1_loss)

    def __init__(self, size_average: _Legacy = None, reduce: _Legacy = None,
                 reduction: str = "mean", beta: float = 1.0) -> None:
        check_beta(beta)
        super().__init__(size_average=size_average, reduce=reduce, reduction=reduction,
                         beta=beta)


class HuberLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.HuberLoss`; calls :func:`huber_loss`."""

    _fn = staticmethod(huber_loss)

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        check_delta(delta)
        super().__init__(reduction=reduction, delta=delta)


# --- classification --------------------------------------------------------------------------

class BCELoss(_Loss):
    """JAX counterpart of :class:`torch.nn.BCELoss`; calls :func:`binary_cross_entropy`."""

    _fn = staticmethod(binary_cross_entropy)

    def __init__(self, weight: ArrayLike | None = None, size_average: _Legacy = None,
                 reduce: _Legacy = None, reduction: str = "mean") -> None:
        super().__init__(weight=weight, size_average=size_average, reduce=reduce,
                         reduction=reduction)


class BCEWithLogitsLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.BCEWithLogitsLoss`; calls
    :func:`binary_cross_entropy_with_logits`."""

    _fn = staticmethod(binary_cross_entropy_with_logits)

    def __init__(self, weight: ArrayLike | None = None, size_average: _Legacy = None,
                 reduce: _Legacy = None, reduction: str = "mean",
                 pos_weight: ArrayLike | None = None) -> None:
        super().__init__(weight=weight, size_average=size_average, reduce=reduce,
                         reduction=reduction, pos_weight=pos_weight)


class CrossEntropyLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.CrossEntropyLoss`; calls :func:`cross_entropy`."""

    _fn = staticmethod(cross_entropy)

    def __init__(self, weight: ArrayLike | None = None, size_average: _Legacy = None,
                 ignore_index: int = -100, reduce: _Legacy = None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        _one_dimensional(weight)
        check_label_smoothing(label_smoothing)
        super().__init__(weight=weight, size_average=size_average,
                         ignore_index=check_ignore_index(ignore_index), reduce=reduce,
                         reduction=reduction, label_smoothing=label_smoothing)


class NLLLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.NLLLoss`; calls :func:`nll_loss`."""

    _fn = staticmethod(nll_loss)

    def __init__(self, weight: ArrayLike | None = None, size_average: _Legacy = None,
                 ignore_index: int = -100, reduce: _Legacy = None, reduction: str = "mean") -> None:
        _one_dimensional(weight)
        super().__init__(weight=weight, size_average=size_average,
                         ignore_index=check_ignore_index(ignore_index), reduce=reduce,
                         reduction=reduction)


class SoftMarginLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.SoftMarginLoss`; calls :func:`soft_margin_loss`."""

    _fn = staticmethod(soft_margin_loss)

    def __init__(self, size_average: _Legacy = None, reduce: _Legacy = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average=size_average, reduce=reduce, reduction=reduction)


class MultiLabelSoftMarginLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.MultiLabelSoftMarginLoss`; calls
    :func:`multilabel_soft_margin_loss`."""

    _fn = staticmethod(multilabel_soft_margin_loss)

    def __init__(self, weight: ArrayLike | None = None, size_average: _Legacy = None,
                 reduce: _Legacy = None, reduction: str = "mean") -> None:
        super().__init__(weight=weight, size_average=size_average, reduce=reduce,
                         reduction=reduction)


class MultiMarginLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.MultiMarginLoss`; calls :func:`multi_margin_loss`."""

    _fn = staticmethod(multi_margin_loss)

    def __init__(self, p: int = 1, margin: float = 1.0, weight: ArrayLike | None = None,
                 size_average: _Legacy = None, reduce: _Legacy = None,
                 reduction: str = "mean") -> None:
        if isinstance(p, bool) or p not in (1, 2):
            raise ValueError(f"only p == 1 and p == 2 supported, got p={p!r}")
        _one_dimensional(weight)
        super().__init__(p=p, margin=margin, weight=weight, size_average=size_average,
                         reduce=reduce, reduction=reduction)


class MultiLabelMarginLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.MultiLabelMarginLoss`; calls
    :func:`multilabel_margin_loss`."""

    _fn = staticmethod(multilabel_margin_loss)

    def __init__(self, size_average: _Legacy = None, reduce: _Legacy = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average=size_average, reduce=reduce, reduction=reduction)


# --- probabilistic ---------------------------------------------------------------------------

class KLDivLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.KLDivLoss`; calls :func:`kl_div` (which warns on
    ``'mean'`` at each call, as torch)."""

    _fn = staticmethod(kl_div)
    _extra_reductions = ("batchmean",)

    def __init__(self, size_average: _Legacy = None, reduce: _Legacy = None,
                 reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(size_average=size_average, reduce=reduce, reduction=reduction,
                         log_target=log_target)


class PoissonNLLLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.PoissonNLLLoss`; calls :func:`poisson_nll_loss`
    (called as ``loss(input, target)``; torch names the first argument ``log_input``)."""

    _fn = staticmethod(poisson_nll_loss)

    def __init__(self, log_input: bool = True, full: bool = False, size_average: _Legacy = None,
                 eps: float = 1e-8, reduce: _Legacy = None, reduction: str = "mean") -> None:
        super().__init__(log_input=log_input, full=full, size_average=size_average, eps=eps,
                         reduce=reduce, reduction=reduction)


class GaussianNLLLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.GaussianNLLLoss`; calls :func:`gaussian_nll_loss`
    as ``loss(input, target, var)``."""

    _fn = staticmethod(gaussian_nll_loss)

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__(full=full, eps=eps, reduction=reduction)

    def __call__(self, input: ArrayLike, target: ArrayLike, var: ArrayLike | float) -> Array:
        return gaussian_nll_loss(input, target, var, **self._options)


# --- embedding -------------------------------------------------------------------------------

class HingeEmbeddingLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.HingeEmbeddingLoss`; calls
    :func:`hinge_embedding_loss`."""

    _fn = staticmethod(hinge_embedding_loss)

    def __init__(self, margin: float = 1.0, size_average: _Legacy = None, reduce: _Legacy = None,
                 reduction: str = "mean") -> None:
        super().__init__(margin=margin, size_average=size_average, reduce=reduce,
                         reduction=reduction)


class MarginRankingLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.MarginRankingLoss`; calls
    :func:`margin_ranking_loss` as ``loss(input1, input2, target)``."""

    _fn = staticmethod(margin_ranking_loss)

    def __init__(self, margin: float = 0.0, size_average: _Legacy = None, reduce: _Legacy = None,
                 reduction: str = "mean") -> None:
        super().__init__(margin=margin, size_average=size_average, reduce=reduce,
                         reduction=reduction)

    def __call__(self, input1: ArrayLike, input2: ArrayLike, target: ArrayLike) -> Array:
        return margin_ranking_loss(input1, input2, target, **self._options)


class CosineEmbeddingLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.CosineEmbeddingLoss`; calls
    :func:`cosine_embedding_loss` as ``loss(input1, input2, target)``."""

    _fn = staticmethod(cosine_embedding_loss)

    def __init__(self, margin: float = 0.0, size_average: _Legacy = None, reduce: _Legacy = None,
                 reduction: str = "mean") -> None:
        super().__init__(margin=margin, size_average=size_average, reduce=reduce,
                         reduction=reduction)

    def __call__(self, input1: ArrayLike, input2: ArrayLike, target: ArrayLike) -> Array:
        return cosine_embedding_loss(input1, input2, target, **self._options)


class TripletMarginLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.TripletMarginLoss`; calls
    :func:`triplet_margin_loss` as ``loss(anchor, positive, negative)``."""

    _fn = staticmethod(triplet_margin_loss)

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                 size_average: _Legacy = None, reduce: _Legacy = None,
                 reduction: str = "mean") -> None:
        check_triplet_margin(margin)
        check_norm_degree(p)
        super().__init__(margin=margin, p=p, eps=eps, swap=swap, size_average=size_average,
                         reduce=reduce, reduction=reduction)

    def __call__(self, anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike) -> Array:
        return triplet_margin_loss(anchor, positive, negative, **self._options)


class TripletMarginWithDistanceLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.TripletMarginWithDistanceLoss`; calls
    :func:`triplet_margin_with_distance_loss` as ``loss(anchor, positive, negative)``.
    ``distance_function`` is a JAX callable (``None``: :func:`pairwise_distance`)."""

    _fn = staticmethod(triplet_margin_with_distance_loss)

    def __init__(self, *, distance_function: Callable[[Array, Array], Array] | None = None,
                 margin: float = 1.0, swap: bool = False, reduction: str = "mean") -> None:
        if not is_tracer(margin) and not np.all(np.asarray(margin) > 0):
            raise ValueError("TripletMarginWithDistanceLoss: expected margin to be greater "
                             f"than 0, got {margin} instead")
        if distance_function is not None and not callable(distance_function):
            raise TypeError(
                f"distance_function must be callable or None, got {distance_function!r}")
        super().__init__(distance_function=distance_function, margin=margin, swap=swap,
                         reduction=reduction)

    def __call__(self, anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike) -> Array:
        return triplet_margin_with_distance_loss(anchor, positive, negative, **self._options)


# --- sequence --------------------------------------------------------------------------------

class CTCLoss(_Loss):
    """JAX counterpart of :class:`torch.nn.CTCLoss`; calls :func:`ctc_loss` as
    ``loss(log_probs, targets, input_lengths, target_lengths)``."""

    _fn = staticmethod(ctc_loss)

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False
                 ) -> None:
        super().__init__(blank=blank, reduction=reduction, zero_infinity=zero_infinity)

    def __call__(self, log_probs: ArrayLike, targets: ArrayLike, input_lengths: ArrayLike,
                 target_lengths: ArrayLike) -> Array:
        return ctc_loss(log_probs, targets, input_lengths, target_lengths, **self._options)
