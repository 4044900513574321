r"""Adam and AdamW: :class:`torch.optim.Adam` and :class:`torch.optim.AdamW`.

The algorithm (torch's box, with its symbols) is in :func:`adam`'s docstring:
``help(fnlearn.optim.adam)``.
"""

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
from ._fused import AdamScalars, Flag, Kernel, weight_decay_flags
from ._lift import Prepared, elementwise
from ._schedule import resolve, resolve_one_minus, resolve_one_minus_pow


class AdamState(NamedTuple):
    r"""State of :func:`adam` and :func:`adamw`, named after torch's per-parameter state keys.

    ``step`` (int32 scalar) counts updates; ``exp_avg`` is :math:`m`, ``exp_avg_sq`` is
    :math:`v` and ``max_exp_avg_sq`` (``None`` unless ``amsgrad``) is :math:`v^{max}`, the
    running maximum of the *raw* (not bias-corrected) second moment. Buffers keep the params'
    dtype.
    """

    step: Array
    exp_avg: Params
    exp_avg_sq: Params
    max_exp_avg_sq: Params | None


@optimizer_factory
def adam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[ScalarOrSchedule, ScalarOrSchedule] = (0.9, 0.999),
    eps: float | Array = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.Adam`.

    Algorithm (torch's, same symbols):

    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \beta_1, \beta_2 \text{ (betas)}, \theta_0,
          \lambda \text{ (weight decay)}, \epsilon, \textit{amsgrad}, \textit{maximize},
          \textit{decoupled} \\
       &\textbf{initialize}: m_0 \leftarrow 0, v_0 \leftarrow 0, v^{max}_0 \leftarrow 0 \\
       &\textbf{for}\ t = 1, 2, \ldots \\
       &\quad g_t \leftarrow \nabla_\theta f_t(\theta_{t-1})
          \quad (\textbf{if}\ \textit{maximize}:\ g_t \leftarrow -g_t) \\
       &\quad \textbf{if}\ \lambda \ne 0: \\
       &\qquad \textbf{if}\ \textit{decoupled}:\
          \theta_{t-1} \leftarrow \theta_{t-1} (1 - \gamma \lambda)
          \quad \textbf{else}:\ g_t \leftarrow g_t + \lambda \theta_{t-1} \\
       &\quad m_t \leftarrow m_{t-1} + (1 - \beta_1)(g_t - m_{t-1}) \\
       &\quad v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
       &\quad \textbf{if}\ \textit{amsgrad}:\ v^{max}_t \leftarrow \max(v^{max}_{t-1}, v_t),
          \quad \hat v_t \leftarrow v^{max}_t / (1 - \beta_2^t)
          \quad \textbf{else}:\ \hat v_t \leftarrow v_t / (1 - \beta_2^t) \\
       &\quad \hat m_t \leftarrow m_t / (1 - \beta_1^t) \\
       &\quad \theta_t \leftarrow \theta_{t-1} - \gamma \hat m_t / (\sqrt{\hat v_t} + \epsilon)
       \end{aligned}

    The update returned is
    :math:`-\gamma\lambda\theta_{t-1} - \gamma \hat m_t / (\sqrt{\hat v_t} + \epsilon)` with
    decoupled weight decay, without the first term otherwise.

    Symbols: :math:`\gamma` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``, :math:`\epsilon`
    = ``eps``, :math:`\lambda` = ``weight_decay``, :math:`m` = ``exp_avg``, :math:`v` =
    ``exp_avg_sq``, :math:`v^{max}` = ``max_exp_avg_sq``, :math:`t` = ``step``.

    Args:
        lr: learning rate (number, traced scalar or schedule ``step -> lr``).
        betas: decay rates :math:`(\beta_1, \beta_2)` of the first and second moments, each in
            ``[0, 1)`` (numbers, traced scalars or schedules).
        eps: added to :math:`\sqrt{\hat v_t}` (outside the square root), for stability.
        weight_decay: weight decay :math:`\lambda` (number, traced scalar or schedule); nonzero
            needs ``params`` in ``update``. Added to the gradient (L2), or, with
            ``decoupled_weight_decay``, applied to the params as :math:`\gamma\lambda\theta`.
        amsgrad: use the running maximum of the second moment (AMSGrad).
        maximize: maximize the objective instead of minimizing it (the decoupled decay still
            shrinks the params towards 0, as in torch).
        decoupled_weight_decay: AdamW's decoupled decay instead of the L2 penalty.
        fused: where the step runs one in-place C++ loop per float32/float64 buffer on CPU
            (torch's ``fused``): ``None`` in ``make_train_step`` / ``update_and_apply``,
            ``True`` also as a field ``apply``, ``False`` never (see :func:`sgd`).

    Returns:
        A :class:`GradientTransformation` whose state is :class:`AdamState`.

    Shape:
        params, grads, updates and every buffer share the params' pytree structure; the bias
        corrections and other per-step scalars are computed in the wider of float32 and the
        widest grad dtype.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import adam, apply_updates
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> opt = adam(lr=0.1)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([0.5, -0.5])}, state, params)
        >>> apply_updates(params, updates)["w"]
        Array([ 0.9, -1.9], dtype=float32)

    .. warning::
       ``amsgrad=True`` differs from ``optax.amsgrad``: torch (and fnlearn) keep the maximum
       of the raw :math:`v_t` and divide it by the *current* bias correction
       :math:`1 - \beta_2^t`; optax keeps the maximum of the bias-corrected values
       (``bias_correction_nu=True``) or applies no bias correction (``False``). Without
       amsgrad the update equals ``optax.adam(lr, b1, b2, eps)``, preceded by
       ``optax.add_decayed_weights(wd)`` for the L2 penalty and ``optax.scale(-1)`` for
       maximize.

    References:
        Kingma and Ba, 2014. `Adam: A Method for Stochastic Optimization
        <https://arxiv.org/abs/1412.6980>`_; Reddi, Kale and Kumar, 2018. `On the Convergence
        of Adam and Beyond <https://openreview.net/forum?id=ryQu7f-RZ>`_ (AMSGrad).
    """
    return _adam("adam", lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay,
                 fused)


@optimizer_factory
def adamw(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[ScalarOrSchedule, ScalarOrSchedule] = (0.9, 0.999),
    eps: float | Array = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.AdamW`.

    :func:`adam` with ``decoupled_weight_decay=True`` and torch's AdamW default
    ``weight_decay=1e-2``: each step first shrinks the params,
    :math:`\theta \leftarrow \theta (1 - \gamma\lambda)`, then takes the Adam step computed
    from the un-decayed gradient. Arguments, state (:class:`AdamState`) and shapes as
    :func:`adam`.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import adamw, apply_updates
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> opt = adamw(lr=0.1, weight_decay=0.5)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([0.5, -0.5])}, state, params)
        >>> apply_updates(params, updates)["w"]
        Array([ 0.85, -1.8 ], dtype=float32)

    .. warning::
       ``optax.adamw`` defaults to ``weight_decay=1e-4`` (torch: 1e-2). With the weight decay
       given explicitly, ``optax.adamw(lr, b1, b2, eps, weight_decay=wd)`` computes the same
       update (also with a schedule: both decay with the current lr). ``amsgrad=True``
       differs from optax as in :func:`adam`.

    References:
        Loshchilov and Hutter, 2019. `Decoupled Weight Decay Regularization
        <https://arxiv.org/abs/1711.05101>`_.
    """
    return _adam("adamw", lr, betas, eps, weight_decay, amsgrad, maximize, True, fused)


