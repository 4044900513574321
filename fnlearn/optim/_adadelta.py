"""Adadelta: an adaptive learning-rate method (torch.optim.Adadelta)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._typing import Array, Params, ScalarOrSchedule
from .._validate import check_range
from ._base import (
    GradientTransformation,
    check_nonnegative,
    hyperparameters,
    is_zero,
    optimizer_factory,
    require_params,
    scalar_dtype,
)
from ._fused import AdadeltaScalars, Flag, Kernel
from ._lift import Prepared, elementwise
from ._schedule import resolve, resolve_one_minus


class AdadeltaState(NamedTuple):
    """Adadelta state; fields are torch's per-parameter state keys.

    Attributes:
        step: number of updates taken (int32 scalar).
        square_avg: running average of squared gradients :math:`v`, one array per parameter.
        acc_delta: running average of squared updates :math:`u`, one array per parameter.
    """

    step: Array
    square_avg: Params
    acc_delta: Params


@optimizer_factory
def adadelta(
    lr: ScalarOrSchedule = 1.0,
    rho: ScalarOrSchedule = 0.9,
    eps: ScalarOrSchedule = 1e-6,
    weight_decay: ScalarOrSchedule = 0,
    *,
    maximize: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.Adadelta`.

    .. math::

        \begin{aligned}
        &\textbf{input}: \gamma \text{ (lr)}, \rho \text{ (rho)},
            \lambda \text{ (weight decay)}, \epsilon \text{ (eps)}, \textit{maximize} \\
        &\textbf{initialize}: v_0 \leftarrow 0 \text{ (square avg)}, \;
            u_0 \leftarrow 0 \text{ (accumulate delta)} \\
        &\textbf{for } t = 1, 2, \ldots: \\
        &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if } \textit{maximize}) \\
        &\quad \textbf{if } \lambda \neq 0: \; g_t \leftarrow g_t + \lambda\theta_{t-1} \\
        &\quad v_t \leftarrow \rho v_{t-1} + (1 - \rho) g_t^2 \\
        &\quad \Delta x_t \leftarrow
            \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t \\
        &\quad u_t \leftarrow \rho u_{t-1} + (1 - \rho) \Delta x_t^2 \\
        &\quad \theta_t \leftarrow \theta_{t-1} - \gamma\,\Delta x_t
        \end{aligned}

    Symbols: :math:`\gamma` = ``lr``, :math:`\rho` = ``rho``, :math:`\epsilon` = ``eps``
    (inside both square roots), :math:`\lambda` = ``weight_decay``, :math:`v` =
    ``square_avg``, :math:`u` = ``acc_delta``.

    Args:
        lr: coefficient :math:`\gamma` that scales :math:`\Delta x` before it is applied; a
            float, a traced scalar or a schedule ``count -> lr``.
        rho: decay of the running averages, in ``[0, 1]``.
        eps: added inside the square roots.
        weight_decay: L2 penalty :math:`\lambda` added to the gradient (needs ``params``).
        maximize: ascend instead of descend.
        fused: where the step runs one in-place C++ loop per float32/float64 buffer on CPU
            (torch's ``fused``): ``None`` in ``make_train_step`` / ``update_and_apply``,
            ``True`` also as a field ``apply``, ``False`` never (see :func:`sgd`).

    Returns:
        A :class:`GradientTransformation` whose ``update(grads, state, params)`` returns the
        updates :math:`\theta_t - \theta_{t-1}`; add them with :func:`apply_updates`.

    Shape:
        Any parameter pytree; the state holds two arrays of each parameter's shape and dtype.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import adadelta, apply_updates
        >>> params = {"w": jnp.array([1.0, 1.0])}
        >>> opt = adadelta(lr=1.0, rho=0.0, eps=1e-2)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([0.0, 3.0])}, state, params)
        >>> apply_updates(params, updates)["w"].round(4)
        Array([1.    , 0.9001], dtype=float32)

    .. note::
        ``optax.adadelta(learning_rate=lr, rho=rho, eps=eps)`` computes the same update (eps
        inside both square roots); torch's ``weight_decay`` and ``maximize`` correspond to
        ``optax.add_decayed_weights`` / ``optax.scale(-1)`` chained in front. Mind optax's
        defaults (``learning_rate`` is required, ``eps=1e-6``, ``rho=0.9``).

    References:
        Zeiler, `ADADELTA: An Adaptive Learning Rate Method
        <https://arxiv.org/abs/1212.5701>`_.
    """
    lr, rho, eps, weight_decay = hyperparameters(
        "adadelta", lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)
    check_nonnegative(lr, "learning rate")
    check_range(rho, "Invalid rho value", lambda v: 0.0 <= v <= 1.0)
    check_nonnegative(eps, "epsilon value")
    check_nonnegative(weight_decay, "weight_decay value")
    l2 = not is_zero(weight_decay)

    def init(params: Params) -> AdadeltaState:
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
        return AdadeltaState(jnp.zeros((), jnp.int32), zeros(), zeros())

    def prepare(grads: Params, state: AdadeltaState, params: Params | None):
        """Per-step scalars and the rule for one array (shared by update and fused apply)."""
        if l2:
            params = require_params(params, "adadelta", "weight_decay != 0")
        # Per-step scalars, in the compute dtype (never below float32).
        dtype = scalar_dtype(grads)
        count = state.step
        gamma = resolve(lr, count, dtype)
        r = resolve(rho, count, dtype)
        one_minus_r = resolve_one_minus(rho, count, dtype)
        epsilon = resolve(eps, count, dtype)
        lam = resolve(weight_decay, count, dtype)

        # The rule for one array, in the compute dtype; buffers keep their own dtype.
        def leaf(grad, theta, v, u):
            g = -grad.astype(dtype) if maximize else grad.astype(dtype)
            if l2:
                g = g + lam * theta.astype(dtype)
            v_t = r * v.astype(dtype) + one_minus_r * (g * g)
            u_prev = u.astype(dtype)
            # one sqrt of the quotient (torch takes two and divides: equal up to round-off):
            # XLA materializes each sqrt feeding two fusions, and on CPU every fresh buffer is
            # page-faulted in again each step
            delta = jnp.sqrt((u_prev + epsilon) / (v_t + epsilon)) * g
            u_t = r * u_prev + one_minus_r * (delta * delta)
            return (-gamma * delta).astype(grad.dtype), v_t.astype(v.dtype), u_t.astype(u.dtype)

        scalars = AdadeltaScalars(gamma=gamma, rho=r, one_minus_rho=one_minus_r, epsilon=epsilon,
                                  lam=lam)
        return Prepared(params, leaf, scalars,
                        (state.square_avg, state.acc_delta),
                        lambda v, u: AdadeltaState(state.step + 1, v, u))

    flags = Flag.MAXIMIZE * maximize | Flag.WEIGHT_DECAY * l2
    return elementwise("adadelta", Kernel.ADADELTA, flags, fused, init, prepare)
