"""Cyclical schedules: CyclicLR and OneCycleLR, the lr and the momentum they cycle with it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import jax.numpy as jnp

from .._typing import Array, ArrayLike, Schedule
from .._validate import is_int, is_number
from ._common import (
    _check_anneal_strategy,
    _check_callable,
    _check_positive,
    _concrete_max,
    _dtype,
    _f,
    _k,
    _nonneg,
)

_CyclicMode = Literal["triangular", "triangular2", "exp_range"]


def _cyclic(
    step_size_up: float,
    step_size_down: float | None,
    mode: str,
    gamma: float,
    scale_fn: Callable[[Array], ArrayLike] | None,
    scale_mode: str,
) -> Callable[[ArrayLike], tuple[Array, Array]]:
    """The shared cycle of CyclicLR: ``k -> (scale_factor, scale)``, torch's two factors."""
    _check_positive(step_size_up, "step_size_up")
    if step_size_down is not None and (not is_number(step_size_down) or step_size_down < 0):
        raise ValueError(f"Expected non-negative step_size_down, but got {step_size_down!r}")
    if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
        raise ValueError("mode is invalid and scale_fn is None")
    if scale_fn is not None:
        _check_callable(scale_fn, "scale_fn")
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
    else:
        # torch ignores scale_mode for the built-in modes
        scale_mode = "iterations" if mode == "exp_range" else "cycle"
    gamma = _nonneg(gamma, "gamma", "cyclic_lr")
    up = float(step_size_up)
    down = float(step_size_down) if step_size_down is not None else up
    total = up + down
    ratio = up / total

    def factors(count: ArrayLike) -> tuple[Array, Array]:
        k = _k(count)
        cycle = jnp.floor(1 + k / total)
        x = 1.0 + k / total - cycle
        scale_factor = jnp.where(x <= ratio, x / ratio, (x - 1) / (ratio - 1))
        arg = cycle if scale_mode == "cycle" else k
        if scale_fn is not None:
            scale = jnp.asarray(scale_fn(arg)).astype(_dtype())
        elif mode == "triangular":
            scale = jnp.ones([], _dtype())
        elif mode == "triangular2":
            scale = 1 / (2.0 ** (arg - 1))
        else:
            scale = _f(gamma) ** arg
        return scale_factor, scale

    return factors


