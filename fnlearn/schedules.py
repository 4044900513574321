r"""torch.optim.lr_scheduler's schedulers as pure, jit-able functions of the step.

Every factory returns a :data:`~fnlearn._typing.Schedule`: a function ``count -> value`` that
accepts a Python int or an integer array (an ``int32`` tracer under ``jit``) and returns a
scalar of the default float dtype (float64 with ``jax_enable_x64``, else float32).

Convention (torch's, measured against torch 2.13): the k-th update, k = 0, 1, ..., uses
``schedule(k)``, which equals ``optimizer.param_groups[0]['lr']`` during the k-th
``optimizer.step()`` when ``scheduler.step()`` is called after each optimizer step. This is
also optax's ``count`` convention, so every schedule here is an optax schedule and every optax
schedule can be passed where fnlearn takes a schedule.

Names are the snake_case of torch's class names; the first argument is the base lr that torch
takes from the optimizer (``lr``), followed by torch's arguments with torch's defaults.
:func:`cyclic_lr` and :func:`one_cycle_lr` take torch's own ``base_lr`` / ``max_lr``; torch
also cycles the momentum (or Adam's ``beta1``) with them by default: :func:`cyclic_momentum`
and :func:`one_cycle_momentum` give those values, to pass as ``momentum=`` or
``betas=(schedule, beta2)`` to an fnlearn optimizer.

``ReduceLROnPlateau`` depends on a metric, not on the step: it is
:func:`fnlearn.optim.reduce_lr_on_plateau`.

Example::

    >>> import jax.numpy as jnp
    >>> from fnlearn import optim, schedules
    >>> sched = schedules.step_lr(0.1, step_size=2, gamma=0.5)
    >>> [round(float(sched(k)), 4) for k in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
    >>> opt = optim.sgd(lr=sched)   # the k-th update uses sched(k)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._typing import Array, ArrayLike, Schedule
from ._validate import concrete_float, hyperparameter, is_int, is_number, is_tracer

__all__ = [
    "chained_scheduler",
    "constant_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "cyclic_lr",
    "cyclic_momentum",
    "exponential_lr",
    "lambda_lr",
    "linear_lr",
    "multi_step_lr",
    "multiplicative_lr",
    "one_cycle_lr",
    "one_cycle_momentum",
    "polynomial_lr",
    "sequential_lr",
    "step_lr",
    "swa_lr",
]

_INT32_MAX = 2**31 - 1


# --- helpers -------------------------------------------------------------------------------


def _dtype() -> np.dtype:
    """The default float dtype at call time (float64 with x64, else float32)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def _f(x: ArrayLike) -> Array:
    """A hyperparameter or value as a scalar of the default float dtype."""
    return jnp.asarray(x, dtype=_dtype())


def _k(count: ArrayLike) -> Array:
    """The step as an integer-valued float (torch computes with Python ints and floats)."""
    return jnp.asarray(count).astype(_dtype())


def _kint(count: ArrayLike) -> Array:
    """The step as an int32 scalar."""
    return jnp.asarray(count).astype(jnp.int32)


def _concrete_max(count: ArrayLike) -> int | None:
    """The largest step in ``count`` when it is known now (a number or a concrete array);
    ``None`` under a trace."""
    if is_tracer(count):
        return None
    values = np.asarray(count)
    return int(values.max()) if values.size else None


def _check_int(value: object, name: str, minimum: int) -> None:
    """``value`` must be a Python/numpy integer >= minimum."""
    if not is_int(value, minimum):
        what = "positive integer" if minimum == 1 else f"integer >= {minimum}"
        raise ValueError(f"Expected {what} {name}, but got {value!r}")


def _nonneg(value: object, name: str, owner: str) -> ArrayLike:
    """``value`` as torch's schedulers take it (a number, or a 0-d / one-element array:
    :func:`fnlearn._validate.hyperparameter`), checked ``>= 0`` and not NaN where concrete."""
    value = hyperparameter(value, name, owner, schedule=False)
    v = concrete_float(value)
    if v is not None and (math.isnan(v) or v < 0):
        raise ValueError(f"Expected non-negative {name}, but got {value!r}")
    return value


def _check_callable(fn: object, name: str) -> None:
    if not callable(fn):
        raise TypeError(f"{name} should be a function, but got {type(fn).__name__}")


# --- step-based decays ---------------------------------------------------------------------


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


# --- cosine --------------------------------------------------------------------------------


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
    if not is_number(T_max) or T_max <= 0:
        raise ValueError(f"Expected positive T_max, but got {T_max!r}")
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


# --- cyclic --------------------------------------------------------------------------------

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
    if not is_number(step_size_up) or step_size_up <= 0:
        raise ValueError(f"Expected positive step_size_up, but got {step_size_up!r}")
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


# --- one cycle -----------------------------------------------------------------------------


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
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(
            f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
        )
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
    if not is_number(div_factor) or div_factor <= 0:
        raise ValueError(f"Expected positive div_factor, but got {div_factor!r}")
    if not is_number(final_div_factor) or final_div_factor <= 0:
        raise ValueError(f"Expected positive final_div_factor, but got {final_div_factor!r}")
    initial = max_lr / div_factor
    minimum = initial / final_div_factor
    return _one_cycle(
        total_steps,
        epochs,
        steps_per_epoch,
        pct_start,
        anneal_strategy,
        three_phase,
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
        total_steps,
        epochs,
        steps_per_epoch,
        pct_start,
        anneal_strategy,
        three_phase,
        (max_momentum, base_momentum, max_momentum),
        (max_momentum, base_momentum, max_momentum, max_momentum),
    )


# --- user functions and combinators --------------------------------------------------------


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
    for i, s in enumerate(schedulers):
        if not callable(s):
            raise TypeError(
                f"SequentialLR at index {i} should be a schedule (a function of the step), "
                f"but got {type(s).__name__}"
            )
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
    for i, s in enumerate(schedulers):
        if not callable(s):
            raise TypeError(
                f"ChainedScheduler at index {i} should be a schedule (a function of the "
                f"step), but got {type(s).__name__}"
            )
    lr = _nonneg(lr, "lr", "chained_scheduler")

    def schedule(count: ArrayLike) -> Array:
        base = _f(lr)
        safe = jnp.where(base == 0, jnp.ones([], _dtype()), base)
        value = base
        for s in schedulers:
            value = value * (jnp.asarray(s(count)).astype(_dtype()) / safe)
        return value

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
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(
            f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
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
