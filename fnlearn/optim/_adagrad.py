r"""Adagrad with learning-rate decay: :class:`torch.optim.Adagrad`.

The algorithm (torch's box, with its symbols) is in :func:`adagrad`'s docstring:
``help(fnlearn.optim.adagrad)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._typing import Array, Params, ScalarOrSchedule
from ._base import (
    GradientTransformation,
    check_nonnegative,
    fill_like,
    hyperparameters,
    is_zero,
    optimizer_factory,
    require_params,
    scalar_dtype,
)
from ._fused import AdagradScalars, Flag, Kernel
from ._lift import Prepared, elementwise
from ._schedule import resolve


class AdagradState(NamedTuple):
    """State of :func:`adagrad`, named after torch's per-parameter state keys.

    ``step`` (int32 scalar) counts updates; ``sum`` is the accumulated squared gradient
    :math:`s`, started at ``initial_accumulator_value``, in the params' dtype.
    """

    step: Array
    sum: Params


@optimizer_factory
def adagrad(
    lr: ScalarOrSchedule = 1e-2,
    lr_decay: float | Array = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    initial_accumulator_value: float | Array = 0.0,
    eps: float | Array = 1e-10,
    *,
    maximize: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.Adagrad`.

    Algorithm (torch's, same symbols):

    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \theta_0, \lambda \text{ (weight decay)},
          \eta \text{ (lr decay)}, \tau \text{ (initial accumulator value)}, \epsilon,
          \textit{maximize} \\
       &\textbf{initialize}: s_0 \leftarrow \tau \text{ (sum)} \\
       &\textbf{for}\ t = 1, 2, \ldots \\
       &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1})
          \quad (\textbf{if}\ \textit{maximize}:\ g_t \leftarrow -g_t) \\
       &\quad \textbf{if}\ \lambda \ne 0:\ g_t \leftarrow g_t + \lambda \theta_{t-1} \\
       &\quad \tilde\gamma \leftarrow \gamma / (1 + (t - 1) \eta) \\
       &\quad s_t \leftarrow s_{t-1} + g_t^2 \\
       &\quad \theta_t \leftarrow \theta_{t-1} - \tilde\gamma\, g_t / (\sqrt{s_t} + \epsilon)
       \end{aligned}

    The update returned is
    :math:`-\tilde\gamma g_t / (\sqrt{s_t} + \epsilon)`.

    Symbols: :math:`\gamma` = ``lr``, :math:`\eta` = ``lr_decay``, :math:`\lambda` =
    ``weight_decay``, :math:`\tau` = ``initial_accumulator_value``, :math:`\epsilon` = ``eps``,
    :math:`s` = ``sum``, :math:`\tilde\gamma` the decayed lr (``clr`` in torch).

    Args:
        lr: learning rate (number, traced scalar or schedule ``step -> lr``); ``lr_decay``
            divides it further.
        lr_decay: learning-rate decay :math:`\eta`.
        weight_decay: L2 penalty added to the gradient (number, traced scalar or schedule);
            nonzero needs ``params`` in ``update``.
        initial_accumulator_value: starting value :math:`\tau` of the sum of squares.
        eps: added to :math:`\sqrt{s_t}` (outside the square root), for stability.
        maximize: maximize the objective instead of minimizing it.
        fused: where the step runs one in-place C++ loop per float32/float64 buffer on CPU
            (torch's ``fused``): ``None`` in ``make_train_step`` / ``update_and_apply``,
            ``True`` also as a field ``apply``, ``False`` never (see :func:`sgd`).

    Returns:
        A :class:`GradientTransformation` whose state is :class:`AdagradState`.

    Shape:
        params, grads, updates and ``sum`` share the params' pytree structure; per-step
        scalars are computed in the wider of float32 and the widest grad dtype.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import adagrad, apply_updates
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> opt = adagrad(lr=0.1)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([0.5, -0.5])}, state, params)
        >>> apply_updates(params, updates)["w"]
        Array([ 0.9, -1.9], dtype=float32)

    .. warning::
       ``optax.adagrad`` computes :math:`g / \sqrt{s + \epsilon}` (eps *inside* the square
       root) and defaults to ``initial_accumulator_value=0.1, eps=1e-7`` (torch: 0 and
       1e-10). The relative difference is about :math:`\epsilon / \sqrt{s}`: small for the
       defaults and large gradients, of order 1 for gradients near :math:`\sqrt{\epsilon}`.
       Only ``eps=0`` gives the same update: ``optax.adagrad(lambda k: lr / (1 + k *
       lr_decay), initial_accumulator_value, eps=0)``, except that a zero gradient with a
       zero sum gives ``nan`` (0/0) in torch and here, 0 in optax.

    References:
        Duchi, Hazan and Singer, 2011. `Adaptive Subgradient Methods for Online Learning and
        Stochastic Optimization <https://jmlr.org/papers/v12/duchi11a.html>`_.
    """
    lr, lr_decay, weight_decay, initial_accumulator_value, eps = hyperparameters(
        "adagrad", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
        initial_accumulator_value=initial_accumulator_value, eps=eps)
    check_nonnegative(lr, "learning rate")
    check_nonnegative(lr_decay, "lr_decay value")
    check_nonnegative(weight_decay, "weight_decay value")
    check_nonnegative(initial_accumulator_value, "initial_accumulator_value value")
    check_nonnegative(eps, "epsilon value")

    def init(params: Params) -> AdagradState:
        def fill(p):
            return fill_like(p, initial_accumulator_value)

        return AdagradState(step=jnp.zeros([], jnp.int32), sum=jax.tree.map(fill, params))

    def prepare(grads: Params, state: AdagradState, params: Params | None):
        """Per-step scalars and the rule for one array (shared by update and fused apply)."""
        if not is_zero(weight_decay):
            params = require_params(params, "adagrad", "weight_decay is nonzero")
        dtype = scalar_dtype(grads)
        gamma = resolve(lr, state.step, dtype)
        eta = resolve(lr_decay, state.step, dtype)
        lam = resolve(weight_decay, state.step, dtype)
        epsilon = resolve(eps, state.step, dtype)
        clr = gamma / (1 + state.step.astype(dtype) * eta)  # step = t - 1

        def rule(grad, theta, s):
            g = -grad.astype(dtype) if maximize else grad.astype(dtype)
            if not is_zero(weight_decay):
                g = g + lam * theta.astype(dtype)
            s_t = s.astype(dtype) + g * g
            u = -clr * (g / (jnp.sqrt(s_t) + epsilon))
            return u.astype(grad.dtype), s_t.astype(s.dtype)

        scalars = AdagradScalars(clr=clr, lam=lam, epsilon=epsilon)
        return Prepared(params, rule, scalars, (state.sum,),
                        lambda s: AdagradState(step=state.step + 1, sum=s))

    flags = Flag.MAXIMIZE * maximize | Flag.WEIGHT_DECAY * (not is_zero(weight_decay))
    return elementwise("adagrad", Kernel.ADAGRAD, flags, fused, init, prepare)
