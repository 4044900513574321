"""Likelihood-based losses: :func:`kl_div`, :func:`poisson_nll_loss`, :func:`gaussian_nll_loss`.

Each computes torch's unreduced elementwise loss and hands it to
:func:`fnlearn.losses.reduce`. ``target`` broadcasts against ``input`` silently, as in torch.

The result has the dtype torch returns (the widest floating operand, unless a loss says
otherwise); arithmetic runs in float32 for bfloat16/float16, as torch's CPU kernels do.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from .._typing import Array, ArrayLike
from .._validate import is_number
from . import _reduction
from ._checks import (
    as_float,
    broadcast_pair,
    compute_dtype,
    legacy_reduction,
    raise_if,
    result_dtype,
)
from ._reduction import check_reduction

_KL_MEAN_WARNING = (
    "reduction: 'mean' divides the total loss by both the batch size and the support size."
    "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
    "'mean' will be changed to behave the same as 'batchmean' in the next major release."
)


def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.kl_div`.

    .. math::
        \ell_i = \begin{cases} y_i \log y_i - y_i\, x_i & \text{log\_target = False} \\
                               e^{y_i} (y_i - x_i) & \text{log\_target = True} \end{cases}

    Legend: :math:`x` = ``input`` (log-probabilities), :math:`y` = ``target`` (probabilities,
    or log-probabilities with ``log_target``). :math:`0 \log 0 = 0`; a negative :math:`y` gives
    ``nan`` (torch's ``xlogy``).

    Reductions: ``'batchmean'`` divides :math:`\sum_i \ell_i` by ``input.shape[0]`` (the KL
    divergence per sample; a 0-d ``input`` gives the plain sum); ``'mean'`` divides by the number
    of elements and emits torch's ``UserWarning`` saying so; ``'sum'``; ``'none'``.

    Args:
        input: log-probabilities, any shape, floating.
        target: probabilities (or log-probabilities), broadcastable to ``input``, floating.
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'batchmean'`` | ``'mean'`` | ``'sum'``.
        log_target: whether ``target`` holds log-probabilities.

    Shape:
        input :math:`(*)`, target :math:`(*)`; output a scalar, or the broadcast shape for
        ``'none'``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import kl_div
        >>> p = jnp.array([[0.5, 0.5]])
        >>> float(kl_div(jnp.log(p), p, reduction="batchmean"))
        0.0

    optax: ``optax.losses.kl_divergence(input, target)`` (and
    ``kl_divergence_with_log_targets``) returns the sum over the last axis; its mean over the
    batch equals ``'batchmean'`` for a 2-D ``input``.
    """
    legacy = size_average is not None or reduce is not None
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction), ("batchmean",))
    if reduction == "mean" and not legacy:
        warnings.warn(_KL_MEAN_WARNING, UserWarning, stacklevel=2)
    x = as_float(input, "input")
    y = as_float(target, "target")
    dtype = result_dtype(x, y)
    ct = compute_dtype(dtype)
    x, y = broadcast_pair(x.astype(ct), y.astype(ct), warn=False)
    l = jnp.exp(y) * (y - x) if log_target else xlogy(y, y) - y * x
    if reduction == "batchmean" and np.ndim(input) != 0:
        return _reduction.reduce(l, "mean", denominator=np.shape(input)[0]).astype(dtype)
    return _reduction.reduce(l, "sum" if reduction == "batchmean" else reduction).astype(dtype)


