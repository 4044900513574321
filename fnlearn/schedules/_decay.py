"""Step-based decays: StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR and
PolynomialLR in closed form."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from .._typing import Array, ArrayLike, Schedule
from .._validate import is_number
from ._common import _check_int, _dtype, _f, _k, _nonneg


def step_lr(lr: ArrayLike, step_size: int, gamma: float = 0.1) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.StepLR`.

    .. math::
        \gamma_k = \gamma_0 \cdot \texttt{gamma}^{\lfloor k / \texttt{step\_size} \rfloor}

    Symbols: :math:`\gamma_0` = ``lr`` (the optimizer's lr in torch), :math:`k` = the step.

    Args:
        lr: base learning rate :math:`\gamma_0`.
        step_size: period of the decay (positive int).
        gamma: multiplicative factor of the decay. Default: 0.1.

    Returns:
        A schedule ``k -> lr``.

    Example::

        >>> from fnlearn.schedules import step_lr
        >>> s = step_lr(1.0, step_size=3, gamma=0.1)
        >>> [round(float(s(k)), 3) for k in (0, 2, 3, 6)]
        [1.0, 1.0, 0.1, 0.01]

    optax equivalent (exact): ``optax.exponential_decay(lr, step_size, gamma,
    staircase=True)``. torch applies the decay recursively (``lr *= gamma``); the closed form
    differs from it by rounding only (a few ulps).
    """
    lr = _nonneg(lr, "lr", "step_lr")
    _check_int(step_size, "step_size", 1)
    gamma = _nonneg(gamma, "gamma", "step_lr")

    def schedule(count: ArrayLike) -> Array:
        return _f(lr) * _f(gamma) ** jnp.floor_divide(_k(count), step_size)

    return schedule


def multi_step_lr(lr: ArrayLike, milestones: Sequence[int], gamma: float = 0.1) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.MultiStepLR`.

    .. math::
        \gamma_k = \gamma_0 \cdot \texttt{gamma}^{\#\{m \in \texttt{milestones} : m \le k\}}

    A milestone listed n times counts n times (torch keeps a ``Counter``). Milestones may be
    given in any order.

    Args:
        lr: base learning rate :math:`\gamma_0`.
        milestones: step indices (non-negative ints) at which lr is multiplied by ``gamma``.
        gamma: multiplicative factor. Default: 0.1.

    Returns:
        A schedule ``k -> lr``.

    Example::

        >>> from fnlearn.schedules import multi_step_lr
        >>> s = multi_step_lr(1.0, milestones=[2, 4], gamma=0.5)
        >>> [float(s(k)) for k in range(6)]
        [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]

    optax equivalent (exact): ``optax.piecewise_constant_schedule(lr, {m: gamma ** n})`` with
    repeated milestones merged into ``gamma ** n``.
    """
    lr = _nonneg(lr, "lr", "multi_step_lr")
    milestones = list(milestones)
    for m in milestones:
        _check_int(m, "milestone", 0)
    gamma = _nonneg(gamma, "gamma", "multi_step_lr")
    ms = sorted(int(m) for m in milestones)

    def schedule(count: ArrayLike) -> Array:
        if not ms:
            return _f(lr) * jnp.ones([], _dtype())
        n = jnp.sum(jnp.asarray(ms, _dtype()) <= _k(count)).astype(_dtype())
        return _f(lr) * _f(gamma) ** n

    return schedule


def constant_lr(lr: ArrayLike, factor: float = 1.0 / 3, total_iters: int = 5) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.ConstantLR`.

    .. math::
        \gamma_k = \gamma_0 \cdot \texttt{factor} \ \text{ if } k < \texttt{total\_iters}
        \text{ else } \gamma_0

    Args:
        lr: base learning rate :math:`\gamma_0`.
        factor: multiplier in ``[0, 1]`` until ``total_iters``. Default: 1/3.
        total_iters: number of steps with the reduced lr (positive int). Default: 5.

    Returns:
        A schedule ``k -> lr``.

    Example::

        >>> from fnlearn.schedules import constant_lr
        >>> s = constant_lr(1.0, factor=0.5, total_iters=2)
        >>> [float(s(k)) for k in range(4)]
        [0.5, 0.5, 1.0, 1.0]

    optax equivalent (exact): ``optax.piecewise_constant_schedule(lr * factor,
    {total_iters: 1 / factor})`` (for ``factor > 0``).

    .. warning::
       torch accepts ``total_iters=0`` and then keeps ``lr * factor`` forever (its recursive
       form applies ``factor`` at step 0 and never undoes it), and ``factor=0`` raises
       ``ZeroDivisionError`` at step ``total_iters``; fnlearn rejects ``total_iters < 1`` and
       returns ``lr`` from ``total_iters`` on for any ``factor``.
    """
    lr = _nonneg(lr, "lr", "constant_lr")
    if is_number(factor) and (factor > 1.0 or factor < 0):
        raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
    _check_int(total_iters, "total_iters", 1)

    def schedule(count: ArrayLike) -> Array:
        k = _k(count)
        return _f(lr) * jnp.where(k < total_iters, _f(factor), _f(1.0))

    return schedule


def linear_lr(
    lr: ArrayLike,
    start_factor: float = 1.0 / 3,
    end_factor: float = 1.0,
    total_iters: int = 5,
) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.LinearLR`.

    .. math::
        \gamma_k = \gamma_0 \left(s + (e - s)\,\frac{\min(k, T)}{T}\right)

    Symbols: :math:`s` = ``start_factor``, :math:`e` = ``end_factor``, :math:`T` =
    ``total_iters``.

    Args:
        lr: base learning rate :math:`\gamma_0`.
        start_factor: multiplier at step 0, in ``(0, 1]``. Default: 1/3.
        end_factor: multiplier from step ``total_iters`` on, in ``[0, 1]``. Default: 1.0.
        total_iters: length of the linear ramp (positive int). Default: 5.

    Returns:
        A schedule ``k -> lr``.

    Example::

        >>> from fnlearn.schedules import linear_lr
        >>> s = linear_lr(1.0, start_factor=0.25, end_factor=1.0, total_iters=3)
        >>> [float(s(k)) for k in range(5)]
        [0.25, 0.5, 0.75, 1.0, 1.0]

    optax equivalent (exact up to rounding): ``optax.linear_schedule(lr * start_factor,
    lr * end_factor, total_iters)``. torch's recursive form differs from the closed form by
    rounding only; with ``total_iters=0`` torch keeps ``lr * start_factor`` forever, which
    fnlearn rejects.
    """
    lr = _nonneg(lr, "lr", "linear_lr")
    if is_number(start_factor) and (start_factor > 1.0 or start_factor <= 0):
        raise ValueError(
            "Starting multiplicative factor expected to be greater than 0 and less or equal to 1."
        )
    if is_number(end_factor) and (end_factor > 1.0 or end_factor < 0):
        raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
    _check_int(total_iters, "total_iters", 1)

    def schedule(count: ArrayLike) -> Array:
        s, e = _f(start_factor), _f(end_factor)
        frac = (e - s) * jnp.minimum(_k(count), total_iters) / total_iters
        return _f(lr) * (s + frac)

    return schedule


