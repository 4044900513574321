"""User functions and combinators: LambdaLR, MultiplicativeLR, SequentialLR and
ChainedScheduler."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp
from jax import lax

from .._typing import Array, ArrayLike, Schedule
from ._common import (
    _check_callable,
    _check_int,
    _check_schedules,
    _dtype,
    _f,
    _k,
    _kint,
    _nonneg,
)


def lambda_lr(lr: ArrayLike, lr_lambda: Callable[[Array], ArrayLike]) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.LambdaLR`.

    .. math::
        \gamma_k = \gamma_0 \cdot f(k)

    Args:
        lr: base learning rate :math:`\gamma_0`.
        lr_lambda: the factor :math:`f`. It receives the step as an integer-valued float array
            (float64 with x64), so ``0.1 * k`` and ``k / 10`` compute as torch's Python floats
            do, and it must be traceable with ``jnp`` (``jnp.minimum``, ``jnp.where``, not
            ``min`` or ``if``). Any optax schedule works as ``lr_lambda``.

    Returns:
        A schedule ``k -> lr``.

    Example::

        >>> from fnlearn.schedules import lambda_lr
        >>> import jax.numpy as jnp
        >>> s = lambda_lr(0.5, lambda k: jnp.minimum(1.0, (k + 1) / 4))
        >>> [float(s(k)) for k in range(5)]
        [0.125, 0.25, 0.375, 0.5, 0.5]

    optax equivalent: ``lambda k: lr * f(k)`` (exact).
    """
    lr = _nonneg(lr, "lr", "lambda_lr")
    _check_callable(lr_lambda, "lr_lambda")

    def schedule(count: ArrayLike) -> Array:
        return _f(lr) * jnp.asarray(lr_lambda(_k(count))).astype(_dtype())

    return schedule


