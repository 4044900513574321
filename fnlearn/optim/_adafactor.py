r"""Adafactor: second moments factored into row and column means (torch.optim.Adafactor).

The algorithm (torch's box, with its symbols) is in :func:`adafactor`'s docstring:
``help(fnlearn.optim.adafactor)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._tree import tree_map_tuple
from .._typing import Array, Params, ScalarOrSchedule
from .._validate import check_range, hyperparameter
from ._base import (
    GradientTransformation,
    hyperparameters,
    is_zero,
    optimizer_factory,
    per_parameter,
    reject_complex,
    require_params,
    scalar_dtype,
    torch_lerp,
)
from ._schedule import resolve


class AdafactorState(NamedTuple):
    """State of :func:`adafactor`, named after torch's per-parameter state keys.

    Attributes:
        step: number of updates taken (int32 scalar).
        row_var: :math:`R`, for each parameter of rank >= 2 an array of its shape with the last
            axis 1 (``None`` at the other parameters; ``None`` when there are none).
        col_var: :math:`C`, the shape with the second-to-last axis 1 (likewise).
        variance: :math:`\\widehat{V}`, the parameter's shape, for parameters of rank <= 1
            (``None`` at the others; ``None`` when there are none).
    """

    step: Array
    row_var: Params | None
    col_var: Params | None
    variance: Params | None


@optimizer_factory
def adafactor(
    lr: ScalarOrSchedule = 1e-2,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.Adafactor`.

    Algorithm (torch's, same symbols):

    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \tau \text{ (beta2\_decay)}, \theta_0 \text{ (params)},
          \epsilon_1, \epsilon_2 \text{ (eps)}, d \text{ (clipping threshold)},
          \lambda \text{ (weight decay)}, \textit{maximize} \\
       &\textbf{initialize}: R_0 \leftarrow 0,\ C_0 \leftarrow 0 \text{ (row and column factors,
          params of rank} \ge 2),\ \widehat{V}_0 \leftarrow 0 \text{ (other params)} \\
       &\textbf{for}\ t = 1, 2, \ldots \\
       &\quad G_t \leftarrow \nabla_\theta f_t(\theta_{t-1})
          \quad (\textbf{if}\ \textit{maximize}:\ G_t \leftarrow -G_t) \\
       &\quad \hat\beta_{2,t} \leftarrow 1 - t^{\tau}, \quad
          \rho_t \leftarrow \min(\gamma, 1/\sqrt{t}), \quad
          \alpha_t \leftarrow \max(\epsilon_2, \operatorname{RMS}(\theta_{t-1}))\, \rho_t \\
       &\quad \theta_t \leftarrow \theta_{t-1} - \gamma\lambda\theta_{t-1} \\
       &\quad \textbf{if}\ \operatorname{rank}(G_t) > 1: \\
       &\qquad R_t \leftarrow \operatorname{lerp}(R_{t-1},\ \operatorname{mean}_{-1}(G_t^2),\
          1 - \hat\beta_{2,t}), \quad
          C_t \leftarrow \operatorname{lerp}(C_{t-1},\ \operatorname{mean}_{-2}(G_t^2),\
          1 - \hat\beta_{2,t}) \\
       &\qquad \widehat{V}_t \leftarrow R_t C_t / \max(\operatorname{mean}_{-2}(R_t), \epsilon_1) \\
       &\quad \textbf{else}: \ \widehat{V}_t \leftarrow \operatorname{lerp}(\widehat{V}_{t-1},\
          G_t^2,\ 1 - \hat\beta_{2,t}) \\
       &\quad U_t \leftarrow G_t / \sqrt{\max(\widehat{V}_t, \epsilon_1^2)}, \quad
          \widehat{U}_t \leftarrow U_t / \max(1, \operatorname{RMS}(U_t) / d) \\
       &\quad \theta_t \leftarrow \theta_t - \alpha_t \widehat{U}_t
       \end{aligned}

    :math:`\operatorname{RMS}(x) = \|x\|_2 / \sqrt{\operatorname{numel}(x)}` per parameter;
    :math:`\operatorname{mean}_{-1}` and :math:`\operatorname{mean}_{-2}` average over the last
    and the second-to-last axis (keeping it, so :math:`R_t C_t` is an outer product per matrix);
    :math:`\operatorname{lerp}(a, b, w) = a + w (b - a)`.

    This is torch's algorithm, which differs from Shazeer and Stern's paper where torch's
    docs say so: ``lr`` caps the relative step size :math:`\rho_t` and scales the decoupled
    weight decay, and :math:`\epsilon_1` is applied to the variance estimate, not to the
    factors. The update returned is
    :math:`\theta_t - \theta_{t-1}`.

    Symbols: :math:`\gamma` = ``lr``, :math:`\tau` = ``beta2_decay``,
    :math:`(\epsilon_1, \epsilon_2)` = ``eps``, :math:`d` = ``d``, :math:`\lambda` =
    ``weight_decay``.

    Args:
        lr: :math:`\gamma`, the cap of the relative step size and the weight decay's factor:
            a number, a traced scalar or a schedule ``step -> lr``.
        beta2_decay: :math:`\tau \le 0`: the second-moment average weighs the new squared
            gradient by :math:`t^\tau`.
        eps: :math:`(\epsilon_1, \epsilon_2)`; :math:`\epsilon_1` = ``None`` is the
            parameter dtype's machine epsilon (``jnp.finfo(dtype).eps``), as torch's.
        d: the update-clipping threshold :math:`d \ge 1`.
        weight_decay: :math:`\lambda`, decoupled (number, traced scalar or schedule).
        maximize: maximize the objective instead of minimizing it.

    Returns:
        A :class:`GradientTransformation` whose state is :class:`AdafactorState`. ``update``
        needs ``params`` (the step size scales with each parameter's RMS).

    Shape:
        Parameters of rank >= 2 are factored over their last two axes (leading axes are a
        batch of matrices), the others (vectors, scalars) keep a full second moment. On a
        :class:`~fnlearn.flat.Flat` the rule runs on each parameter's view (the factoring
        and the RMS are per parameter, so the buffer's layout must not change them); the
        state is then one array per parameter, not a ``Flat``.

    Raises:
        ValueError: a hyperparameter out of torch's range, with torch's message.
        TypeError: a complex parameter (torch: "Adafactor does not support complex
            parameters").

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import adafactor, apply_updates
        >>> params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
        >>> opt = adafactor(lr=1e-2)
        >>> state = opt.init(params)
        >>> grads = {"w": jnp.full((2, 3), 0.5), "b": jnp.ones(3)}
        >>> updates, state = opt.update(grads, state, params)
        >>> state.row_var["w"].shape, state.variance["b"].shape
        ((2, 1), (3,))

    .. warning::
       ``optax.adafactor``'s defaults are another rule: matrices factored only from
       ``min_dim_size_to_factor=128`` rows and columns, and the relative step multiplied by
       ``learning_rate`` (on the same gradients they move the parameters by orders of
       magnitude more than torch's; tests/optim/test_adafactor.py). The closest optax,
       ``fnlearn.crosscheck.to_optax("adafactor", ...)``, passes torch's
       :math:`\rho_t = \min(\gamma, 1/\sqrt{t})` as ``learning_rate`` with
       ``min_dim_size_to_factor=1``: 7.5e-8 of the distance travelled from torch's in
       float64 (optax computes :math:`1 - t^{\tau}` from a float32 step count).

    References:
        Shazeer and Stern, 2018. `Adafactor: Adaptive Learning Rates with Sublinear Memory
        Cost <https://arxiv.org/abs/1804.04235>`_.
    """
    lr, beta2_decay, d, weight_decay = hyperparameters(
        "adafactor", lr=lr, beta2_decay=beta2_decay, d=d, weight_decay=weight_decay)
    if not isinstance(eps, (tuple, list)) or len(eps) != 2:
        raise TypeError(f"adafactor: eps must be a pair (eps1, eps2), e.g. eps=(None, 1e-3); "
                        f"got {eps!r}")
    eps1 = None if eps[0] is None else hyperparameter(eps[0], "eps[0]", "adafactor")
    eps2 = hyperparameter(eps[1], "eps[1]", "adafactor")
    check_range(lr, "Learning rate should be >= 0 but is", lambda v: v >= 0)
    check_range(beta2_decay, "beta2_decay should be <= 0 but is", lambda v: v <= 0)
    if eps1 is not None:
        check_range(eps1, "epsilon1 should be >= 0 but is", lambda v: v >= 0)
    check_range(eps2, "epsilon2 should be >= 0 but is", lambda v: v >= 0)
    check_range(d, "Clipping threshold d should be >= 1 but is", lambda v: v >= 1)
    check_range(weight_decay, "weight_decay should be >= 0 but is", lambda v: v >= 0)

    def init(params: Params) -> AdafactorState:
        reject_complex(params, "adafactor", "params",
                       "Adafactor does not support complex parameters (as torch's)")
        leaves, treedef = jax.tree.flatten(params)
        factored = [jnp.ndim(p) > 1 for p in leaves]

        def field(make, where):
            out = [make(p) if f == where else None for p, f in zip(leaves, factored, strict=True)]
            return None if all(x is None for x in out) else treedef.unflatten(out)

        return AdafactorState(
            step=jnp.zeros([], jnp.int32),
            row_var=field(lambda p: jnp.zeros((*p.shape[:-1], 1), p.dtype), True),
            col_var=field(lambda p: jnp.zeros((*p.shape[:-2], 1, p.shape[-1]), p.dtype), True),
            variance=field(jnp.zeros_like, False),
        )

    def update(grads: Params, state: AdafactorState, params: Params | None = None):
        params = require_params(params, "adafactor",
                                "the step size scales with each parameter's RMS")
        dtype = scalar_dtype(grads)
        t = (state.step + 1).astype(dtype)
        gamma = resolve(lr, state.step, dtype)
        lam = resolve(weight_decay, state.step, dtype)
        w = t ** jnp.asarray(beta2_decay, dtype)  # 1 - beta2_t, the new term's weight
        rho = jnp.minimum(gamma, 1 / jnp.sqrt(t))

        def rule(grad, theta, row, col, var):
            n = math.prod(np.shape(theta))
            if n == 0:
                return jnp.zeros_like(grad), row, col, var
            g = -grad.astype(dtype) if maximize else grad.astype(dtype)
            th = theta.astype(dtype)
            e1 = jnp.asarray(jnp.finfo(theta.dtype).eps if eps1 is None else eps1, dtype)
            alpha = jnp.maximum(eps2, jnp.linalg.norm(th.ravel()) / math.sqrt(n)) * rho
            new = th * (1 - gamma * lam) if not is_zero(weight_decay) else th
            if g.ndim > 1:
                row_t = torch_lerp(row.astype(dtype), _mean_square(g, -1), w)
                col_t = torch_lerp(col.astype(dtype), _mean_square(g, -2), w)
                v = row_t * col_t / jnp.maximum(jnp.mean(row_t, axis=-2, keepdims=True), e1)
                row, col = row_t.astype(row.dtype), col_t.astype(col.dtype)
            else:
                var_t = torch_lerp(var.astype(dtype), g * g, w)
                v = var_t
                var = var_t.astype(var.dtype)
            u = (1 / jnp.sqrt(jnp.maximum(v, e1 * e1))) * g
            denom = jnp.maximum(1, jnp.linalg.norm(u.ravel()) / (math.sqrt(n) * d))
            new = new + (-alpha / denom) * u
            return (new - th).astype(grad.dtype), row, col, var

        updates, row_var, col_var, variance = tree_map_tuple(
            rule, grads, params, state.row_var, state.col_var, state.variance, n_out=4)
        return updates, AdafactorState(state.step + 1, row_var, col_var, variance)

    return per_parameter(init, update)


def _mean_square(g: Array, axis: int) -> Array:
    """``norm(g, dim=axis, keepdim=True)**2 / g.shape[axis]``, as torch computes the mean of
    ``g * g`` along ``axis``."""
    return jnp.square(jnp.linalg.norm(g, axis=axis, keepdims=True)) / g.shape[axis]

