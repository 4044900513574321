"""NAdam: Adam with Nesterov momentum and a momentum-decay schedule (torch.optim.NAdam)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._typing import Array, Params, ScalarOrSchedule
from ._base import (
    GradientTransformation,
    adam_hyperparameters,
    check_nonnegative,
    is_zero,
    optimizer_factory,
    require_params,
    scalar_dtype,
)
from ._fused import Flag, Kernel, NadamScalars, weight_decay_flags
from ._lift import Prepared, elementwise
from ._schedule import resolve, resolve_betas, resolve_one_minus_pow


class NAdamState(NamedTuple):
    """NAdam state; fields are torch's per-parameter state keys.

    Attributes:
        step: number of updates taken (int32 scalar).
        mu_product: :math:`\\prod_{i \\le t} \\mu_i`, a scalar in the compute dtype (torch keeps
            one 0-d tensor per parameter, all equal).
        exp_avg: first moment :math:`m`, one array per parameter.
        exp_avg_sq: second moment :math:`v`, one array per parameter.
    """

    step: Array
    mu_product: Array
    exp_avg: Params
    exp_avg_sq: Params


@optimizer_factory
def nadam(
    lr: ScalarOrSchedule = 2e-3,
    betas: tuple[ScalarOrSchedule, ScalarOrSchedule] = (0.9, 0.999),
    eps: ScalarOrSchedule = 1e-8,
    weight_decay: ScalarOrSchedule = 0,
    momentum_decay: ScalarOrSchedule = 4e-3,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.NAdam`.

    .. math::

        \begin{aligned}
        &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2 \text{ (betas)},
            \lambda \text{ (weight decay)}, \psi \text{ (momentum decay)},
            \epsilon \text{ (eps)}, \textit{decoupled}, \textit{maximize} \\
        &\textbf{initialize}: m_0 \leftarrow 0, \; v_0 \leftarrow 0, \;
            \Pi_0 \leftarrow 1 \text{ (mu\_product)} \\
        &\textbf{for } t = 1, 2, \ldots: \\
        &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if } \textit{maximize}) \\
        &\quad \textbf{if } \lambda \neq 0: \textbf{ if } \textit{decoupled}:
            \theta_{t-1} \leftarrow \theta_{t-1} - \gamma\lambda\theta_{t-1}
            \textbf{ else } g_t \leftarrow g_t + \lambda\theta_{t-1} \\
        &\quad \mu_t \leftarrow \beta_1\big(1 - \tfrac12\, 0.96^{t\psi}\big), \quad
            \mu_{t+1} \leftarrow \beta_1\big(1 - \tfrac12\, 0.96^{(t+1)\psi}\big) \\
        &\quad \Pi_t \leftarrow \Pi_{t-1}\,\mu_t \\
        &\quad m_t \leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        &\quad v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        &\quad d_t \leftarrow \sqrt{v_t / (1 - \beta_2^t)} + \epsilon \\
        &\quad \theta_t \leftarrow \theta_{t-1}
            - \frac{\gamma(1 - \mu_t)}{1 - \Pi_t}\,\frac{g_t}{d_t}
            - \frac{\gamma\mu_{t+1}}{1 - \Pi_t\mu_{t+1}}\,\frac{m_t}{d_t}
        \end{aligned}

    Symbols: :math:`\gamma` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``,
    :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``, :math:`\psi` =
    ``momentum_decay``, :math:`m` = ``exp_avg``, :math:`v` = ``exp_avg_sq``,
    :math:`\Pi` = ``mu_product``, :math:`t` = ``step`` after the increment. ``eps`` is added
    outside the square root of the bias-corrected second moment.

    Args:
        lr: learning rate :math:`\gamma`; a float, a traced scalar or a schedule
            ``count -> lr`` (the k-th update uses ``lr(k)``).
        betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
        eps: added to the denominator.
        weight_decay: :math:`\lambda` (needs ``params``): an L2 penalty added to the gradient,
            or with ``decoupled_weight_decay`` a decay :math:`\gamma\lambda\theta` (NAdamW).
        momentum_decay: :math:`\psi`, the speed at which :math:`\mu_t` approaches
            :math:`\beta_1`.
        decoupled_weight_decay: decay the weights directly instead of the gradient.
        maximize: ascend instead of descend.
        fused: where the step runs one in-place C++ loop per float32/float64 buffer on CPU
            (torch's ``fused``): ``None`` in ``make_train_step`` / ``update_and_apply``,
            ``True`` also as a field ``apply``, ``False`` never (see :func:`sgd`).

    Returns:
        A :class:`GradientTransformation` whose ``update(grads, state, params)`` returns the
        updates :math:`\theta_t - \theta_{t-1}`; add them with :func:`apply_updates`.

    Shape:
        Any parameter pytree; the state holds two arrays of each parameter's shape and dtype
        plus the scalars ``step`` and ``mu_product``.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import nadam, apply_updates
        >>> params = {"w": jnp.array([1.0, 1.0])}
        >>> opt = nadam(lr=0.1)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([0.5, -2.0])}, state, params)
        >>> apply_updates(params, updates)["w"].round(4)
        Array([0.8944, 1.1056], dtype=float32)

    .. warning::
        ``optax.nadam`` is Adam with a Nesterov step and a constant :math:`\beta_1`; it has no
        momentum-decay schedule :math:`\mu_t` nor the product :math:`\Pi_t`, and its
        trajectories differ from torch's by a relative displacement of about 1.3 over 50
        steps, also with ``momentum_decay=0`` (torch's :math:`\mu_t` is then
        :math:`\beta_1/2`). No optax configuration computes torch's NAdam.

    References:
        Dozat, `Incorporating Nesterov Momentum into Adam
        <https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ>`_;
        Loshchilov & Hutter, `Decoupled Weight Decay Regularization
        <https://arxiv.org/abs/1711.05101>`_.
    """
    lr, betas, eps, weight_decay, momentum_decay = adam_hyperparameters(
        "nadam", lr, betas, eps, weight_decay, momentum_decay=momentum_decay)
    check_nonnegative(momentum_decay, "momentum_decay value")
    decay = not is_zero(weight_decay)

    def init(params: Params) -> NAdamState:
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
        one = jnp.ones((), scalar_dtype(params))
        return NAdamState(jnp.zeros((), jnp.int32), one, zeros(), zeros())

    def prepare(grads: Params, state: NAdamState, params: Params | None):
        """Per-step scalars and the rule for one array (shared by update and fused apply)."""
        if decay:
            params = require_params(params, "nadam", "weight_decay != 0")
        # Per-step scalars, in the compute dtype (never below float32).
        dtype = scalar_dtype(grads)
        count = state.step
        t = (count + 1).astype(dtype)
        gamma = resolve(lr, count, dtype)
        b1, one_minus_b1, b2, one_minus_b2 = resolve_betas(betas, count, dtype)
        epsilon = resolve(eps, count, dtype)
        lam = resolve(weight_decay, count, dtype)
        psi = resolve(momentum_decay, count, dtype)
        bias_correction2 = resolve_one_minus_pow(betas[1], t, count, dtype)
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        mu_product = state.mu_product.astype(dtype) * mu
        mu_product_next = mu_product * mu_next
        c_g = -gamma * (1.0 - mu) / (1.0 - mu_product)
        c_m = -gamma * mu_next / (1.0 - mu_product_next)

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
            denom = jnp.sqrt(v_t / bias_correction2) + epsilon
            u = u + c_g * (g / denom) + c_m * (m_t / denom)
            return u.astype(grad.dtype), m_t.astype(m.dtype), v_t.astype(v.dtype)

        scalars = NadamScalars(
            neg_gamma_lam=-gamma * lam, lam=lam, b1=b1, one_minus_b1=one_minus_b1, b2=b2,
            one_minus_b2=one_minus_b2, bias_correction2=bias_correction2, epsilon=epsilon,
            c_g=c_g, c_m=c_m)
        mu_product = mu_product.astype(state.mu_product.dtype)
        return Prepared(params, leaf, scalars, (state.exp_avg, state.exp_avg_sq),
                        lambda m, v: NAdamState(state.step + 1, mu_product, m, v))

    flags = Flag.MAXIMIZE * maximize | weight_decay_flags(decay, decoupled_weight_decay)
    return elementwise("nadam", Kernel.NADAM, flags, fused, init, prepare)
