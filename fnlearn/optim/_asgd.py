"""ASGD: averaged stochastic gradient descent (torch.optim.ASGD)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._typing import Array, Params, ScalarOrSchedule
from ._base import (
    GradientTransformation,
    check_nonnegative,
    hyperparameters,
    is_zero,
    optimizer_factory,
    require_params,
    scalar_dtype,
)
from ._fused import AsgdScalars, Flag, Kernel
from ._lift import Prepared, elementwise
from ._schedule import resolve


class ASGDState(NamedTuple):
    """ASGD state; fields are torch's per-parameter state keys.

    Attributes:
        step: number of updates taken (int32 scalar).
        eta: step size :math:`\\eta` of the next update, a scalar in the compute dtype (torch
            keeps one 0-d tensor per parameter, all equal); starts at ``lr``.
        mu: averaging coefficient :math:`\\mu` of the next update, a scalar; starts at 1.
        ax: the averaged parameters :math:`a`, one array per parameter. They are state, not
            the parameters: evaluate with ``state.ax`` (torch: ``optimizer.state[p]["ax"]``).
    """

    step: Array
    eta: Array
    mu: Array
    ax: Params


@optimizer_factory
def asgd(
    lr: ScalarOrSchedule = 1e-2,
    lambd: ScalarOrSchedule = 1e-4,
    alpha: ScalarOrSchedule = 0.75,
    t0: ScalarOrSchedule = 1e6,
    weight_decay: ScalarOrSchedule = 0,
    *,
    maximize: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.ASGD`.

    .. math::

        \begin{aligned}
        &\textbf{input}: \gamma \text{ (lr)}, \lambda \text{ (lambd)}, \alpha \text{ (alpha)},
            t_0 \text{ (t0)}, \omega \text{ (weight decay)}, \textit{maximize} \\
        &\textbf{initialize}: \eta_0 \leftarrow \gamma_0, \; \mu_0 \leftarrow 1, \;
            a_0 \leftarrow 0 \\
        &\textbf{for } t = 1, 2, \ldots: \\
        &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if } \textit{maximize}) \\
        &\quad \textbf{if } \omega \neq 0: \; g_t \leftarrow g_t + \omega\theta_{t-1} \\
        &\quad \theta_t \leftarrow \theta_{t-1}(1 - \lambda\eta_{t-1}) - \eta_{t-1} g_t \\
        &\quad \textbf{if } \mu_{t-1} \neq 1: \;
            a_t \leftarrow a_{t-1} + \mu_{t-1}(\theta_t - a_{t-1})
            \;\textbf{else}\; a_t \leftarrow \theta_t \\
        &\quad \eta_t \leftarrow \gamma_t / (1 + \lambda\gamma_t t)^\alpha \\
        &\quad \mu_t \leftarrow 1 / \max(1, t - t_0)
        \end{aligned}

    Symbols: :math:`\gamma_t` = ``lr`` of the t-th update, :math:`\lambda` = ``lambd``
    (decay term), :math:`\alpha` = ``alpha`` (power of the eta update), :math:`t_0` = ``t0``
    (the step at which averaging starts), :math:`\omega` = ``weight_decay``, :math:`\eta` =
    ``eta``, :math:`\mu` = ``mu``, :math:`a` = ``ax``. Each update uses the :math:`\eta` and
    :math:`\mu` computed at the end of the previous one, as torch does, so a change of ``lr``
    takes effect one update late (and the first update uses :math:`\eta_0` = the lr at
    ``init``). :math:`a` copies :math:`\theta` until :math:`t > t_0 + 1`, then averages.

    Args:
        lr: learning rate :math:`\gamma`; a float, a traced scalar or a schedule
            ``count -> lr`` (the k-th update computes :math:`\eta` from ``lr(k)``).
        lambd: decay term :math:`\lambda`.
        alpha: power :math:`\alpha` of the :math:`\eta` update.
        t0: point :math:`t_0` at which averaging starts.
        weight_decay: L2 penalty :math:`\omega` added to the gradient.
        maximize: ascend instead of descend.
        fused: where the step runs one in-place C++ loop per float32/float64 buffer on CPU
            (torch's ``fused``): ``None`` in ``make_train_step`` / ``update_and_apply``,
            ``True`` also as a field ``apply``, ``False`` never (see :func:`sgd`).

    Returns:
        A :class:`GradientTransformation` whose ``update(grads, state, params)`` (``params``
        always required: the decay term and the average use them) returns the updates
        :math:`\theta_t - \theta_{t-1}`; add them with :func:`apply_updates`.

    Shape:
        Any parameter pytree; ``ax`` has each parameter's shape and dtype; ``step``, ``eta``
        and ``mu`` are scalars.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import asgd, apply_updates
        >>> params = {"w": jnp.array([1.0, 1.0])}
        >>> opt = asgd(lr=0.1, lambd=0.0)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([0.5, -2.0])}, state, params)
        >>> apply_updates(params, updates)["w"]
        Array([0.95, 1.2 ], dtype=float32)

    .. warning::
        optax has no averaged SGD. ``ax`` is not applied to the parameters: torch's ASGD also
        only stores it.

    References:
        Polyak & Juditsky, `Acceleration of Stochastic Approximation by Averaging
        <https://doi.org/10.1137/0330046>`_.
    """
    lr, lambd, alpha, t0, weight_decay = hyperparameters(
        "asgd", lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay)
    check_nonnegative(lr, "learning rate")
    check_nonnegative(weight_decay, "weight_decay value")
    l2 = not is_zero(weight_decay)

    def init(params: Params) -> ASGDState:
        dtype = scalar_dtype(params)
        zero = jnp.zeros((), jnp.int32)
        eta = resolve(lr, zero, dtype)
        ax = jax.tree.map(jnp.zeros_like, params)
        return ASGDState(zero, eta, jnp.ones((), dtype), ax)

    def prepare(grads: Params, state: ASGDState, params: Params | None):
        """Per-step scalars and the rule for one array (shared by update and fused apply)."""
        params = require_params(params, "asgd", "the decay term and the average ax use them")
        # Per-step scalars, in the compute dtype (never below float32).
        dtype = scalar_dtype(grads)
        count = state.step
        t = (count + 1).astype(dtype)
        lr_t = resolve(lr, count, dtype)
        lam = resolve(lambd, count, dtype)
        eta = state.eta.astype(dtype)
        mu = state.mu.astype(dtype)
        omega = resolve(weight_decay, count, dtype)

        # The rule for one array, in the compute dtype; buffers keep their own dtype.
        def leaf(grad, param, a):
            g = -grad.astype(dtype) if maximize else grad.astype(dtype)
            theta = param.astype(dtype)
            if l2:
                g = g + omega * theta
            u = (-(lam * eta) * theta - eta * g).astype(param.dtype)
            theta_t = (param + u).astype(dtype)  # what apply_updates gives
            a_prev = a.astype(dtype)
            a_t = jnp.where(mu != 1, a_prev + (theta_t - a_prev) * mu, theta_t)
            return u.astype(grad.dtype), a_t.astype(a.dtype)

        # eta and mu of the next step (torch updates them after the parameters)
        eta_next = lr_t / (1 + lam * lr_t * t) ** resolve(alpha, count, dtype)
        mu_next = 1 / jnp.maximum(1, t - resolve(t0, count, dtype))
        stored = state.eta.dtype
        eta_next, mu_next = eta_next.astype(stored), mu_next.astype(stored)
        scalars = AsgdScalars(neg_lam_eta=-(lam * eta), eta=eta, omega=omega, mu=mu)
        return Prepared(params, leaf, scalars, (state.ax,),
                        lambda ax: ASGDState(state.step + 1, eta_next, mu_next, ax))

    flags = Flag.MAXIMIZE * maximize | Flag.WEIGHT_DECAY * l2
    return elementwise("asgd", Kernel.ASGD, flags, fused, init, prepare)