def exponential_lr(lr: ArrayLike, gamma: float) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.ExponentialLR`.

    .. math::
        \gamma_k = \gamma_0 \cdot \texttt{gamma}^k

    Args:
        lr: base learning rate :math:`\gamma_0`.
        gamma: multiplicative factor per step (no default, as in torch).

    Returns:
        A schedule ``k -> lr``.

    Example::

        >>> from fnlearn.schedules import exponential_lr
        >>> s = exponential_lr(1.0, gamma=0.5)
        >>> [float(s(k)) for k in range(4)]
        [1.0, 0.5, 0.25, 0.125]

    optax equivalent (exact up to rounding): ``optax.exponential_decay(lr, 1, gamma)``.
    """
    lr = _nonneg(lr, "lr", "exponential_lr")
    gamma = _nonneg(gamma, "gamma", "exponential_lr")

    def schedule(count: ArrayLike) -> Array:
        return _f(lr) * _f(gamma) ** _k(count)

    return schedule


def polynomial_lr(lr: ArrayLike, total_iters: int = 5, power: float = 1.0) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.PolynomialLR`.

    .. math::
        \gamma_k = \gamma_0 \left(1 - \frac{\min(k, T)}{T}\right)^{p}

    Symbols: :math:`T` = ``total_iters``, :math:`p` = ``power``. The lr is 0 from step
    :math:`T` on.

    Args:
        lr: base learning rate :math:`\gamma_0`.
        total_iters: number of decaying steps (positive int). Default: 5.
        power: exponent of the polynomial (>= 0). Default: 1.0.

    Returns:
        A schedule ``k -> lr``.

    Example::

        >>> from fnlearn.schedules import polynomial_lr
        >>> s = polynomial_lr(1.0, total_iters=4, power=2.0)
        >>> [float(s(k)) for k in range(6)]
        [1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0]

    optax equivalent (exact up to rounding): ``optax.polynomial_schedule(lr, 0.0, power,
    total_iters)``.
    """
    lr = _nonneg(lr, "lr", "polynomial_lr")
    _check_int(total_iters, "total_iters", 1)
    power = _nonneg(power, "power", "polynomial_lr")

    def schedule(count: ArrayLike) -> Array:
        # (T - min(k, T)) / T is exactly 0 at k = T (XLA may turn 1 - k / T into
        # 1 - k * (1 / T), which is not, and a tiny negative base ** power is nan)
        base = (total_iters - jnp.minimum(_k(count), total_iters)) / total_iters
        return _f(lr) * base ** _f(power)

    return schedule