def multiplicative_lr(lr: ArrayLike, lr_lambda: Callable[[Array], ArrayLike]) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.MultiplicativeLR`.

    .. math::
        \gamma_k = \gamma_0 \prod_{i=1}^{k} f(i)

    The product is taken in torch's order with a ``lax.fori_loop`` of ``k`` iterations (a
    ``while_loop`` for a traced step), so one evaluation costs O(k): for a constant factor
    use :func:`exponential_lr`, which is the same schedule in closed form.

    Args:
        lr: base learning rate :math:`\gamma_0`.
        lr_lambda: the per-step factor :math:`f`, called with the step ``i`` as an
            integer-valued float array; must be traceable with ``jnp``.

    Returns:
        A schedule ``k -> lr`` (not reverse-differentiable in the step, which is an integer).

    Example::

        >>> from fnlearn.schedules import multiplicative_lr
        >>> s = multiplicative_lr(1.0, lambda i: 0.5)
        >>> [float(s(k)) for k in range(4)]
        [1.0, 0.5, 0.25, 0.125]

    No optax equivalent (optax has no cumulative-product schedule).
    """
    lr = _nonneg(lr, "lr", "multiplicative_lr")
    _check_callable(lr_lambda, "lr_lambda")

    def schedule(count: ArrayLike) -> Array:
        dtype = _dtype()

        def body(i: Array, acc: Array) -> Array:
            return acc * jnp.asarray(lr_lambda(i.astype(dtype))).astype(dtype)

        return lax.fori_loop(1, _kint(count) + 1, body, _f(lr))

    return schedule


def sequential_lr(schedulers: Sequence[Schedule], milestones: Sequence[int]) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.SequentialLR`.

    .. math::
        \gamma_k = s_i(k - m_i) \quad \text{for } m_i \le k < m_{i+1},
        \qquad m_0 = 0

    Schedule :math:`s_i` restarts from its own step 0 at milestone :math:`m_i` (as torch
    restarts the i-th scheduler there).

    Args:
        schedulers: the schedules :math:`s_0, \ldots, s_n` (built with the same base lr, as
            torch's schedulers share one optimizer).
        milestones: the n non-decreasing steps :math:`m_1, \ldots, m_n` at which the next
            schedule takes over.

    Returns:
        A schedule ``k -> lr`` (``lax.switch`` over the schedules).

    Example::

        >>> from fnlearn.schedules import exponential_lr, linear_lr, sequential_lr
        >>> warmup = linear_lr(1.0, start_factor=0.5, total_iters=2)
        >>> decay = exponential_lr(1.0, gamma=0.5)
        >>> s = sequential_lr([warmup, decay], milestones=[2])
        >>> [float(s(k)) for k in range(5)]
        [0.5, 0.75, 1.0, 0.5, 0.25]

    optax equivalent (exact): ``optax.join_schedules(schedulers, milestones)``; e.g.
    ``sequential_lr([linear_lr(lr, s, 1.0, W), cosine_annealing_lr(lr, T - W)], [W])`` is
    ``optax.warmup_cosine_decay_schedule(lr * s, lr, W, T)`` up to step ``T``.

    .. warning::
       torch restarts a scheduler at its milestone through its closed form where it has one.
       :class:`~torch.optim.lr_scheduler.MultiplicativeLR` has none: torch restarts it from
       the lr the previous scheduler reached (times ``f(0)``), not from the base lr as
       here; a :func:`multiplicative_lr` that should continue from the previous value is a
       :func:`lambda_lr` with the product written out.
    """
    schedulers = list(schedulers)
    milestones = list(milestones)
    if len(schedulers) < 1:
        raise ValueError("SequentialLR expects at least one scheduler, but got no scheduler.")
    _check_schedules(schedulers, "SequentialLR")
    if len(milestones) != len(schedulers) - 1:
        raise ValueError(
            "Sequential Schedulers expects number of schedulers provided to be one more "
            f"than the number of milestone points, but got number of schedulers {len(schedulers)} "
            f"and the number of milestones to be equal to {len(milestones)}"
        )
    for m in milestones:
        _check_int(m, "milestone", 0)
    if any(b < a for a, b in zip(milestones[:-1], milestones[1:], strict=True)):
        raise ValueError(f"milestones must be non-decreasing, got {milestones}")
    starts = [0, *(int(m) for m in milestones)]

    def schedule(count: ArrayLike) -> Array:
        k = _kint(count)
        dtype = _dtype()
        if len(schedulers) == 1:
            return jnp.asarray(schedulers[0](k)).astype(dtype)
        idx = jnp.sum(k >= jnp.asarray(starts[1:], jnp.int32))
        offset = k - jnp.asarray(starts, jnp.int32)[idx]
        branches = [lambda c, s=s: jnp.asarray(s(c)).astype(dtype) for s in schedulers]
        return lax.switch(idx, branches, offset)

    return schedule


def chained_scheduler(lr: ArrayLike, schedulers: Sequence[Schedule]) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.ChainedScheduler`.

    .. math::
        \gamma_k = \gamma_0 \prod_i \frac{s_i(k)}{\gamma_0}

    torch steps every scheduler on the same optimizer, each multiplying the lr by its own
    per-step factor; the effects multiply.

    Args:
        lr: the base learning rate :math:`\gamma_0` every schedule was built with.
        schedulers: the schedules :math:`s_i`, all built with base lr ``lr``.

    Returns:
        A schedule ``k -> lr``.

    Example::

        >>> from fnlearn.schedules import chained_scheduler, constant_lr, exponential_lr
        >>> s = chained_scheduler(1.0, [constant_lr(1.0, factor=0.5, total_iters=2),
        ...                             exponential_lr(1.0, gamma=0.9)])
        >>> [round(float(s(k)), 4) for k in range(4)]
        [0.5, 0.45, 0.81, 0.729]

    optax equivalent: the product of the optax schedules divided by ``lr ** (n - 1)``.

    .. warning::
       The product is torch's result when each chained scheduler multiplies the lr it finds:
       StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR,
       MultiplicativeLR, and CosineAnnealingLR with ``eta_min=0`` up to ``T_max``. Schedulers
       that set the lr outright (LambdaLR, CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts,
       CosineAnnealingLR with ``eta_min > 0`` or past ``T_max``) overwrite in torch what the
       earlier ones in the chain did and keep only the later ones' last per-step factors; that
       order-dependent behaviour is not reproduced.
    """
    schedulers = list(schedulers)
    if len(schedulers) < 1:
        raise ValueError(
            "ChainedScheduler expects at least one scheduler to be chained, but got no "
            "scheduler."
        )
    _check_schedules(schedulers, "ChainedScheduler")
    lr = _nonneg(lr, "lr", "chained_scheduler")

    def schedule(count: ArrayLike) -> Array:
        base = _f(lr)
        safe = jnp.where(base == 0, jnp.ones([], _dtype()), base)
        value = base
        for s in schedulers:
            value = value * (jnp.asarray(s(count)).astype(_dtype()) / safe)
        return value

    return schedule
