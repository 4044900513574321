"""Rprop: resilient backpropagation (torch.optim.Rprop)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._typing import Array, Params, ScalarOrSchedule
from .._validate import concrete_float
from ._base import (
    GradientTransformation,
    check_nonnegative,
    fill_like,
    hyperparameters,
    optimizer_factory,
    pair,
    scalar_dtype,
)
from ._fused import Flag, Kernel, RpropScalars
from ._lift import Prepared, elementwise
from ._schedule import resolve


class RpropState(NamedTuple):
    """Rprop state; fields are torch's per-parameter state keys.

    Attributes:
        step: number of updates taken (int32 scalar).
        prev: the previous (masked) gradient, one array per parameter.
        step_size: the per-element step size :math:`\\eta`, one array per parameter; starts at
            ``lr``.
    """

    step: Array
    prev: Params
    step_size: Params


@optimizer_factory
def rprop(
    lr: ScalarOrSchedule = 1e-2,
    etas: tuple[ScalarOrSchedule, ScalarOrSchedule] = (0.5, 1.2),
    step_sizes: tuple[ScalarOrSchedule, ScalarOrSchedule] = (1e-6, 50),
    *,
    maximize: bool = False,
    fused: bool | None = None,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.Rprop`.

    .. math::

        \begin{aligned}
        &\textbf{input}: \gamma \text{ (lr)}, (\eta_-, \eta_+) \text{ (etas)},
            (\Gamma_{\min}, \Gamma_{\max}) \text{ (step sizes)}, \textit{maximize} \\
        &\textbf{initialize}: g_0^{\text{prev}} \leftarrow 0, \; \eta_0 \leftarrow \gamma \\
        &\textbf{for } t = 1, 2, \ldots: \\
        &\quad g_t \leftarrow \pm\nabla_\theta f_t(\theta_{t-1})
            \quad (- \text{ if } \textit{maximize}) \\
        &\quad s \leftarrow \operatorname{sign}(g_t\, g_{t-1}^{\text{prev}}) \\
        &\quad \eta_t \leftarrow \operatorname{clamp}\big(\eta_{t-1} \cdot
            \{\eta_+ \text{ if } s > 0;\ \eta_- \text{ if } s < 0;\ 1 \text{ if } s = 0\},
            \Gamma_{\min}, \Gamma_{\max}\big) \\
        &\quad \textbf{where } s < 0: \; g_t \leftarrow 0 \\
        &\quad \theta_t \leftarrow \theta_{t-1} - \eta_t \operatorname{sign}(g_t) \\
        &\quad g_t^{\text{prev}} \leftarrow g_t
        \end{aligned}

    Symbols: :math:`\gamma` = ``lr``, :math:`(\eta_-, \eta_+)` = ``etas`` (multiplicative
    decrease and increase), :math:`(\Gamma_{\min}, \Gamma_{\max})` = ``step_sizes``,
    :math:`\eta` = ``step_size``, :math:`g^{\text{prev}}` = ``prev``. All operations are
    elementwise. ``lr`` only sets the initial step size, as in torch (the lr of the first
    update when it is a schedule; later lr values have no effect).

    Args:
        lr: initial step size; a float, a traced scalar or a schedule (only ``lr(0)`` is used).
        etas: :math:`(\eta_-, \eta_+)` with :math:`0 < \eta_- < 1 < \eta_+`.
        step_sizes: minimal and maximal step size.
        maximize: ascend instead of descend.
        fused: where the step runs one in-place C++ loop per float32/float64 buffer on CPU
            (torch's ``fused``): ``None`` in ``make_train_step`` / ``update_and_apply``,
            ``True`` also as a field ``apply``, ``False`` never (see :func:`sgd`).

    Returns:
        A :class:`GradientTransformation` whose ``update(grads, state, params=None)`` returns
        the updates :math:`\theta_t - \theta_{t-1}`; add them with :func:`apply_updates`.

    Shape:
        Any parameter pytree; the state holds two arrays of each parameter's shape and dtype.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import rprop, apply_updates
        >>> params = {"w": jnp.array([1.0, 1.0])}
        >>> opt = rprop(lr=0.25)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([0.5, -2.0])}, state, params)
        >>> apply_updates(params, updates)["w"]
        Array([0.75, 1.25], dtype=float32)

    .. warning::
        ``optax.rprop`` does not compute torch's trajectory (relative displacement ~1 over 50
        steps): its first update is 0 and each update it emits is the step size stored at the
        previous call, one step behind torch's.

    References:
        Riedmiller & Braun, `A Direct Adaptive Method for Faster Backpropagation Learning:
        The RPROP Algorithm <https://doi.org/10.1109/ICNN.1993.298623>`_.
    """
    (lr,) = hyperparameters("rprop", lr=lr)
    etas = pair(etas, "etas", "rprop", "(0.5, 1.2)")
    step_sizes = pair(step_sizes, "step_sizes", "rprop", "(1e-6, 50)")
    check_nonnegative(lr, "learning rate")
    eta_minus, eta_plus = (concrete_float(e) for e in etas)
    if eta_minus is not None and eta_plus is not None and not 0.0 < eta_minus < 1.0 < eta_plus:
        raise ValueError(f"Invalid eta values: {eta_minus}, {eta_plus}")

    def init(params: Params) -> RpropState:
        lr0 = resolve(lr, jnp.zeros((), jnp.int32), scalar_dtype(params))
        step_size = jax.tree.map(lambda p: fill_like(p, lr0), params)
        prev = jax.tree.map(jnp.zeros_like, params)
        return RpropState(jnp.zeros((), jnp.int32), prev, step_size)

    def prepare(grads: Params, state: RpropState, params: Params | None):
        """Per-step scalars and the rule for one array (shared by update and fused apply)."""
        del params  # Rprop uses only the gradients' signs
        # Per-step scalars, in the compute dtype (never below float32).
        dtype = scalar_dtype(grads)
        count = state.step
        etaminus, etaplus = (resolve(x, count, dtype) for x in etas)
        step_size_min, step_size_max = (resolve(x, count, dtype) for x in step_sizes)

        # The rule for one array, in the compute dtype; buffers keep their own dtype.
        def leaf(grad, theta, prev, step_size):
            del theta  # Rprop uses only the gradients' signs
            g = -grad.astype(dtype) if maximize else grad.astype(dtype)
            s = _torch_sign(g * prev.astype(dtype))
            factor = jnp.where(s > 0, etaplus, jnp.where(s < 0, etaminus, 1))
            eta = jnp.clip(step_size.astype(dtype) * factor, step_size_min, step_size_max)
            g = jnp.where(s < 0, 0, g)
            u = -_torch_sign(g) * eta
            return u.astype(grad.dtype), g.astype(prev.dtype), eta.astype(step_size.dtype)

        scalars = RpropScalars(etaminus=etaminus, etaplus=etaplus, step_size_min=step_size_min,
                               step_size_max=step_size_max)
        return Prepared(None, leaf, scalars,
                        (state.prev, state.step_size),
                        lambda prev, eta: RpropState(state.step + 1, prev, eta))

    return elementwise("rprop", Kernel.RPROP, Flag.MAXIMIZE * maximize, fused, init, prepare)


def _torch_sign(x):
    """torch's ``sign`` on CPU: ``jnp.sign``, except that NaN gives 0 (so a NaN gradient leaves
    its parameter and step size as they are, as in torch, and only ``prev`` holds the NaN)."""
    return jnp.where(jnp.isnan(x), 0, jnp.sign(x))
