"""RAdam: Adam with a rectified adaptive learning rate (torch.optim.RAdam)."""

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
from ._fused import Flag, Kernel, RadamScalars, weight_decay_flags
from ._lift import Prepared, elementwise
from ._schedule import resolve, resolve_betas, resolve_one_minus_pow


class RAdamState(NamedTuple):
    """RAdam state; fields are torch's per-parameter state keys.

    Attributes:
        step: number of updates taken (int32 scalar).
        exp_avg: first moment :math:`m`, one array per parameter.
        exp_avg_sq: second moment :math:`v`, one array per parameter.
    """

    step: Array
    exp_avg: Params
    exp_avg_sq: Params


@optimizer_factory
def radam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[ScalarOrSchedule, ScalarOrSchedule] = (0.9, 0.999),
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 0,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.RAdam`.

    .. math::

        \begin{aligned}
        &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2 \text{ (betas)},
            \lambda \text{ (weight decay)}, \epsilon \text{ (eps)},
            \textit{decoupled}, \textit{maximize} \\
        &\textbf{initialize}: m_0 \leftarrow 0, \; v_0 \leftarrow 0, \;
            \rho_\infty \leftarrow 2/(1 - \beta_2) - 1 \\
        &\textbf{for } t = 1, 2, \ldots: \\
        &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if } \textit{maximize}) \\
        &\quad \textbf{if } \lambda \neq 0: \textbf{ if } \textit{decoupled}:
            \theta_{t-1} \leftarrow \theta_{t-1} - \gamma\lambda\theta_{t-1}
            \textbf{ else } g_t \leftarrow g_t + \lambda\theta_{t-1} \\
        &\quad m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        &\quad v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        &\quad \widehat{m_t} \leftarrow m_t / (1 - \beta_1^t) \\
        &\quad \rho_t \leftarrow \rho_\infty - 2t\beta_2^t / (1 - \beta_2^t) \\
        &\quad \textbf{if } \rho_t > 5: \\
        &\quad\quad l_t \leftarrow \sqrt{1 - \beta_2^t} / (\sqrt{v_t} + \epsilon) \\
        &\quad\quad r_t \leftarrow \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}
            {(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}} \\
        &\quad\quad \theta_t \leftarrow \theta_{t-1} - \gamma\,\widehat{m_t}\, l_t\, r_t \\
        &\quad \textbf{else}: \; \theta_t \leftarrow \theta_{t-1} - \gamma\,\widehat{m_t}
        \end{aligned}

    Symbols: :math:`\gamma` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``,
    :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``, :math:`m` = ``exp_avg``,
    :math:`v` = ``exp_avg_sq``, :math:`\rho_t` = length of the approximated simple moving
    average, :math:`t` = ``step`` after the increment. ``eps`` is added to the *uncorrected*
    :math:`\sqrt{v_t}`, and the branch on :math:`\rho_t > 5` is a ``jnp.where`` (no Python
    branch on a traced step), so one compiled step serves every ``t``.

    Args:
        lr: learning rate :math:`\gamma`; a float, a traced scalar or a schedule
            ``count -> lr`` (the k-th update uses ``lr(k)``).
        betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
        eps: added to :math:`\sqrt{v_t}`.
        weight_decay: :math:`\lambda` (needs ``params``): an L2 penalty added to the gradient,
            or with ``decoupled_weight_decay`` a decay :math:`\gamma\lambda\theta` (RAdamW).
        decoupled_weight_decay: decay the weights directly instead of the gradient.
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
        >>> from fnlearn.optim import radam, apply_updates
        >>> params = {"w": jnp.array([1.0, 1.0])}
        >>> opt = radam(lr=0.1)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([0.5, -2.0])}, state, params)
        >>> apply_updates(params, updates)["w"]  # rho_1 = 1: plain momentum step
        Array([0.95, 1.2 ], dtype=float32)

    .. warning::
        ``optax.radam`` rectifies when :math:`\rho_t \ge 5` (torch: :math:`> 5`) and adds
        ``eps`` to the bias-corrected :math:`\sqrt{\hat v_t}`; the eps placement alone moves
        trajectories by a relative ~2e-9 with ``eps=1e-8`` (more with larger eps).

    References:
        Liu et al., `On the Variance of the Adaptive Learning Rate and Beyond
        <https://arxiv.org/abs/1908.03265>`_.
    """
    lr, betas, eps, weight_decay = adam_hyperparameters("radam", lr, betas, eps, weight_decay)
    decay = not is_zero(weight_decay)

    def init(params: Params) -> RAdamState:
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
        return RAdamState(jnp.zeros((), jnp.int32), zeros(), zeros())

    def prepare(grads: Params, state: RAdamState, params: Params | None):
        """Per-step scalars and the rule for one array (shared by update and fused apply)."""
        if decay:
            params = require_params(params, "radam", "weight_decay != 0")
        # Per-step scalars, in the compute dtype (never below float32).
        dtype = scalar_dtype(grads)
        count = state.step
        t = (count + 1).astype(dtype)
        gamma = resolve(lr, count, dtype)
        b1, one_minus_b1, b2, one_minus_b2 = resolve_betas(betas, count, dtype)
        epsilon = resolve(eps, count, dtype)
        lam = resolve(weight_decay, count, dtype)
        bias_correction1 = resolve_one_minus_pow(betas[0], t, count, dtype)
        bias_correction2 = resolve_one_minus_pow(betas[1], t, count, dtype)
        rho_inf = 2 / one_minus_b2 - 1
        rho_t = rho_inf - 2 * t * (1 - bias_correction2) / bias_correction2
        rectify = rho_t > 5.0
        # where() inside the sqrt too: the unused branch may be negative or 0/0.
        ratio = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        r = jnp.sqrt(jnp.where(rectify, ratio, 1))
        sqrt_bias_correction2 = jnp.sqrt(bias_correction2)

        # The rule for one array, in the compute dtype; buffers keep their own dtype.
        def leaf(grad, theta, m, v):
            g = -grad.astype(dtype) if maximize else grad.astype(dtype)
            u = jnp.zeros_like(g)
            if decay:
                if decoupled_weight_decay:
                    u = -gamma * lam * theta.astype(dtype)
                else:
                    g = g + lam * theta.astype(dtype)
            m_t = b1 * m.astype(dtype) + one_minus_b1 * g
            v_t = b2 * v.astype(dtype) + one_minus_b2 * (g * g)
            m_hat = m_t / bias_correction1
            # adaptive lr l_t; 1 when not rectified (then r = 1 too: u = -gamma * m_hat)
            l = jnp.where(rectify, sqrt_bias_correction2 / (jnp.sqrt(v_t) + epsilon), 1)
            u = u - m_hat * gamma * l * r
            return u.astype(grad.dtype), m_t.astype(m.dtype), v_t.astype(v.dtype)

        scalars = RadamScalars(
            neg_gamma_lam=-gamma * lam, lam=lam, b1=b1, one_minus_b1=one_minus_b1, b2=b2,
            one_minus_b2=one_minus_b2, bias_correction1=bias_correction1, epsilon=epsilon,
            sqrt_bias_correction2=sqrt_bias_correction2, rectify=rectify.astype(dtype),
            gamma=gamma, r=r)
        return Prepared(params, leaf, scalars, (state.exp_avg, state.exp_avg_sq),
                        lambda m, v: RAdamState(state.step + 1, m, v))

    flags = Flag.MAXIMIZE * maximize | weight_decay_flags(decay, decoupled_weight_decay)
    return elementwise("radam", Kernel.RADAM, flags, fused, init, prepare)
