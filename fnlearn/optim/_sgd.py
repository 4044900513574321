r"""Stochastic gradient descent with optional (Nesterov) momentum: :class:`torch.optim.SGD`.

The algorithm (torch's box, with its symbols) is in :func:`sgd`'s docstring:
``help(fnlearn.optim.sgd)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._typing import Array, Params, ScalarOrSchedule
from ._base import (
    GradientTransformation,
    check_nonnegative,
    hyperparameters,
    is_number,
    is_zero,
    optimizer_factory,
    require_params,
    scalar_dtype,
)
from ._fused import Flag, Kernel, SgdScalars
from ._lift import Prepared, elementwise
from ._schedule import resolve, resolve_one_minus


class SGDState(NamedTuple):
    """State of :func:`sgd`, named after torch's per-parameter state keys.

    ``step`` counts the updates taken (int32 scalar; torch's SGD keeps no step, fnlearn keeps
    one for schedules). ``momentum_buffer`` has the params' structure and dtypes, or is
    ``None`` when ``momentum`` is the number 0.
    """

    step: Array
    momentum_buffer: Params | None


@optimizer_factory
def sgd(
    lr: ScalarOrSchedule = 1e-3,
    momentum: ScalarOrSchedule = 0.0,
    dampening: float | Array = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.SGD`.

    Algorithm (torch's, same symbols):

    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \theta_0 \text{ (params)},
          \lambda \text{ (weight decay)}, \mu \text{ (momentum)}, \tau \text{ (dampening)},
          \textit{nesterov}, \textit{maximize} \\
       &\textbf{for}\ t = 1, 2, \ldots \\
       &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1})
          \quad (\textbf{if}\ \textit{maximize}:\ g_t \leftarrow -g_t) \\
       &\quad \textbf{if}\ \lambda \ne 0:\ g_t \leftarrow g_t + \lambda \theta_{t-1} \\
       &\quad \textbf{if}\ \mu \ne 0: \\
       &\qquad b_t \leftarrow g_t \ \textbf{if}\ t = 1
          \ \textbf{else}\ \mu b_{t-1} + (1 - \tau) g_t \\
       &\qquad g_t \leftarrow g_t + \mu b_t \ \textbf{if}\ \textit{nesterov}
          \ \textbf{else}\ b_t \\
       &\quad \theta_t \leftarrow \theta_{t-1} - \gamma g_t
       \end{aligned}

    The update returned is
    :math:`-\gamma g_t` (``apply_updates`` adds it to the params).

    Symbols: :math:`\gamma` = ``lr``, :math:`\mu` = ``momentum``, :math:`\tau` = ``dampening``,
    :math:`\lambda` = ``weight_decay``, :math:`b` = ``momentum_buffer``.

    Args:
        lr: learning rate :math:`\gamma`: a number, a traced scalar or a schedule
            ``step -> lr`` (the k-th update, k = 0, 1, ..., uses ``lr(k)``).
        momentum: momentum factor :math:`\mu` (number, traced scalar or schedule).
        dampening: dampening :math:`\tau` for momentum; not applied on the first step.
        weight_decay: L2 penalty :math:`\lambda` added to the gradient (number, traced scalar or
            schedule); nonzero needs ``params`` in ``update``.
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        maximize: maximize the objective instead of minimizing it.
        fused: where ``update`` and :func:`apply_updates` run as one in-place C++ loop per
            float32/float64 buffer on CPU, an ``apply(grads, state, params) -> (params,
            state)`` (torch's ``fused``, same numbers up to float round-off). ``None`` (the
            default): a plain transformation whose ``update`` carries ``apply``, which
            :func:`update_and_apply` and ``make_train_step`` run on CPU when the kernels are
            built (at install time, or by ``python -m fnlearn.optim.build_fused``), the XLA
            rule elsewhere, without a warning. ``True``: a
            :class:`FusedGradientTransformation` (``apply`` a field of its own; ``update``
            warns that it bypasses the kernel; a missing kernel library warns). ``False``:
            the XLA rule everywhere, e.g. to differentiate through a whole step.

    Returns:
        A :class:`GradientTransformation` whose state is :class:`SGDState` (with ``fused=True``, a
        :class:`FusedGradientTransformation`).

    Shape:
        params, grads, updates and ``momentum_buffer`` share the params' pytree structure;
        per-step scalars are computed in the wider of float32 and the widest grad dtype; the
        buffer keeps the params' dtype.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import sgd, apply_updates
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> opt = sgd(lr=0.1, momentum=0.9)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([0.5, 0.5])}, state, params)
        >>> apply_updates(params, updates)["w"]
        Array([ 0.95, -2.05], dtype=float32)

    .. warning::
       torch's first momentum buffer is the gradient itself (dampening skipped), later ones
       add :math:`(1 - \tau) g_t`. ``optax.sgd(lr, momentum, nesterov)`` computes the same
       update only for ``dampening == 0`` (its trace starts at 0); no optax chain reproduces
       ``dampening != 0``. Weight decay and maximize: ``optax.chain(optax.scale(-1),
       optax.add_decayed_weights(wd), optax.sgd(...))``.

    References:
        Sutskever et al., 2013. `On the importance of initialization and momentum in deep
        learning <http://proceedings.mlr.press/v28/sutskever13.html>`_.
    """
    lr, momentum, dampening, weight_decay = hyperparameters(
        "sgd", lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay)
    check_nonnegative(lr, "learning rate")
    check_nonnegative(momentum, "momentum value")
    check_nonnegative(weight_decay, "weight_decay value")
    if nesterov and (
        (is_number(momentum) and momentum <= 0) or (is_number(dampening) and dampening != 0)
    ):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    use_momentum = not is_zero(momentum)

    def init(params: Params) -> SGDState:
        buffer = jax.tree.map(jnp.zeros_like, params) if use_momentum else None
        return SGDState(step=jnp.zeros([], jnp.int32), momentum_buffer=buffer)

    def prepare(grads: Params, state: SGDState, params: Params | None):
        """Per-step scalars and the rule for one array (shared by update and fused apply)."""
        if not is_zero(weight_decay):
            params = require_params(params, "sgd", "weight_decay is nonzero")
        dtype = scalar_dtype(grads)
        gamma = resolve(lr, state.step, dtype)
        lam = resolve(weight_decay, state.step, dtype)
        mu = resolve(momentum, state.step, dtype)
        # The first buffer is the gradient itself: dampening is skipped on step 1. (Also when
        # a traced momentum is 0, where torch skips the buffer: then b_t = g_t.)
        one_minus_tau = resolve_one_minus(dampening, state.step, dtype)
        undamped = (state.step == 0) | (mu == 0)
        one_minus_tau = jnp.where(undamped, jnp.ones_like(one_minus_tau), one_minus_tau)

        def rule(grad, theta, b):
            g = -grad.astype(dtype) if maximize else grad.astype(dtype)
            if not is_zero(weight_decay):
                g = g + lam * theta.astype(dtype)
            if use_momentum:
                b_t = mu * b.astype(dtype) + one_minus_tau * g  # b_0 = 0, no dampening: b_1 = g
                g = g + mu * b_t if nesterov else b_t
                b = b_t.astype(b.dtype)
            return (-gamma * g).astype(grad.dtype), b

        scalars = SgdScalars(gamma=gamma, lam=lam, mu=mu, one_minus_tau=one_minus_tau)
        return Prepared(params, rule, scalars, (state.momentum_buffer,),
                        lambda b: SGDState(step=state.step + 1, momentum_buffer=b))

    flags = (Flag.MAXIMIZE * maximize | Flag.WEIGHT_DECAY * (not is_zero(weight_decay))
             | Flag.MOMENTUM * use_momentum | Flag.NESTEROV * nesterov)
    return elementwise("sgd", Kernel.SGD, flags, fused, init, prepare)
