r"""Weight averaging, as :mod:`torch.optim.swa_utils`: SWA and EMA of the parameters.

torch's :class:`~torch.optim.swa_utils.AveragedModel` keeps a copy of a model whose
parameters :meth:`update_parameters` averages with the model's. Here the copy is a pytree in
an :class:`AveragedModelState`, and :func:`averaged_model` returns the pure pair
``init(params) -> state`` / ``update(state, params) -> state``:

.. math::
   \bar\theta_1 = \theta_1, \qquad
   \bar\theta_{n+1} = f(\bar\theta_n, \theta_{n+1}, n) \quad (n \ge 1)

where :math:`n` counts the updates averaged so far and :math:`f` is the averaging function:
equal weights (SWA) by default, or an exponential moving average (EMA). The lr schedule of
torch's SWA recipe, :class:`~torch.optim.swa_utils.SWALR`, is
:func:`fnlearn.schedules.swa_lr`. ``update_bn`` has no counterpart: batch statistics are
values of your model's state, recomputed by running it.

Example::

    >>> import jax.numpy as jnp
    >>> from fnlearn.optim import swa_utils
    >>> ema = swa_utils.averaged_model(multi_avg_fn=swa_utils.get_ema_multi_avg_fn(0.9))
    >>> state = ema.init({"w": jnp.zeros(2)})
    >>> state = ema.update(state, {"w": jnp.ones(2)})        # the first update copies
    >>> state = ema.update(state, {"w": jnp.full(2, 3.0)})
    >>> state.params["w"], int(state.n_averaged)
    (Array([1.2, 1.2], dtype=float32), 2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._typing import Array, Params
from ._base import torch_lerp

#: ``avg_fn(averaged, current, n_averaged) -> new averaged``, one array at a time
AvgFn = Callable[[Array, Array, Array], Array]

__all__ = [
    "AveragedModel",
    "AveragedModelState",
    "averaged_model",
    "get_ema_avg_fn",
    "get_ema_multi_avg_fn",
    "get_swa_avg_fn",
    "get_swa_multi_avg_fn",
]


class AveragedModelState(NamedTuple):
    """The averaged parameters and ``n_averaged`` (torch's buffer: the number of
    ``update`` calls so far; int32 scalar)."""

    params: Params
    n_averaged: Array


class AveragedModel(NamedTuple):
    """What :func:`averaged_model` returns: ``init(params)`` and ``update(state, params)``."""

    init: Callable[[Params], AveragedModelState]
    update: Callable[[AveragedModelState, Params], AveragedModelState]


def _check_decay(decay: float) -> None:
    if decay < 0.0 or decay > 1.0:
        raise ValueError(
            f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")


def get_ema_avg_fn(decay: float = 0.999) -> AvgFn:
    r"""torch's ``get_ema_avg_fn``: :math:`\bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta`
    (:math:`d` = ``decay`` in [0, 1]), for ``averaged_model(avg_fn=...)``."""
    _check_decay(decay)

    def ema(averaged: Array, current: Array, n_averaged: Array) -> Array:
        del n_averaged
        return decay * averaged + (1 - decay) * current

    return ema


def get_ema_multi_avg_fn(decay: float = 0.999) -> AvgFn:
    r"""torch's ``get_ema_multi_avg_fn``: :math:`\bar\theta \leftarrow
    \operatorname{lerp}(\bar\theta, \theta, 1 - d)` (its ``_foreach_lerp_``; equal to
    :func:`get_ema_avg_fn` up to rounding), for ``averaged_model(multi_avg_fn=...)``."""
    _check_decay(decay)

    def ema(averaged: Array, current: Array, n_averaged: Array) -> Array:
        del n_averaged
        return torch_lerp(averaged, current, jnp.asarray(1 - decay, averaged.dtype))

    return ema


def get_swa_avg_fn() -> AvgFn:
    r"""torch's ``get_swa_avg_fn``: :math:`\bar\theta \leftarrow \bar\theta +
    (\theta - \bar\theta) / (n + 1)`, the running mean (torch's default on CPU)."""

    def swa(averaged: Array, current: Array, n_averaged: Array) -> Array:
        return averaged + (current - averaged) / (n_averaged + 1).astype(averaged.dtype)

    return swa


def get_swa_multi_avg_fn() -> AvgFn:
    r"""torch's ``get_swa_multi_avg_fn``: :math:`\operatorname{lerp}(\bar\theta, \theta,
    1 / (n + 1))` (torch's default where it has foreach kernels, e.g. CUDA)."""

    def swa(averaged: Array, current: Array, n_averaged: Array) -> Array:
        weight = 1 / (n_averaged + 1).astype(averaged.dtype)
        return torch_lerp(averaged, current, weight)

    return swa


def averaged_model(
    avg_fn: AvgFn | None = None, multi_avg_fn: AvgFn | None = None
) -> AveragedModel:
    r"""JAX counterpart of :class:`torch.optim.swa_utils.AveragedModel`.

    ``init(params)`` copies the parameters (``n_averaged = 0``); ``update(state, params)``
    is torch's ``update_parameters(model)``: the first call copies ``params``, each later
    one applies the averaging function leafwise, and ``n_averaged`` grows by one. Both are
    pure and jit-able (the first-call copy is a ``where`` on ``n_averaged``).

    Args:
        avg_fn: ``(averaged, current, n_averaged) -> averaged`` per array, as torch's
            ``avg_fn`` (e.g. :func:`get_ema_avg_fn`).
        multi_avg_fn: the same, for the functions torch applies to lists
            (:func:`get_ema_multi_avg_fn`, :func:`get_swa_multi_avg_fn`); fnlearn's take one
            array at a time and compute what torch's list versions compute. With neither,
            the running mean :func:`get_swa_avg_fn`, which is what torch's default computes
            on CPU (on CUDA torch's default is :func:`get_swa_multi_avg_fn`, equal up to
            rounding).

    Returns:
        An :class:`AveragedModel` ``(init, update)``.

    Raises:
        ValueError: both ``avg_fn`` and ``multi_avg_fn`` given (torch asserts the same).
    """
    if avg_fn is not None and multi_avg_fn is not None:
        raise ValueError("Only one of avg_fn and multi_avg_fn should be provided")
    fn = multi_avg_fn or avg_fn or get_swa_avg_fn()

    def init(params: Params) -> AveragedModelState:
        copy = jax.tree.map(lambda p: jnp.array(p, copy=True), params)
        return AveragedModelState(copy, jnp.zeros([], jnp.int32))

    def update(state: AveragedModelState, params: Params) -> AveragedModelState:
        n = state.n_averaged

        def leaf(averaged: Array, current: Array) -> Array:
            current = jnp.asarray(current).astype(averaged.dtype)
            new = jnp.asarray(fn(averaged, current, n)).astype(averaged.dtype)
            return jnp.where(n == 0, current, new)

        return AveragedModelState(jax.tree.map(leaf, state.params, params), n + 1)

    return AveragedModel(init, update)