def cyclic_lr(
    base_lr: ArrayLike,
    max_lr: ArrayLike,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: _CyclicMode = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[Array], ArrayLike] | None = None,
    scale_mode: Literal["cycle", "iterations"] = "cycle",
) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.CyclicLR` (the lr part).

    .. math::
        \begin{aligned}
        c &= \lfloor 1 + k / (u + d) \rfloor, \qquad x = 1 + k / (u + d) - c,
            \qquad r = u / (u + d) \\
        h &= x / r \ \text{ if } x \le r \ \text{ else } (x - 1) / (r - 1) \\
        \gamma_k &= \gamma_{\text{base}} + (\gamma_{\max} - \gamma_{\text{base}})\, h \,
            \sigma(c \text{ or } k)
        \end{aligned}

    Symbols: :math:`u` = ``step_size_up``, :math:`d` = ``step_size_down`` (default
    :math:`u`), :math:`\sigma` = the scale function: 1 (``'triangular'``),
    :math:`2^{-(c-1)}` (``'triangular2'``), :math:`\texttt{gamma}^k` (``'exp_range'``,
    evaluated on iterations) or ``scale_fn`` evaluated on the cycle :math:`c` or on the
    step :math:`k` according to ``scale_mode``.

    Args:
        base_lr: lower lr of the cycle (torch's ``base_lr``; it replaces the optimizer's lr).
        max_lr: upper lr of the cycle.
        step_size_up: steps in the increasing half (> 0). Default: 2000.
        step_size_down: steps in the decreasing half (default ``step_size_up``).
        mode: ``'triangular'``, ``'triangular2'`` or ``'exp_range'``; ignored when
            ``scale_fn`` is given.
        gamma: the base of ``'exp_range'``. Default: 1.0.
        scale_fn: custom scale function; it receives the cycle number or the step as an
            integer-valued float array and must be traceable with ``jnp``.
        scale_mode: ``'cycle'`` or ``'iterations'``: what ``scale_fn`` receives.

    Returns:
        A schedule ``k -> lr``.

    Example::

        >>> from fnlearn.schedules import cyclic_lr
        >>> s = cyclic_lr(0.1, 1.0, step_size_up=2, mode="triangular2")
        >>> [round(float(s(k)), 3) for k in range(9)]
        [0.1, 0.55, 1.0, 0.55, 0.1, 0.325, 0.55, 0.325, 0.1]

    .. warning::
       With its default ``cycle_momentum=True`` torch's CyclicLR also overwrites the
       optimizer's ``momentum`` (or Adam's ``beta1``) at every step, even for an SGD built
       with ``momentum=0``. To reproduce torch, pass :func:`cyclic_momentum` with the same
       cycle arguments: ``sgd(lr=cyclic_lr(...), momentum=cyclic_momentum(...))`` or
       ``adam(lr=cyclic_lr(...), betas=(cyclic_momentum(...), 0.999))``. optax has no
       cyclic schedule.
    """
    base_lr = _nonneg(base_lr, "base_lr", "cyclic_lr")
    max_lr = _nonneg(max_lr, "max_lr", "cyclic_lr")
    factors = _cyclic(step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode)

    def schedule(count: ArrayLike) -> Array:
        scale_factor, scale = factors(count)
        low, high = _f(base_lr), _f(max_lr)
        return low + (high - low) * scale_factor * scale

    return schedule


def cyclic_momentum(
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: _CyclicMode = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[Array], ArrayLike] | None = None,
    scale_mode: Literal["cycle", "iterations"] = "cycle",
) -> Schedule:
    r"""The momentum (or ``beta1``) that :class:`torch.optim.lr_scheduler.CyclicLR` sets with
    ``cycle_momentum=True`` (torch's default).

    .. math::
        \mu_k = \mu_{\max} - (\mu_{\max} - \mu_{\text{base}})\, h\, \sigma(c \text{ or } k)

    with :math:`h`, :math:`\sigma`, :math:`c` as in :func:`cyclic_lr`: the momentum moves
    inversely to the lr (``max_momentum`` when the lr is at ``base_lr``).

    Args:
        base_momentum: lower momentum. Default: 0.8.
        max_momentum: upper momentum. Default: 0.9.
        step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode: as in
            :func:`cyclic_lr` (pass the same values).

    Returns:
        A schedule ``k -> momentum``: pass it as ``momentum=`` to
        :func:`fnlearn.optim.sgd` / ``rmsprop`` or as ``betas=(schedule, beta2)`` to
        :func:`fnlearn.optim.adam` and the other Adam-type optimizers.

    Example::

        >>> from fnlearn.schedules import cyclic_momentum
        >>> m = cyclic_momentum(0.8, 0.9, step_size_up=2)
        >>> [round(float(m(k)), 3) for k in range(5)]
        [0.9, 0.85, 0.8, 0.85, 0.9]
    """
    base_momentum = _nonneg(base_momentum, "base_momentum", "cyclic_momentum")
    max_momentum = _nonneg(max_momentum, "max_momentum", "cyclic_momentum")
    factors = _cyclic(step_size_up, step_size_down, mode, gamma, scale_fn, scale_mode)

    def schedule(count: ArrayLike) -> Array:
        scale_factor, scale = factors(count)
        low, high = _f(base_momentum), _f(max_momentum)
        return high - (high - low) * scale_factor * scale

    return schedule


def _one_cycle(
    total_steps: int | None,
    epochs: int | None,
    steps_per_epoch: int | None,
    pct_start: float,
    anneal_strategy: str,
    three_phase: bool,
    two_phase_values: tuple[ArrayLike, ArrayLike, ArrayLike],
    three_phase_values: tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike],
) -> Schedule:
    """OneCycleLR's phases, in torch's order of checks; values are the phase end points."""
    if total_steps is not None:
        if not is_int(total_steps, 1):
            raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
    elif epochs is not None and steps_per_epoch is not None:
        if not is_int(epochs, 1):
            raise ValueError(f"Expected positive integer epochs, but got {epochs}")
        if not is_int(steps_per_epoch, 1):
            raise ValueError(
                f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}"
            )
        total_steps = epochs * steps_per_epoch
    else:
        raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
    if not is_number(pct_start) or pct_start < 0 or pct_start > 1:
        raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
    _check_anneal_strategy(anneal_strategy)
    if three_phase:
        ends = [
            float(pct_start * total_steps) - 1,
            float(2 * pct_start * total_steps) - 2,
            total_steps - 1,
        ]
        a, b, c, d = three_phase_values
        points = [(a, b), (b, c), (c, d)]
    else:
        ends = [float(pct_start * total_steps) - 1, total_steps - 1]
        a, b, c = two_phase_values
        points = [(a, b), (b, c)]
    if ends[0] == 0:
        raise ValueError(
            f"pct_start * total_steps - 1 = 0 (pct_start={pct_start}, total_steps="
            f"{total_steps}): the first phase has zero length (torch raises ZeroDivisionError "
            "on the first step)"
        )
    starts = [0.0, *ends[:-1]]

    def anneal(start: Array, end: Array, pct: Array) -> Array:
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (jnp.cos(math.pi * pct) + 1)
        # torch's (end - start) * pct + start, rearranged: exact at both ends, so a tiny end
        # value (max_lr / div / final_div) keeps its relative precision in float32
        return start * (1 - pct) + end * pct

    def schedule(count: ArrayLike) -> Array:
        # torch raises past total_steps; so does a concrete step here. A traced step (under
        # jit) cannot raise: the schedule holds its value at total_steps
        last = _concrete_max(count)
        if last is not None and last > total_steps:
            raise ValueError(f"Tried to step {last} times. The specified number of total "
                             f"steps is {total_steps}")
        k = jnp.minimum(_k(count), total_steps)
        value = None
        for i in reversed(range(len(ends))):
            length = ends[i] - starts[i]
            # a zero-length phase after the first is reached only at k = total_steps, where
            # torch raises ZeroDivisionError; take its end value there
            pct = (k - starts[i]) / length if length != 0 else jnp.ones([], _dtype())
            phase = anneal(_f(points[i][0]), _f(points[i][1]), pct)
            value = phase if value is None else jnp.where(k <= ends[i], phase, value)
        return value

    return schedule


def one_cycle_lr(
    max_lr: ArrayLike,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Schedule:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.OneCycleLR` (the lr part).

    .. math::
        \begin{aligned}
        \gamma_{\text{init}} &= \gamma_{\max} / \texttt{div\_factor}, \qquad
        \gamma_{\min} = \gamma_{\text{init}} / \texttt{final\_div\_factor} \\
        \text{two phases:}\ & \gamma_{\text{init}} \nearrow \gamma_{\max}
            \text{ on } [0, pT - 1], \quad \gamma_{\max} \searrow \gamma_{\min}
            \text{ on } [pT - 1, T - 1] \\
        \text{three phases:}\ & \gamma_{\text{init}} \nearrow \gamma_{\max}
            \text{ on } [0, pT - 1], \ \gamma_{\max} \searrow \gamma_{\text{init}}
            \text{ on } [pT - 1, 2pT - 2], \ \gamma_{\text{init}} \searrow \gamma_{\min}
            \text{ on } [2pT - 2, T - 1]
        \end{aligned}

    Within a phase from step :math:`a` to :math:`b`, with :math:`\rho = (k - a) / (b - a)`,
    ``'cos'`` anneals ``end + (start - end) / 2 * (1 + cos(pi * rho))`` and ``'linear'``
    ``start + (end - start) * rho``. Symbols: :math:`T` = ``total_steps`` (or ``epochs *
    steps_per_epoch``), :math:`p` = ``pct_start``.

    Args:
        max_lr: peak learning rate :math:`\gamma_{\max}`.
        total_steps: number of steps in the cycle; else ``epochs`` and ``steps_per_epoch``.
        epochs: number of epochs (with ``steps_per_epoch``).
        steps_per_epoch: steps per epoch (with ``epochs``).
        pct_start: fraction of the cycle spent increasing the lr. Default: 0.3.
        anneal_strategy: ``'cos'`` or ``'linear'``. Default: ``'cos'``.
        div_factor: :math:`\gamma_{\text{init}} = \gamma_{\max} / \texttt{div\_factor}`.
            Default: 25.
        final_div_factor: :math:`\gamma_{\min} = \gamma_{\text{init}} /
            \texttt{final\_div\_factor}`. Default: 1e4.
        three_phase: use the three-phase schedule of the paper (fastai's two-phase default).

    Returns:
        A schedule ``k -> lr``, equal to torch's for ``k = 0, ..., total_steps``. Past the
        end, a concrete step raises torch's ``ValueError`` ("Tried to step k times. The
        specified number of total steps is T"); a traced step (under ``jit``) cannot raise,
        and there the schedule holds its value at ``total_steps``.

    Example::

        >>> from fnlearn.schedules import one_cycle_lr
        >>> s = one_cycle_lr(1.0, total_steps=10, pct_start=0.5, anneal_strategy="linear",
        ...                  div_factor=10.0, final_div_factor=10.0)
        >>> [round(float(s(k)), 3) for k in (0, 2, 4, 6, 9)]
        [0.1, 0.55, 1.0, 0.604, 0.01]

    .. warning::
       ``optax.cosine_onecycle_schedule(T, max_lr, pct_start, div_factor,
       final_div_factor)`` puts the phase boundaries at ``int(pct_start * T)`` and ``T``,
       one step later than torch's ``pct_start * T - 1`` and ``T - 1``: for T=50 its values
       differ by up to 0.06 * max_lr, and at step T - 1, where torch reaches the final lr,
       optax's is 500 times larger. ``linear_onecycle_schedule`` is a different
       three-phase shape. An exact optax form, when ``pct_start * T`` is an integer, is
       ``optax.piecewise_interpolate_schedule('cosine', max_lr / div_factor,
       {pct_start * T - 1: div_factor, T - 1: 1 / (div_factor * final_div_factor)})``. Like
       CyclicLR, torch also cycles the momentum / ``beta1`` by default: see
       :func:`one_cycle_momentum`.

    References:
        Smith & Topin, 2017. `Super-Convergence: Very Fast Training of Neural Networks Using
        Large Learning Rates <https://arxiv.org/abs/1708.07120>`_.
    """
    max_lr = _nonneg(max_lr, "max_lr", "one_cycle_lr")
    _check_positive(div_factor, "div_factor")
    _check_positive(final_div_factor, "final_div_factor")
    initial = max_lr / div_factor
    minimum = initial / final_div_factor
    return _one_cycle(
        total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy, three_phase,
        (initial, max_lr, minimum),
        (initial, max_lr, initial, minimum),
    )


def one_cycle_momentum(
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    three_phase: bool = False,
) -> Schedule:
    r"""The momentum (or ``beta1``) that :class:`torch.optim.lr_scheduler.OneCycleLR` sets with
    ``cycle_momentum=True`` (torch's default).

    The same phases as :func:`one_cycle_lr`, moving inversely to the lr: ``max_momentum``
    :math:`\searrow` ``base_momentum`` during the warm-up, then back up to ``max_momentum``
    (three phases: back up in the second phase, constant in the third).

    Args:
        total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy, three_phase: as in
            :func:`one_cycle_lr` (pass the same values).
        base_momentum: momentum at the lr peak. Default: 0.85.
        max_momentum: momentum at the start and the end. Default: 0.95.

    Returns:
        A schedule ``k -> momentum``, for ``momentum=`` (SGD, RMSprop) or
        ``betas=(schedule, beta2)`` (Adam and the Adam-type optimizers).

    Example::

        >>> from fnlearn.schedules import one_cycle_momentum
        >>> m = one_cycle_momentum(total_steps=10, pct_start=0.5, anneal_strategy="linear")
        >>> [round(float(m(k)), 3) for k in (0, 2, 4, 9)]
        [0.95, 0.9, 0.85, 0.95]
    """
    base_momentum = _nonneg(base_momentum, "base_momentum", "one_cycle_momentum")
    max_momentum = _nonneg(max_momentum, "max_momentum", "one_cycle_momentum")
    return _one_cycle(
        total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy, three_phase,
        (max_momentum, base_momentum, max_momentum),
        (max_momentum, base_momentum, max_momentum, max_momentum),
    )