def poisson_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    log_input: bool = True,
    full: bool = False,
    size_average: bool | None = None,
    eps: float = 1e-8,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.poisson_nll_loss`.

    .. math::
        \ell_i = \begin{cases} e^{x_i} - y_i\, x_i & \text{log\_input = True} \\
                               x_i - y_i \log(x_i + \epsilon) & \text{log\_input = False}
                 \end{cases}
        \;+\; [\text{full} \wedge y_i > 1]
              \left(y_i \log y_i - y_i + \tfrac12 \log(2\pi y_i)\right)

    Legend: :math:`x` = ``input`` (the log-rate, or the rate with ``log_input=False``),
    :math:`y` = ``target`` (counts), :math:`\epsilon` = ``eps``. The Stirling term of ``full``
    is added only where :math:`y_i > 1` (0 elsewhere), as torch; its gradient with respect to
    ``target`` is 0 where it is masked (torch gives ``nan`` at :math:`y_i = 0`).

    Reductions: ``'mean'`` divides :math:`\sum_i \ell_i` by the number of elements.

    Args:
        input: log-rates (or rates), any shape, floating.
        target: counts, broadcastable to ``input``; an integer array is cast.
        log_input: whether ``input`` is the log of the rate.
        full: add the Stirling approximation of :math:`\log(y!)`.
        size_average: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        eps: added to the rate before its log when ``log_input=False``.
        reduce: deprecated (torch's legacy argument); overrides ``reduction`` when set.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        input :math:`(*)`, target :math:`(*)`; output a scalar, or the broadcast shape for
        ``'none'``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import poisson_nll_loss
        >>> float(poisson_nll_loss(jnp.array([0.0]), jnp.array([1.0])))
        1.0

    optax has no Poisson negative log-likelihood.
    """
    reduction = check_reduction(legacy_reduction(size_average, reduce, reduction))
    x = as_float(input, "input")
    y = jnp.asarray(target)
    dtype = result_dtype(x, y)
    ct = compute_dtype(dtype)
    x, y = broadcast_pair(x.astype(ct), y.astype(ct), warn=False)
    if log_input:
        l = jnp.exp(x) - y * x
    else:
        l = x - y * jnp.log(x + jnp.asarray(eps, ct))
    if full:
        # torch masks where target <= 1, so a nan target keeps its nan term
        small = y <= 1
        y_safe = jnp.where(small, jnp.ones_like(y), y)  # no nan from log(0) in the gradient
        stirling = y_safe * jnp.log(y_safe) - y_safe + 0.5 * jnp.log(2 * math.pi * y_safe)
        l = l + jnp.where(small, jnp.zeros_like(stirling), stirling)
    return _reduction.reduce(l, reduction).astype(dtype)


def gaussian_nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    var: ArrayLike | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.gaussian_nll_loss`.

    .. math::
        v_i = \max(\sigma^2_i, \epsilon), \qquad
        \ell_i = \tfrac12 \left(\log v_i + \frac{(x_i - y_i)^2}{v_i}\right)
                 \;+\; [\text{full}]\, \tfrac12 \log(2\pi)

    Legend: :math:`x` = ``input`` (the mean), :math:`y` = ``target``, :math:`\sigma^2` =
    ``var``, :math:`\epsilon` = ``eps``. As torch (which clamps in place under ``no_grad``), the
    clamp passes the gradient straight through: ``v = var + stop_gradient(max(var, eps) - var)``,
    so :math:`\partial \ell / \partial \sigma^2 = \tfrac12 (1/v - (x-y)^2/v^2)` also where
    ``var < eps``.

    Reductions: ``'mean'`` divides :math:`\sum_i \ell_i` by the number of loss elements.

    ``var`` may be (torch's rules):

    * an array of ``input``'s shape (heteroscedastic);
    * an array of shape ``input.shape[:-1]`` (one variance per sample, unsqueezed to
      ``(..., 1)``);
    * an array of ``input``'s rank with exactly one dimension of size 1 where ``input``'s
      differs, e.g. ``(N, 1)`` for ``(N, D)``;
    * a Python number (one variance for all).

    Anything else raises ``ValueError("var is of incorrect size")``.

    Args:
        input: predicted means, any shape, floating.
        target: observations, broadcastable to ``input``; an integer array is cast.
        var: predicted variances, ``>= 0``, floating array or Python number.
        full: add the constant :math:`\tfrac12 \log(2\pi)`.
        eps: the variance floor.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

    Shape:
        input :math:`(N, *)` or :math:`(*)`, target like ``input``, var as above; output a
        scalar, or the broadcast shape for ``'none'``.

    .. warning::
        A negative entry of ``var`` raises ``ValueError("var has negative entry/entries")``
        only when ``var`` is concrete (eager calls, also under an eager ``jax.grad``, a Python
        number, a closed-over array). Under ``jit`` or ``vmap`` the values of a traced ``var``
        cannot be checked,
        and a negative entry is clamped to ``eps`` like any variance below it. Call the loss
        once eagerly, or check ``(var >= 0).all()`` yourself, when that matters.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.losses import gaussian_nll_loss
        >>> float(gaussian_nll_loss(jnp.array([1.0]), jnp.array([3.0]), jnp.array([1.0])))
        2.0

    optax has no Gaussian negative log-likelihood.
    """
    if is_number(var):
        if var < 0:
            raise ValueError(f"var has negative entry/entries (var = {var})")
        x = as_float(input, "input")
        v = jnp.full(x.shape, var, x.dtype)
    else:
        x = as_float(input, "input")
        v = as_float(var, "var")
        raise_if(lambda v: v < 0, lambda v: ValueError("var has negative entry/entries"), var)
    if v.shape != x.shape:
        mismatched = [s for s_in, s in zip(x.shape, v.shape, strict=False) if s_in != s]
        if x.shape[:-1] == v.shape:
            v = v[..., None]
        elif x.ndim != v.ndim or sum(mismatched) != 1:
            raise ValueError(
                f"var is of incorrect size: {v.shape} for input of shape {x.shape} (expected "
                "input's shape, input.shape[:-1], or input's shape with one dimension of size 1)"
            )
    reduction = check_reduction(reduction)
    y = jnp.asarray(target)
    dtype = result_dtype(x, y, v)
    ct = compute_dtype(dtype)
    x, y, v = _broadcast3(x.astype(ct), y.astype(ct), v.astype(ct))
    # the clamped value, with the identity's gradient (``v + stop_gradient(max(v, eps) - v)``
    # written so that the value is exactly ``max(v, eps)``, also for a traced negative var)
    vc = jnp.maximum(v, jnp.asarray(eps, ct))
    v = jax.lax.stop_gradient(vc) + (v - jax.lax.stop_gradient(v))
    l = 0.5 * (jnp.log(v) + (x - y) ** 2 / v)
    if full:
        l = l + 0.5 * math.log(2 * math.pi)
    return _reduction.reduce(l, reduction).astype(dtype)


def _broadcast3(x: Array, y: Array, v: Array) -> tuple[Array, Array, Array]:
    try:
        shape = jnp.broadcast_shapes(x.shape, y.shape, v.shape)
    except ValueError:
        raise ValueError(
            f"input {x.shape}, target {y.shape} and var {v.shape} cannot be broadcast together"
        ) from None
    return tuple(jnp.broadcast_to(a, shape) for a in (x, y, v))
