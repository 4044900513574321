r"""RMSprop, optionally centered and with momentum: :class:`torch.optim.RMSprop`.

The algorithm (torch's box, with its symbols) is in :func:`rmsprop`'s docstring:
``help(fnlearn.optim.rmsprop)``.
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
    is_zero,
    optimizer_factory,
    require_params,
    scalar_dtype,
)
from ._fused import Flag, Kernel, RmspropScalars
from ._lift import Prepared, elementwise
from ._schedule import resolve, resolve_one_minus


class RMSpropState(NamedTuple):
    r"""State of :func:`rmsprop`, named after torch's per-parameter state keys.

    ``step`` (int32 scalar) counts updates; ``square_avg`` is :math:`v`; ``momentum_buffer``
    (``None`` when ``momentum`` is the number 0) is :math:`b`, which accumulates
    :math:`g / (\sqrt{v} + \epsilon)` *without* the learning rate; ``grad_avg`` (``None``
    unless ``centered``) is :math:`g^{ave}`. Buffers keep the params' dtype.
    """

    step: Array
    square_avg: Params
    momentum_buffer: Params | None
    grad_avg: Params | None


@optimizer_factory
def rmsprop(
    lr: ScalarOrSchedule = 1e-2,
    alpha: float | Array = 0.99,
    eps: float | Array = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    momentum: ScalarOrSchedule = 0.0,
    centered: bool = False,
    maximize: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.RMSprop`.

    Algorithm (torch's, same symbols):

    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \theta_0, \alpha \text{ (alpha)}, \epsilon,
          \lambda \text{ (weight decay)}, \mu \text{ (momentum)}, \textit{centered},
          \textit{maximize} \\
       &\textbf{initialize}: v_0 \leftarrow 0 \text{ (square average)}, b_0 \leftarrow 0
          \text{ (buffer)}, g^{ave}_0 \leftarrow 0 \\
       &\textbf{for}\ t = 1, 2, \ldots \\
       &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1})
          \quad (\textbf{if}\ \textit{maximize}:\ g_t \leftarrow -g_t) \\
       &\quad \textbf{if}\ \lambda \ne 0:\ g_t \leftarrow g_t + \lambda \theta_{t-1} \\
       &\quad v_t \leftarrow \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
       &\quad \textbf{if}\ \textit{centered}:\
          g^{ave}_t \leftarrow g^{ave}_{t-1} + (1 - \alpha)(g_t - g^{ave}_{t-1}),
          \quad \tilde v_t \leftarrow v_t - (g^{ave}_t)^2
          \quad \textbf{else}\ \tilde v_t \leftarrow v_t \\
       &\quad \textbf{if}\ \mu > 0:\
          b_t \leftarrow \mu b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon),
          \quad \theta_t \leftarrow \theta_{t-1} - \gamma b_t \\
       &\quad \textbf{else}:\ \theta_t \leftarrow \theta_{t-1} - \gamma g_t / (\sqrt{\tilde v_t}
          + \epsilon)
       \end{aligned}

    The update returned is
    :math:`-\gamma b_t` (with momentum) or :math:`-\gamma g_t / (\sqrt{\tilde v_t} + \epsilon)`.

    Symbols: :math:`\gamma` = ``lr``, :math:`\alpha` = ``alpha``, :math:`\epsilon` = ``eps``,
    :math:`\lambda` = ``weight_decay``, :math:`\mu` = ``momentum``, :math:`v` = ``square_avg``,
    :math:`g^{ave}` = ``grad_avg``, :math:`b` = ``momentum_buffer``.

    Args:
        lr: learning rate (number, traced scalar or schedule ``step -> lr``).
        alpha: smoothing constant of the square average.
        eps: added to :math:`\sqrt{\tilde v}` (outside the square root), for stability.
        weight_decay: L2 penalty added to the gradient (number, traced scalar or schedule);
            nonzero needs ``params`` in ``update``.
        momentum: momentum factor (number, traced scalar or schedule).
        centered: normalize by an estimate of the gradient's variance instead of its second
            moment.
        maximize: maximize the objective instead of minimizing it.
        fused: where the step runs one in-place C++ loop per float32/float64 buffer on CPU
            (torch's ``fused``): ``None`` in ``make_train_step`` / ``update_and_apply``,
            ``True`` also as a field ``apply``, ``False`` never (see :func:`sgd`).

    Returns:
        A :class:`GradientTransformation` whose state is :class:`RMSpropState`.

    Shape:
        params, grads, updates and every buffer share the params' pytree structure; per-step
        scalars are computed in the wider of float32 and the widest grad dtype.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import rmsprop, apply_updates
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> opt = rmsprop(lr=0.01)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([0.5, -0.5])}, state, params)
        >>> apply_updates(params, updates)["w"].round(4)
        Array([ 0.9, -1.9], dtype=float32)

    .. warning::
       optax's defaults differ: ``optax.rmsprop`` uses ``decay=0.9`` (torch ``alpha=0.99``) and
       ``eps_in_sqrt=True``, i.e. :math:`g / \sqrt{v + \epsilon}`. The same update for a
       constant lr is ``optax.rmsprop(lr, decay=alpha, eps=eps, eps_in_sqrt=False,
       centered=centered, momentum=momentum or None)``. With momentum and a changing lr
       ``optax.rmsprop`` differs: its trace accumulates :math:`\gamma_t g_t / (\ldots)`,
       while torch's buffer accumulates :math:`g_t / (\ldots)` and multiplies by the current
       lr; ``optax.chain(optax.scale_by_rms(alpha, eps, eps_in_sqrt=False),
       optax.trace(momentum), optax.scale_by_learning_rate(lr))`` reproduces torch.

    References:
        Hinton, `Lecture 6e of Neural Networks for Machine Learning
        <https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf>`_;
        Graves, 2013. `Generating Sequences With Recurrent Neural Networks
        <https://arxiv.org/abs/1308.0850>`_ (centered variant).
    """
    lr, alpha, eps, weight_decay, momentum = hyperparameters(
        "rmsprop", lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
    check_nonnegative(lr, "learning rate")
    check_nonnegative(eps, "epsilon value")
    check_nonnegative(momentum, "momentum value")
    check_nonnegative(weight_decay, "weight_decay value")
    check_nonnegative(alpha, "alpha value")
    use_momentum = not is_zero(momentum)

    def init(params: Params) -> RMSpropState:
        def zeros():
            return jax.tree.map(jnp.zeros_like, params)

        return RMSpropState(
            step=jnp.zeros([], jnp.int32),
            square_avg=zeros(),
            momentum_buffer=zeros() if use_momentum else None,
            grad_avg=zeros() if centered else None,
        )

    def prepare(grads: Params, state: RMSpropState, params: Params | None):
        """Per-step scalars and the rule for one array (shared by update and fused apply)."""
        if not is_zero(weight_decay):
            params = require_params(params, "rmsprop", "weight_decay is nonzero")
        dtype = scalar_dtype(grads)
        gamma = resolve(lr, state.step, dtype)
        a = resolve(alpha, state.step, dtype)
        one_minus_a = resolve_one_minus(alpha, state.step, dtype)
        epsilon = resolve(eps, state.step, dtype)
        lam = resolve(weight_decay, state.step, dtype)
        mu = resolve(momentum, state.step, dtype)

        def rule(grad, theta, v, b, g_ave):
            g = -grad.astype(dtype) if maximize else grad.astype(dtype)
            if not is_zero(weight_decay):
                g = g + lam * theta.astype(dtype)
            v_t = a * v.astype(dtype) + one_minus_a * (g * g)
            if centered:
                g_ave_t = g_ave.astype(dtype)
                g_ave_t = g_ave_t + one_minus_a * (g - g_ave_t)
                avg = jnp.sqrt(v_t - g_ave_t * g_ave_t) + epsilon
                g_ave = g_ave_t.astype(g_ave.dtype)
            else:
                avg = jnp.sqrt(v_t) + epsilon
            if use_momentum:
                b_t = mu * b.astype(dtype) + g / avg
                u = -gamma * b_t
                b = b_t.astype(b.dtype)
            else:
                u = -gamma * (g / avg)
            return u.astype(grad.dtype), v_t.astype(v.dtype), b, g_ave

        return Prepared(
            params, rule,
            RmspropScalars(gamma=gamma, a=a, one_minus_a=one_minus_a, epsilon=epsilon, lam=lam,
                           mu=mu),
            (state.square_avg, state.momentum_buffer, state.grad_avg),
            lambda v, b, g_ave: RMSpropState(state.step + 1, v, b, g_ave))

    flags = (Flag.MAXIMIZE * maximize | Flag.WEIGHT_DECAY * (not is_zero(weight_decay))
             | Flag.CENTERED * centered | Flag.MOMENTUM * use_momentum)
    return elementwise("rmsprop", Kernel.RMSPROP, flags, fused, init, prepare)
