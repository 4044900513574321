"""Connectionist temporal classification: :func:`ctc_loss` (torch's ``ctc_loss``, CPU kernel).

The forward variables (alpha) run as one ``lax.scan`` over time, vectorized over the batch and
the extended label sequence ``l' = (blank, l_1, blank, l_2, ..., l_L, blank)``; the gradient is
torch's, from the backward variables (beta) in a second scan (a ``jax.custom_vjp``), so values,
gradients, ``nan``/``inf`` cases and ``zero_infinity`` follow torch's ``ctc_loss_cpu`` and
``ctc_loss_backward_cpu`` step for step.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._typing import Array, ArrayLike
from .._validate import is_int
from . import _reduction
from ._checks import as_float, compute_dtype, concrete_values, poison, raise_if
from ._reduction import check_reduction

__all__ = ["ctc_loss"]


def ctc_loss(
    log_probs: ArrayLike,
    targets: ArrayLike,
    input_lengths: ArrayLike,
    target_lengths: ArrayLike,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> Array:
    r"""JAX implementation of :func:`torch.nn.functional.ctc_loss`.

    For each sequence :math:`n` with log-probabilities :math:`x_{t,c}` over
    :math:`t < T_n` (``input_lengths``) and target :math:`l = (l_1, \dots, l_{L_n})`
    (``target_lengths``):

    .. math::
        \ell_n = -\log \sum_{\pi \in \mathcal{B}^{-1}(l)} \prod_{t=0}^{T_n - 1} e^{x_{t, \pi_t}}

    where :math:`\mathcal{B}` removes repeated symbols, then blanks, from an alignment
    :math:`\pi` of length :math:`T_n` (Graves et al., 2006), computed with torch's forward
    recursion over the extended sequence :math:`l' = (b, l_1, b, \dots, l_{L_n}, b)`,
    :math:`b` = ``blank``. An impossible alignment (:math:`T_n` too short) gives
    :math:`\ell_n = \infty`; ``zero_infinity`` replaces it (and its gradient) by 0.

    Reductions: ``'none'`` gives :math:`\ell` of shape :math:`(N)`; ``'sum'`` gives
    :math:`\sum_n \ell_n`; ``'mean'`` divides each :math:`\ell_n` by its target length
    :math:`\max(L_n, 1)`, **then** averages over the batch (torch's mean, not optax's).

    The gradient with respect to ``log_probs`` is torch's:
    :math:`\partial \ell_n / \partial x_{t,c} = e^{x_{t,c}} - \gamma_{t,c}` for
    :math:`t < T_n` (0 after), with :math:`\gamma_{t,c}` the posterior probability of symbol
    :math:`c` at time :math:`t`. That is the gradient with respect to the **logits** when
    ``log_probs = log_softmax(logits)`` (the :math:`e^{x}` term is what the log-softmax
    backward then removes), the usual use; it is not the plain derivative of the formula
    above, which is :math:`-\gamma_{t,c}`. Only first derivatives are defined, as in torch.

    Args:
        log_probs: :math:`(T, N, C)` or unbatched :math:`(T, C)`, floating: log-probabilities
            (e.g. ``jax.nn.log_softmax(logits, axis=-1)``), time first.
        targets: integer class indices, either padded :math:`(N, S)` (row :math:`n` holds its
            :math:`L_n` labels first, the rest is ignored) or concatenated
            :math:`(\sum_n L_n,)`; unbatched, :math:`(L,)` or padded :math:`(1, S)`. Labels
            should lie in :math:`[0, C)` and not equal ``blank``.
        input_lengths: :math:`(N)` (or :math:`()` / a Python int unbatched): :math:`T_n \le T`.
        target_lengths: :math:`(N)` (or :math:`()` / a Python int unbatched): :math:`L_n \le S`.
        blank: the blank label, in :math:`[0, C)`.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        zero_infinity: replace infinite losses and their gradients by 0.

    Shape:
        log_probs :math:`(T, N, C)` or :math:`(T, C)`; targets :math:`(N, S)` or
        :math:`(\sum_n L_n)`; input_lengths and target_lengths :math:`(N)` or
        :math:`()`. Output a scalar, or :math:`(N)` (:math:`()` unbatched) for ``'none'``.

    Raises at trace time, with torch's messages: ``RuntimeError`` for a ``log_probs`` that is
    not 2-D or 3-D or is empty, lengths that are not of size :math:`N` or not integral, a
    ``blank`` outside :math:`[0, C)`, a padded ``targets`` with another batch size. On
    concrete lengths: ``input_lengths`` outside :math:`[0, T]`, a negative target length, a
    target length above :math:`S`, concatenated ``targets`` whose size is not
    :math:`\sum_n L_n`. On concrete ``targets``: ``IndexError`` for a label outside
    :math:`[0, C)` (torch reads out of bounds there).

    .. warning::
        Under ``jit`` values cannot raise: a sequence with an invalid length or label gets a
        ``nan`` loss and gradient instead. bfloat16/float16 ``log_probs`` run in float32 and
        return their dtype (torch's CPU kernel refuses them).

    .. warning::
        ``optax.losses.ctc_loss(logits, logit_paddings, labels, label_paddings, blank_id=0)``
        does the same job with other conventions: batch-first :math:`(N, T, C)` **logits**
        (it applies ``log_softmax`` itself), 0/1 padding masks instead of lengths, ``blank_id``
        0 by default, and no reduction (the per-sequence loss, equal to ``reduction='none'``).
        optax's gradient is the true one with respect to its logits, equal to torch's here
        with respect to ``log_probs`` when those are ``log_softmax(logits)``.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from fnlearn.losses import ctc_loss
        >>> log_probs = jax.nn.log_softmax(jnp.zeros((4, 1, 3)), axis=-1)  # T=4, N=1, C=3
        >>> round(float(ctc_loss(log_probs, jnp.array([[1, 2]]), [4], [2])), 4)
        0.8432

    References:
        Graves, Fernandez, Gomez and Schmidhuber, "Connectionist temporal classification:
        labelling unsegmented sequence data with recurrent neural networks", ICML 2006.
    """
    reduction = check_reduction(reduction)
    lp = as_float(log_probs, "log_probs")
    if lp.ndim not in (2, 3):
        raise RuntimeError(f"Expected 3-dimensional tensor, but got {lp.ndim}-dimensional "
                           "tensor for argument #1 'log_probs' (log_probs must be (T, N, C) or "
                           "unbatched (T, C))")
    if lp.size == 0:
        raise RuntimeError(f"log_probs tensor must not be empty (got shape {lp.shape})")
    unbatched = lp.ndim == 2
    if unbatched:
        lp = lp[:, None, :]
    T, N, C = lp.shape
    if not is_int(blank, 0) or not blank < C:
        raise RuntimeError(f"blank must be in label range [0, {C}), got {blank!r}")
    il = _lengths(input_lengths, N, unbatched, "input_lengths")
    tl = _lengths(target_lengths, N, unbatched, "target_lengths")
    tg = jnp.asarray(targets)
    if not (jnp.issubdtype(tg.dtype, jnp.integer) or jnp.issubdtype(tg.dtype, jnp.floating)):
        raise TypeError(f"targets must hold class indices, got dtype {tg.dtype}")
    tg = tg.astype(jnp.int32 if jnp.issubdtype(tg.dtype, jnp.floating) else tg.dtype)
    raise_if(lambda v: v < 0, lambda v: RuntimeError(
        f"Expected input_lengths to have value at least 0, but got value {v.min()}"), il)
    raise_if(lambda v: v > T, lambda v: RuntimeError(
        f"Expected input_lengths to have value at most {T}, but got value {v.max()}"), il)
    raise_if(lambda v: v < 0, lambda v: RuntimeError(
        f"Expected target_lengths to have value at least 0, but got value {v.min()}"), tl)
    padded, valid_len = _padded_targets(tg, tl, N)
    raise_if(lambda t: (t < 0) | (t >= C), lambda t: IndexError(
        f"targets must be class indices in [0, {C}), got {_first(t, (t < 0) | (t >= C))}"),
        _read_targets(padded, tl))
    S = padded.shape[1]
    padding = jnp.arange(S, dtype=tl.dtype)[None, :] >= tl[:, None]
    labels_ok = jnp.all(((padded >= 0) & (padded < C)) | padding, axis=1)
    bad = (il < 0) | (il > T) | (tl < 0) | (tl > S) | ~valid_len | ~labels_ok

    dtype = lp.dtype
    ct = compute_dtype(dtype)
    ext = _extended(jnp.clip(padded, 0, C - 1), blank)  # (N, 2S + 1)
    nll = _ctc_nll(zero_infinity, lp.astype(ct), ext, jnp.clip(il, 0, T), jnp.clip(tl, 0, S))
    nll = poison(nll, bad)
    if zero_infinity:
        nll = jnp.where(nll == jnp.inf, jnp.zeros_like(nll), nll)
    if reduction == "mean":
        per_target = nll / jnp.maximum(tl, 1).astype(ct)
        return jnp.mean(per_target).astype(dtype)
    out = _reduction.reduce(nll, reduction)
    return (out[0] if unbatched and reduction == "none" else out).astype(dtype)


def _lengths(x: ArrayLike, n: int, unbatched: bool, name: str) -> Array:
    """Lengths as an int32 ``(N,)`` array (a Python int / 0-d array when unbatched)."""
    a = jnp.asarray(x)
    if not jnp.issubdtype(a.dtype, jnp.integer):
        raise RuntimeError(f"{name} must be integral, got dtype {a.dtype}")
    if unbatched and a.shape in ((), (1,)):
        a = a.reshape(1)
    if a.shape != (n,):
        raise RuntimeError(f"{name} must be of size batch_size ({n}), got shape {a.shape}")
    return a.astype(jnp.int32)


def _first(values: np.ndarray, bad: np.ndarray) -> int:
    """The first value where ``bad`` holds (in C order)."""
    return int(values.reshape(-1)[np.argmax(bad.reshape(-1))])


def _padded_targets(tg: Array, tl: Array, n: int) -> tuple[Array, Array]:
    """``(N, S)`` targets and, per sequence, whether its target length fits.

    Padded (2-D) targets are checked against the target lengths; a 1-D ``targets`` is the
    concatenation, cut at ``cumsum(target_lengths)`` (also unbatched, as torch).
    """
    if tg.ndim == 2:
        if tg.shape[0] != n:
            raise RuntimeError(f"Expected tensor to have size {n} at dimension 0, but got size "
                               f"{tg.shape[0]} for argument #2 'targets'")
        S = tg.shape[1]
        raise_if(lambda v: v > S, lambda v: RuntimeError(
            f"Expected tensor to have size at least {v.max()} at dimension 1, but got size {S} "
            "for argument #2 'targets'"), tl)
        return tg, tl <= S
    if tg.ndim != 1:
        raise RuntimeError(f"targets must be (N, S) padded or (sum(target_lengths),) "
                           f"concatenated, got shape {tg.shape}")
    total = tg.shape[0]
    raise_if(lambda v: v.sum() != total, lambda v: RuntimeError(
        f"Expected tensor to have size {v.sum()} at dimension 0, but got size {total} for "
        "argument #2 'targets'"), tl)
    known = concrete_values(tl)
    S = int(known[0].max(initial=0)) if known is not None else total
    start = jnp.cumsum(tl) - tl
    idx = start[:, None] + jnp.arange(S, dtype=tl.dtype)[None, :]
    if total == 0:
        return jnp.zeros((n, S), tg.dtype), jnp.sum(tl) == 0
    padded = tg[jnp.clip(idx, 0, total - 1)]
    return padded, jnp.broadcast_to(jnp.sum(tl) == total, (n,))


def _read_targets(padded: Array, tl: Array) -> Array:
    """The labels the loss reads (padding replaced by 0), for the eager range check."""
    return jnp.where(jnp.arange(padded.shape[1], dtype=tl.dtype)[None, :] < tl[:, None], padded,
                     jnp.zeros_like(padded))


def _extended(labels: Array, blank: int) -> Array:
    """``l' = (b, l_1, b, ..., l_S, b)``, shape ``(N, 2S + 1)``."""
    n, s = labels.shape
    ext = jnp.full((n, 2 * s + 1), blank, labels.dtype)
    return ext.at[:, 1::2].set(labels)


def _lse3(a1: Array, a2: Array, a3: Array) -> Array:
    """torch's three-term log-sum-exp (its max is taken as 0 when it is -inf)."""
    m = jnp.maximum(jnp.maximum(a1, a2), a3)
    m = jnp.where(m == -jnp.inf, jnp.zeros_like(m), m)
    return jnp.log(jnp.exp(a1 - m) + jnp.exp(a2 - m) + jnp.exp(a3 - m)) + m


def _shift(a: Array, k: int) -> Array:
    """``a[..., s - k]`` (``k > 0``) or ``a[..., s + |k|]``, -inf where out of range."""
    if abs(k) >= a.shape[-1]:
        return jnp.full(a.shape, -jnp.inf, a.dtype)
    pad = jnp.full(a.shape[:-1] + (abs(k),), -jnp.inf, a.dtype)
    if k > 0:
        return jnp.concatenate([pad, a[..., :-k]], axis=-1)
    return jnp.concatenate([a[..., -k:], pad], axis=-1)


def _skip(ext: Array) -> Array:
    """Where the recursion may skip a blank: odd ``s >= 3`` with ``l'_s != l'_{s-2}``."""
    s = jnp.arange(ext.shape[1], dtype=jnp.int32)[None, :]
    return (s % 2 == 1) & (s >= 3) & (ext != _shift_int(ext, 2))


def _shift_int(ext: Array, k: int) -> Array:
    """``ext[..., s - k]``, -1 where out of range."""
    if k >= ext.shape[-1]:
        return jnp.full(ext.shape, -1, ext.dtype)
    return jnp.concatenate([jnp.full(ext.shape[:-1] + (k,), -1, ext.dtype), ext[..., :-k]], -1)


def _forward(lp: Array, ext: Array, il: Array, tl: Array) -> tuple[Array, Array]:
    """Per-sequence negative log-likelihood and the alphas ``(T, N, S')`` (torch's
    ``log_alpha``; frozen at their last value after ``input_lengths``)."""
    T, N, _ = lp.shape
    S1 = ext.shape[1]
    lp_ext = jnp.take_along_axis(lp, jnp.broadcast_to(ext[None], (T, N, S1)), axis=2)
    skip = _skip(ext)
    s = jnp.arange(S1, dtype=jnp.int32)[None, :]
    neg_inf = jnp.full((N, S1), -jnp.inf, lp.dtype)
    start = neg_inf.at[:, 0].set(0.0)  # before t = 0: all mass on the virtual start

    def step(alpha, inputs):
        t, lp_t = inputs
        new = _lse3(alpha, _shift(alpha, 1), jnp.where(skip, _shift(alpha, 2), -jnp.inf)) + lp_t
        new = jnp.where((t == 0) & (s >= 2), -jnp.inf, new)  # torch sets these, no lse
        alpha = jnp.where((t < il)[:, None], new, alpha)
        return alpha, alpha

    _, alphas = lax.scan(step, start, (jnp.arange(T, dtype=jnp.int32), lp_ext))
    final = jnp.where((il == 0)[:, None], start, alphas[jnp.maximum(il - 1, 0), jnp.arange(N)])
    end = jnp.take_along_axis(final, (2 * tl)[:, None], axis=1)[:, 0]
    before = jnp.take_along_axis(final, jnp.maximum(2 * tl - 1, 0)[:, None], axis=1)[:, 0]
    before = jnp.where(tl > 0, before, -jnp.inf)
    m = jnp.maximum(end, before)
    m = jnp.where(m == -jnp.inf, jnp.zeros_like(m), m)
    log_likelihood = jnp.log(jnp.exp(end - m) + jnp.exp(before - m)) + m
    return -log_likelihood, alphas


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _ctc_nll(zero_infinity: bool, lp: Array, ext: Array, il: Array, tl: Array) -> Array:
    return _forward(lp, ext, il, tl)[0]


def _ctc_fwd(zero_infinity, lp, ext, il, tl):
    nll, alphas = _forward(lp, ext, il, tl)
    return nll, (lp, ext, il, tl, nll, alphas)


def _ctc_bwd(zero_infinity, res, g):
    """torch's ``ctc_loss_backward_cpu``: betas, then ``exp(lp) - exp(lcab + nll - lp)``."""
    lp, ext, il, tl, nll, alphas = res
    T, N, C = lp.shape
    S1 = ext.shape[1]
    lp_ext = jnp.take_along_axis(lp, jnp.broadcast_to(ext[None], (T, N, S1)), axis=2)
    s = jnp.arange(S1, dtype=jnp.int32)[None, :]
    skip_next = _shift(jnp.where(_skip(ext), 0.0, -jnp.inf).astype(lp.dtype), -2)  # s+2 ok
    last = (s == 2 * tl[:, None]) | ((s == 2 * tl[:, None] - 1) & (tl[:, None] > 0))

    def step(beta, inputs):
        t, lp_t = inputs
        new = _lse3(beta, _shift(beta, -1), _shift(beta, -2) + skip_next) + lp_t
        init = jnp.where(last, lp_t, -jnp.inf)
        beta = jnp.where((t == il - 1)[:, None], init,
                         jnp.where((t < il - 1)[:, None], new, -jnp.inf))
        return beta, beta

    neg_inf = jnp.full((N, S1), -jnp.inf, lp.dtype)
    _, betas = lax.scan(step, neg_inf, (jnp.arange(T, dtype=jnp.int32), lp_ext), reverse=True)
    # lcab[t, n, c] = log sum over s with l'_s = c of exp(alpha + beta), -inf for a class
    # not in l' (torch accumulates it by log-sum-exp; here through one max-shifted sum)
    ab = alphas + betas  # (T, N, S')
    m = jnp.max(ab, axis=2, keepdims=True)
    m = jnp.where(m == -jnp.inf, jnp.zeros_like(m), m)
    summed = jnp.zeros((T, N, C), lp.dtype).at[:, jnp.arange(N)[:, None], ext].add(
        jnp.exp(ab - m))
    lcab = jnp.log(summed) + m
    active = (jnp.arange(T, dtype=jnp.int32)[:, None] < il[None, :])[..., None]
    grad = (jnp.exp(lp) - jnp.exp(lcab + nll[None, :, None] - lp)) * g[None, :, None]
    grad = jnp.where(active, grad, jnp.zeros_like(lp))
    if zero_infinity:
        grad = jnp.where((nll == jnp.inf)[None, :, None], jnp.zeros_like(grad), grad)
    return grad, None, None, None


_ctc_nll.defvjp(_ctc_fwd, _ctc_bwd)
