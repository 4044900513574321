"""Annealing: CosineAnnealingLR, CosineAnnealingWarmRestarts and SWALR in closed form."""

from __future__ import annotations

import math

import jax.numpy as jnp

from .._typing import Array, ArrayLike, Schedule
from .._validate import is_int, is_number
from ._common import (
    _check_anneal_strategy,
    _check_positive,
    _dtype,
    _f,
    _k,
    _kint,
    _nonneg,
)

_INT32_MAX = 2**31 - 1


def cosine_annealing_lr(lr: ArrayLike, T_max: int, eta_min: float = 0.0) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.CosineAnnealingLR`.

    .. math::
        \gamma_k = \eta_{\min} + \frac{\gamma_0 - \eta_{\min}}{2}
        \left(1 + \cos\frac{\pi k}{T_{\max}}\right) \quad \text{for all } k

    Past :math:`T_{\max}` torch keeps following the cosine, so the lr is periodic with period
    :math:`2 T_{\max}`: it climbs back to :math:`\gamma_0` at :math:`k = 2 T_{\max}`. (torch
    computes it recursively; the closed form equals it up to rounding.)

    Args:
        lr: base learning rate :math:`\gamma_0`.
        T_max: half period: the lr reaches ``eta_min`` at step ``T_max`` (> 0).
        eta_min: minimum learning rate :math:`\eta_{\min}`. Default: 0.0.

    Returns:
        A schedule ``k -> lr``.

    Example::

        >>> from fnlearn.schedules import cosine_annealing_lr
        >>> s = cosine_annealing_lr(1.0, T_max=2)
        >>> [round(float(s(k)), 6) for k in range(5)]
        [1.0, 0.5, 0.0, 0.5, 1.0]

    .. warning::
       ``optax.cosine_decay_schedule(lr, T_max, alpha=eta_min / lr)`` equals this for
       ``k <= T_max`` only: optax then stays at ``eta_min`` while torch climbs back up. For a
       schedule that stops at ``eta_min``, use ``sequential_lr([cosine_annealing_lr(...),
       lambda k: eta_min], [T_max])`` or the optax schedule.
    """
    lr = _nonneg(lr, "lr", "cosine_annealing_lr")
    _check_positive(T_max, "T_max")
    eta_min = _nonneg(eta_min, "eta_min", "cosine_annealing_lr")

    def schedule(count: ArrayLike) -> Array:
        eta = _f(eta_min)
        return eta + (_f(lr) - eta) * (1 + jnp.cos(math.pi * _k(count) / T_max)) / 2

    return schedule


def cosine_annealing_warm_restarts(
    lr: ArrayLike, T_0: int, T_mult: int = 1, eta_min: float = 0.0
) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`.

    .. math::
        \gamma_k = \eta_{\min} + \frac{\gamma_0 - \eta_{\min}}{2}
        \left(1 + \cos\frac{\pi T_{cur}}{T_i}\right)

    where cycle :math:`i = 0, 1, \ldots` has length :math:`T_i = T_0 T_{mult}^i`, starts at
    step :math:`S_i = T_0 (T_{mult}^i - 1) / (T_{mult} - 1)` (:math:`i T_0` when
    :math:`T_{mult} = 1`), and :math:`T_{cur} = k - S_i` for the cycle containing :math:`k`.
    The lr restarts at :math:`\gamma_0` at each :math:`S_i` (SGDR, Loshchilov & Hutter).

    Args:
        lr: base (maximum) learning rate :math:`\gamma_0`.
        T_0: length of the first cycle (positive int).
        T_mult: growth factor of the cycle length (int >= 1). Default: 1.
        eta_min: minimum learning rate. Default: 0.0.

    Returns:
        A schedule ``k -> lr``; the cycle is found with integer arithmetic (exact for any
        ``int32`` step).

    Example::

        >>> from fnlearn.schedules import cosine_annealing_warm_restarts
        >>> s = cosine_annealing_warm_restarts(1.0, T_0=2, T_mult=2)
        >>> [round(float(s(k)), 4) for k in range(7)]
        [1.0, 0.5, 1.0, 0.8536, 0.5, 0.1464, 1.0]

    optax equivalent (exact up to rounding): ``optax.sgdr_schedule([dict(init_value=lr,
    peak_value=lr, warmup_steps=0, decay_steps=T_i, end_value=eta_min) for each cycle])``,
    which needs the cycles listed up to the last step.
    """
    lr = _nonneg(lr, "lr", "cosine_annealing_warm_restarts")
    if not is_int(T_0, 1):
        raise ValueError(f"Expected positive integer T_0, but got {T_0}")
    if not is_int(T_mult, 1):
        raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
    if not is_number(eta_min):
        raise ValueError(
            f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}"
        )
    starts, lengths = [0], [int(T_0)]
    if T_mult > 1:
        while starts[-1] + lengths[-1] <= _INT32_MAX:
            starts.append(starts[-1] + lengths[-1])
            lengths.append(lengths[-1] * int(T_mult))

    def schedule(count: ArrayLike) -> Array:
        k = _kint(count)
        if T_mult == 1:
            t_cur, t_i = k % T_0, _f(T_0)
        else:
            n = jnp.sum(k >= jnp.asarray(starts[1:], jnp.int32))
            t_cur = k - jnp.asarray(starts, jnp.int32)[n]
            t_i = jnp.asarray(lengths, _dtype())[n]
        eta = _f(eta_min)
        return eta + (_f(lr) - eta) * (1 + jnp.cos(math.pi * t_cur.astype(_dtype()) / t_i)) / 2

    return schedule


def swa_lr(
    lr: ArrayLike,
    swa_lr: float,
    anneal_epochs: int = 10,
    anneal_strategy: str = "cos",
) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.swa_utils.SWALR`.

    .. math::
        \gamma_k = \gamma_\text{swa}\, a(t_k) + \gamma_0 (1 - a(t_k)), \qquad
        t_k = \min\!\Big(1, \frac{k}{\max(1, E)}\Big)

    with :math:`a(t) = (1 - \cos \pi t) / 2` (``'cos'``) or :math:`a(t) = t` (``'linear'``),
    :math:`E` = ``anneal_epochs``; with :math:`E = 0` the lr is :math:`\gamma_\text{swa}` from
    the first step (torch: :math:`k \ge 1` in :math:`t_k`). torch computes it recursively,
    recovering :math:`\gamma_0` from the optimizer's current lr at each step; this closed
    form equals it up to rounding. Stepped per epoch in torch's SWA recipes: count epochs.

    Args:
        lr: the optimizer's lr when SWALR is built, :math:`\gamma_0`.
        swa_lr: the lr annealed to, :math:`\gamma_\text{swa}`.
        anneal_epochs: :math:`E`, the length of the annealing (an integer >= 0). Default 10.
        anneal_strategy: ``'cos'`` or ``'linear'``. Default ``'cos'``.

    Returns:
        A schedule ``k -> lr``.

    Example::

        >>> from fnlearn.schedules import swa_lr
        >>> s = swa_lr(1.0, swa_lr=0.5, anneal_epochs=2, anneal_strategy="linear")
        >>> [float(s(k)) for k in range(4)]
        [1.0, 0.75, 0.5, 0.5]
    """
    lr = _nonneg(lr, "lr", "swa_lr")
    swa_lr = _nonneg(swa_lr, "swa_lr", "swa_lr")
    _check_anneal_strategy(anneal_strategy)
    if not is_int(anneal_epochs, 0):
        raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")

    def schedule(count: ArrayLike) -> Array:
        k = _k(count)
        if anneal_epochs == 0:
            k = jnp.maximum(k, 1)
        t = jnp.clip(k / max(1, anneal_epochs), 0, 1)
        a = (1 - jnp.cos(math.pi * t)) / 2 if anneal_strategy == "cos" else t
        return _f(swa_lr) * a + _f(lr) * (1 - a)

    return schedule