def _adam(
    name: str,
    lr: ScalarOrSchedule,
    betas: tuple[ScalarOrSchedule, ScalarOrSchedule],
    eps: float | Array,
    weight_decay: ScalarOrSchedule,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
    fused: bool | None,
) -> GradientTransformation:
    lr, (beta1, beta2), eps, weight_decay = adam_hyperparameters(
        name, lr, betas, eps, weight_decay)

    def init(params: Params) -> AdamState:
        def zeros():
            return jax.tree.map(jnp.zeros_like, params)

        return AdamState(
            step=jnp.zeros([], jnp.int32),
            exp_avg=zeros(),
            exp_avg_sq=zeros(),
            max_exp_avg_sq=zeros() if amsgrad else None,
        )

    def prepare(grads: Params, state: AdamState, params: Params | None):
        """Per-step scalars and the rule for one array (shared by update and fused apply)."""
        if not is_zero(weight_decay):
            params = require_params(params, name, "weight_decay is nonzero")
        dtype = scalar_dtype(grads)
        t = (state.step + 1).astype(dtype)
        gamma = resolve(lr, state.step, dtype)
        b2 = resolve(beta2, state.step, dtype)
        one_minus_b1 = resolve_one_minus(beta1, state.step, dtype)
        one_minus_b2 = resolve_one_minus(beta2, state.step, dtype)
        epsilon = resolve(eps, state.step, dtype)
        lam = resolve(weight_decay, state.step, dtype)
        step_size = gamma / resolve_one_minus_pow(beta1, t, state.step, dtype)
        bias_correction2_sqrt = jnp.sqrt(resolve_one_minus_pow(beta2, t, state.step, dtype))

        def rule(grad, theta, m, v, v_max):
            g = -grad.astype(dtype) if maximize else grad.astype(dtype)
            decay = None
            if not is_zero(weight_decay):
                theta = theta.astype(dtype)
                if decoupled:  # theta <- theta (1 - gamma lambda), written as an update
                    decay = theta * (1 - gamma * lam) - theta
                else:
                    g = g + lam * theta
            m_t = m.astype(dtype)
            m_t = m_t + one_minus_b1 * (g - m_t)
            v_t = b2 * v.astype(dtype) + one_minus_b2 * (g * g)
            if amsgrad:
                v_max_t = jnp.maximum(v_max.astype(dtype), v_t)
                denom = jnp.sqrt(v_max_t) / bias_correction2_sqrt + epsilon
                v_max = v_max_t.astype(v_max.dtype)
            else:
                denom = jnp.sqrt(v_t) / bias_correction2_sqrt + epsilon
            u = -step_size * (m_t / denom)
            if decay is not None:
                u = decay + u
            return u.astype(grad.dtype), m_t.astype(m.dtype), v_t.astype(v.dtype), v_max

        scalars = AdamScalars(
            one_minus_b1=one_minus_b1, b2=b2, one_minus_b2=one_minus_b2, step_size=step_size,
            bias_correction2_sqrt=bias_correction2_sqrt, epsilon=epsilon, lam=lam,
            decay_factor=1 - gamma * lam)
        return Prepared(
            params, rule, scalars, (state.exp_avg, state.exp_avg_sq, state.max_exp_avg_sq),
            lambda m, v, v_max: AdamState(state.step + 1, m, v, v_max))

    decay = not is_zero(weight_decay)
    flags = (Flag.MAXIMIZE * maximize | weight_decay_flags(decay, decoupled)
             | Flag.AMSGRAD * amsgrad)
    return elementwise(name, Kernel.ADAM, flags, fused, init, prepare)
