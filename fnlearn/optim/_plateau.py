r"""ReduceLROnPlateau: :class:`torch.optim.lr_scheduler.ReduceLROnPlateau` as a pure state
machine fed the metric.

Design: torch's ReduceLROnPlateau is stepped with a metric once per *epoch* while the
optimizer is stepped once per *batch*, so it is not a function of the optimizer's step count
and not a per-update transformation. It is a pair of pure functions, ``init() -> state`` and
``step(state, metric) -> state``, whose ``state.lr`` is fed to the optimizer as a run-time
hyperparameter: wrap the optimizer in :func:`optax.inject_hyperparams` and write the new lr
into its state with :func:`set_hyperparam` (a state array, so the jitted train step is not
recompiled). ``step`` is jit-able and the metric may be a traced scalar.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._typing import Array, ArrayLike
from .._validate import is_int, is_number


class PlateauState(NamedTuple):
    """State of :func:`reduce_lr_on_plateau`, named after torch's attributes.

    Attributes:
        lr: the learning rate to use now (``param_groups[i]['lr']``): a scalar, or one value
            per parameter group when ``lr`` was given as a sequence.
        best: the best metric seen (``+inf`` / ``-inf`` before the first step).
        num_bad_epochs: epochs since the last improvement (int32).
        cooldown_counter: epochs of cooldown left (int32).
        last_epoch: number of ``step`` calls (int32).
    """

    lr: Array
    best: Array
    num_bad_epochs: Array
    cooldown_counter: Array
    last_epoch: Array


class ReduceLROnPlateau(NamedTuple):
    """The pure pair returned by :func:`reduce_lr_on_plateau`."""

    init: Callable[[], PlateauState]
    step: Callable[[PlateauState, ArrayLike], PlateauState]


def _check(value: Any, name: str, *, integer: bool = False) -> None:
    if integer:
        if not is_int(value, 0):
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    elif is_number(value) and (math.isnan(value) or value < 0):
        raise ValueError(f"{name} must be non-negative, got {value!r}")


def reduce_lr_on_plateau(
    lr: float | Sequence[float] | Array,
    mode: Literal["min", "max"] = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: Literal["rel", "abs"] = "rel",
    cooldown: int = 0,
    min_lr: float | Sequence[float] = 0.0,
    eps: float = 1e-8,
) -> ReduceLROnPlateau:
    r"""JAX implementation of :class:`torch.optim.lr_scheduler.ReduceLROnPlateau`.

    .. math::
        \begin{aligned}
        &\textbf{step}(m): \\
        &\quad \textbf{if}\ m \text{ better than } \textit{best}:\
            \textit{best} \leftarrow m,\ \textit{bad} \leftarrow 0
            \quad \textbf{else}:\ \textit{bad} \leftarrow \textit{bad} + 1 \\
        &\quad \textbf{if}\ \textit{cd} > 0:\ \textit{cd} \leftarrow \textit{cd} - 1,\
            \textit{bad} \leftarrow 0 \\
        &\quad \textbf{if}\ \textit{bad} > \texttt{patience}:\
            \gamma' \leftarrow \max(\gamma \cdot \texttt{factor}, \texttt{min\_lr});\
            \textbf{if}\ \gamma - \gamma' > \texttt{eps}:\ \gamma \leftarrow \gamma';\
            \textit{cd} \leftarrow \texttt{cooldown},\ \textit{bad} \leftarrow 0
        \end{aligned}

    "Better" with :math:`\tau` = ``threshold``: ``'min'``/``'rel'``:
    :math:`m < \textit{best}(1 - \tau)`; ``'min'``/``'abs'``: :math:`m < \textit{best} - \tau`;
    ``'max'``/``'rel'``: :math:`m > \textit{best}(1 + \tau)`; ``'max'``/``'abs'``:
    :math:`m > \textit{best} + \tau`. A NaN metric is never better. Symbols: :math:`\gamma`
    = ``state.lr``, *bad* = ``num_bad_epochs``, *cd* = ``cooldown_counter``.

    Args:
        lr: the initial learning rate (the optimizer's lr in torch); a sequence gives one lr
            per parameter group and ``state.lr`` is then a vector.
        mode: ``'min'`` (the metric should decrease) or ``'max'``.
        factor: multiplier of the lr at a reduction, in ``[0, 1)``. Default: 0.1.
        patience: bad epochs tolerated; the lr is reduced at the ``patience + 1``-th.
            Default: 10.
        threshold: significance threshold :math:`\tau` of an improvement. Default: 1e-4.
        threshold_mode: ``'rel'`` or ``'abs'``. Default: ``'rel'``.
        cooldown: epochs after a reduction during which bad epochs are not counted.
        min_lr: lower bound of the lr (one per group when ``lr`` is a sequence). Default: 0.
        eps: a reduction smaller than ``eps`` is skipped. Default: 1e-8.

    Returns:
        A :class:`ReduceLROnPlateau` pair ``(init, step)``: ``init()`` returns the state and
        ``step(state, metric)`` the next state; both are pure and jit-able. The state is in
        the default float dtype (float64 with x64, matching torch's Python floats; else
        float32).

    Example (the lr fed to a jitted step without recompiling it)::

        >>> import jax, jax.numpy as jnp, optax
        >>> from fnlearn.optim import reduce_lr_on_plateau, set_hyperparam, sgd
        >>> plateau = reduce_lr_on_plateau(0.1, patience=1, factor=0.5)
        >>> opt = optax.inject_hyperparams(sgd)(lr=0.1, momentum=0.9)
        >>> pstate, opt_state = plateau.init(), opt.init({"w": jnp.ones(2)})
        >>> for val_loss in [1.0, 0.9, 0.95, 0.93]:   # one metric per epoch
        ...     pstate = plateau.step(pstate, val_loss)
        ...     opt_state = set_hyperparam(opt_state, "lr", pstate.lr)
        >>> opt_state.hyperparams["lr"]
        Array(0.05, dtype=float32)

    .. warning::
       ``optax.contrib.reduce_on_plateau`` is a different algorithm: a transformation that
       multiplies the *updates* by a scale, fed ``value=`` at every update; it reduces when
       the bad-epoch count *equals* ``patience`` (torch: exceeds it, one epoch later), tests
       ``m < (1 - rtol) best - atol`` in min mode only, and has no ``eps``. Scaling updates
       equals scaling the lr for SGD, Adam(W), RMSprop and Adagrad but not for Rprop and ASGD,
       whose state depends on the lr.
    """
    if is_number(factor) and factor >= 1.0:
        raise ValueError("Factor should be < 1.0.")
    _check(factor, "factor")
    if mode not in ("min", "max"):
        raise ValueError(f"mode {mode} is unknown!")
    if threshold_mode not in ("rel", "abs"):
        raise ValueError(f"threshold mode {threshold_mode} is unknown!")
    _check(patience, "patience", integer=True)
    _check(cooldown, "cooldown", integer=True)
    _check(threshold, "threshold")
    _check(eps, "eps")
    grouped = isinstance(lr, (list, tuple)) or np.ndim(lr) == 1
    if not grouped and np.ndim(lr) != 0:
        raise ValueError(f"lr must be a scalar or a sequence of per-group lrs, got shape "
                         f"{np.shape(lr)}")
    n_groups = len(lr) if grouped else 1
    for value in np.ravel(np.asarray(lr, dtype=object)) if grouped else [lr]:
        _check(value, "lr")
    if isinstance(min_lr, (list, tuple)):
        if len(min_lr) != n_groups:
            raise ValueError(f"expected {n_groups} min_lrs, got {len(min_lr)}")
        if not grouped and n_groups == 1:
            min_lr = min_lr[0]
    for value in min_lr if isinstance(min_lr, (list, tuple)) else [min_lr]:
        _check(value, "min_lr")

    def init() -> PlateauState:
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
        lr0 = jnp.asarray(lr, dtype)
        worse = math.inf if mode == "min" else -math.inf
        zero = jnp.zeros([], jnp.int32)
        return PlateauState(lr0, jnp.asarray(worse, dtype), zero, zero, zero)

    def is_better(a: Array, best: Array) -> Array:
        if mode == "min" and threshold_mode == "rel":
            return a < best * (1.0 - threshold)
        if mode == "min":
            return a < best - threshold
        if threshold_mode == "rel":
            return a > best * (threshold + 1.0)
        return a > best + threshold

    def step(state: PlateauState, metric: ArrayLike) -> PlateauState:
        dtype = state.best.dtype
        current = jnp.asarray(metric).astype(dtype)
        if current.shape != ():
            raise ValueError(f"metric must be a scalar, got shape {current.shape}")
        better = is_better(current, state.best)
        best = jnp.where(better, current, state.best)
        bad = jnp.where(better, 0, state.num_bad_epochs + 1)
        in_cooldown = state.cooldown_counter > 0
        cooldown_counter = jnp.where(in_cooldown, state.cooldown_counter - 1,
                                     state.cooldown_counter)
        bad = jnp.where(in_cooldown, 0, bad)
        reduce = bad > patience
        old = state.lr
        new = jnp.maximum(old * jnp.asarray(factor, dtype), jnp.asarray(min_lr, dtype))
        lr_t = jnp.where(reduce & (old - new > eps), new, old)
        return PlateauState(
            lr=lr_t,
            best=best,
            num_bad_epochs=jnp.where(reduce, 0, bad).astype(jnp.int32),
            cooldown_counter=jnp.where(reduce, cooldown, cooldown_counter).astype(jnp.int32),
            last_epoch=state.last_epoch + 1,
        )

    return ReduceLROnPlateau(init, step)


def set_hyperparam(opt_state: Any, name: str, value: ArrayLike) -> Any:
    """A copy of an :func:`optax.inject_hyperparams` state with hyperparameter ``name`` set.

    ``value`` is cast to the stored hyperparameter's dtype and shape, so a jitted train step
    taking ``opt_state`` sees arrays of unchanged type and is not recompiled (torch's
    ``group['lr'] = value``). Nothing is mutated.

    Args:
        opt_state: the state of ``optax.inject_hyperparams(opt)(...)`` (a NamedTuple with a
            ``hyperparams`` dict).
        name: the hyperparameter, e.g. ``'lr'``.
        value: its new value (a number or a scalar array, possibly traced).

    Returns:
        The new state.

    Example::

        >>> import jax.numpy as jnp, optax
        >>> from fnlearn.optim import sgd, set_hyperparam
        >>> opt = optax.inject_hyperparams(sgd)(lr=0.1)
        >>> state = set_hyperparam(opt.init({"w": jnp.ones(2)}), "lr", 0.01)
        >>> state.hyperparams["lr"]
        Array(0.01, dtype=float32)
    """
    hyperparams = getattr(opt_state, "hyperparams", None)
    if not isinstance(hyperparams, dict) or not hasattr(opt_state, "_replace"):
        raise TypeError(
            "set_hyperparam expects the state of optax.inject_hyperparams(...), got "
            f"{type(opt_state).__name__}"
        )
    if name not in hyperparams:
        raise KeyError(
            f"{name!r} is not an injected hyperparameter; injected: {sorted(hyperparams)}"
        )
    old = jnp.asarray(hyperparams[name])
    new = jnp.asarray(value, dtype=old.dtype)
    if new.shape != old.shape:
        raise ValueError(f"{name} has shape {old.shape}, got a value of shape {new.shape}")
    return opt_state._replace(hyperparams={**hyperparams, name: new})
