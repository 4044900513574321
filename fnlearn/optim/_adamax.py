"""Adamax: Adam with the infinity norm (torch.optim.Adamax)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._typing import Array, Params, ScalarOrSchedule
from ._base import (
    GradientTransformation,
    adam_hyperparameters,
    is_zero,
    optimizer_factory,
    require_params,
    scalar_dtype,
)
from ._fused import AdamaxScalars, Flag, Kernel
from ._lift import Prepared, elementwise
from ._schedule import resolve, resolve_one_minus, resolve_one_minus_pow


class AdamaxState(NamedTuple):
    """Adamax state; fields are torch's per-parameter state keys.

    Attributes:
        step: number of updates taken (int32 scalar; torch keeps a float tensor per parameter).
        exp_avg: first moment :math:`m`, one array per parameter.
        exp_inf: exponentially weighted infinity norm :math:`u`, one array per parameter.
    """

    step: Array
    exp_avg: Params
    exp_inf: Params


@optimizer_factory
def adamax(
    lr: ScalarOrSchedule = 2e-3,
    betas: tuple[ScalarOrSchedule, ScalarOrSchedule] = (0.9, 0.999),
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 0,
    *,
    maximize: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.Adamax`.

    .. math::

        \begin{aligned}
        &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2 \text{ (betas)},
            \lambda \text{ (weight decay)}, \epsilon \text{ (eps)}, \textit{maximize} \\
        &\textbf{initialize}: m_0 \leftarrow 0, \; u_0 \leftarrow 0 \\
        &\textbf{for } t = 1, 2, \ldots: \\
        &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if } \textit{maximize}) \\
        &\quad \textbf{if } \lambda \neq 0: \; g_t \leftarrow g_t + \lambda\theta_{t-1} \\
        &\quad m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        &\quad u_t \leftarrow \max(\beta_2 u_{t-1}, |g_t| + \epsilon) \\
        &\quad \theta_t \leftarrow \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}\,\frac{m_t}{u_t}
        \end{aligned}

    Symbols: :math:`\gamma` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``,
    :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``, :math:`m` = ``exp_avg``,
    :math:`u` = ``exp_inf``, :math:`t` = ``step`` after the increment. ``eps`` is added to
    :math:`|g_t|` inside the maximum, not to the denominator.

    Args:
        lr: learning rate :math:`\gamma`; a float, a traced scalar or a schedule
            ``count -> lr`` (the k-th update uses ``lr(k)``).
        betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
        eps: added to :math:`|g_t|` inside the maximum.
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
        >>> from fnlearn.optim import adamax, apply_updates
        >>> params = {"w": jnp.array([1.0, 1.0])}
        >>> opt = adamax(lr=0.25)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([0.5, -2.0])}, state, params)
        >>> apply_updates(params, updates)["w"]
        Array([0.75, 1.25], dtype=float32)

    .. note::
        ``optax.adamax(lr, b1, b2, eps)`` computes the same update (``eps`` inside the
        maximum, bias correction of the first moment only); torch's ``weight_decay`` and
        ``maximize`` correspond to ``optax.add_decayed_weights`` / ``optax.scale(-1)``
        chained in front.

    References:
        Kingma & Ba, `Adam: A Method for Stochastic Optimization
        <https://arxiv.org/abs/1412.6980>`_, section 7.1.
    """
    lr, betas, eps, weight_decay = adam_hyperparameters("adamax", lr, betas, eps, weight_decay)
    l2 = not is_zero(weight_decay)

    def init(params: Params) -> AdamaxState:
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
        return AdamaxState(jnp.zeros((), jnp.int32), zeros(), zeros())

    def prepare(grads: Params, state: AdamaxState, params: Params | None):
        """Per-step scalars and the rule for one array (shared by update and fused apply)."""
        if l2:
            params = require_params(params, "adamax", "weight_decay != 0")
        # Per-step scalars, in the compute dtype (never below float32).
        dtype = scalar_dtype(grads)
        count = state.step
        t = (count + 1).astype(dtype)
        b1 = resolve(betas[0], count, dtype)
        one_minus_b1 = resolve_one_minus(betas[0], count, dtype)
        b2 = resolve(betas[1], count, dtype)
        epsilon = resolve(eps, count, dtype)
        lam = resolve(weight_decay, count, dtype)
        clr = resolve(lr, count, dtype) / resolve_one_minus_pow(betas[0], t, count, dtype)

        # The rule for one array, in the compute dtype; buffers keep their own dtype.
        def leaf(grad, theta, m, u):
            g = -grad.astype(dtype) if maximize else grad.astype(dtype)
            if l2:
                g = g + lam * theta.astype(dtype)
            m_t = b1 * m.astype(dtype) + one_minus_b1 * g
            u_t = jnp.maximum(b2 * u.astype(dtype), jnp.abs(g) + epsilon)
            return (-clr * (m_t / u_t)).astype(grad.dtype), m_t.astype(m.dtype), u_t.astype(u.dtype)

        scalars = AdamaxScalars(b1=b1, one_minus_b1=one_minus_b1, b2=b2, epsilon=epsilon, lam=lam,
                                clr=clr)
        return Prepared(params, leaf, scalars,
                        (state.exp_avg, state.exp_inf),
                        lambda m, u: AdamaxState(state.step + 1, m, u))

    flags = Flag.MAXIMIZE * maximize | Flag.WEIGHT_DECAY * l2
    return elementwise("adamax", Kernel.ADAMAX, flags, fused, init, prepare)
