r"""Muon: momentum orthogonalized by Newton-Schulz iterations (torch.optim.Muon).

The algorithm (torch's box, with its symbols) is in :func:`muon`'s docstring:
``help(fnlearn.optim.muon)``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from .._tree import tree_map_tuple
from .._typing import Array, Params, ScalarOrSchedule
from .._validate import check_range
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

ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


class MuonState(NamedTuple):
    """State of :func:`muon`.

    Attributes:
        step: number of updates taken (int32 scalar; torch's Muon keeps none, fnlearn keeps
            one for schedules).
        momentum_buffer: :math:`B`, the params' structure, shapes and dtypes.
    """

    step: Array
    momentum_buffer: Params


@optimizer_factory
def muon(
    lr: ScalarOrSchedule = 1e-3,
    weight_decay: ScalarOrSchedule = 0.1,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
    eps: float = 1e-07,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    *,
    ns_dtype: DTypeLike = jnp.bfloat16,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.Muon` (for 2-D parameters).

    Algorithm (torch's, same symbols):

    .. math::
       \begin{aligned}
       &\textbf{input}: \gamma \text{ (lr)}, \lambda \text{ (weight decay)}, \mu \text{ (momentum)},
          \textit{nesterov}, (a, b, c) \text{ (ns\_coefficients)}, \epsilon, k \text{ (ns\_steps)},
          \theta_0 \in \mathbb{R}^{A \times B} \\
       &\textbf{initialize}: B_0 \leftarrow 0 \\
       &\textbf{for}\ t = 1, 2, \ldots \\
       &\quad G_t \leftarrow \nabla_\theta f_t(\theta_{t-1}), \quad
          B_t \leftarrow \operatorname{lerp}(B_{t-1}, G_t, 1 - \mu) \\
       &\quad \widetilde{B}_t \leftarrow \operatorname{lerp}(G_t, B_t, \mu)
          \ \textbf{if}\ \textit{nesterov}\ \textbf{else}\ B_t \\
       &\quad O_t \leftarrow \operatorname{NS}^{(a,b,c)}_k(\widetilde{B}_t; \epsilon) \\
       &\quad \theta_t \leftarrow \theta_{t-1} (1 - \gamma\lambda) - \widetilde{\gamma}\, O_t,
          \quad \widetilde{\gamma} = \gamma \sqrt{\max(1, A/B)}
          \ (\texttt{"original"})\ \text{or}\ 0.2\, \gamma \sqrt{\max(A, B)}
          \ (\texttt{"match\_rms\_adamw"})
       \end{aligned}

    :math:`\operatorname{NS}`: with :math:`X` the matrix (transposed when it has more rows than
    columns), :math:`X \leftarrow X / \max(\|X\|_F, \epsilon)`, then :math:`k` times
    :math:`M \leftarrow X X^\top`, :math:`X \leftarrow a X + (b M + c M M) X`, transposed back.
    torch runs it in bfloat16 (``ns_dtype``).

    The update returned is
    :math:`\theta_t - \theta_{t-1}`. As torch's, every parameter must be a matrix: give
    vectors, embeddings or a classifier head another optimizer with
    :func:`~fnlearn.optim.param_groups`.

    Symbols: :math:`\gamma` = ``lr``, :math:`\lambda` = ``weight_decay``, :math:`\mu` =
    ``momentum``, :math:`(a, b, c)` = ``ns_coefficients``, :math:`k` = ``ns_steps``.

    Args:
        lr: :math:`\gamma` (number, traced scalar or schedule ``step -> lr``).
        weight_decay: :math:`\lambda`, decoupled: the params are multiplied by
            :math:`1 - \gamma\lambda` (number, traced scalar or schedule).
        momentum: :math:`\mu`.
        nesterov: use the Nesterov look-ahead :math:`\operatorname{lerp}(G_t, B_t, \mu)`.
        ns_coefficients: :math:`(a, b, c)` of the quintic Newton-Schulz iteration.
        eps: :math:`\epsilon`, the floor of the Frobenius norm before the iteration.
        ns_steps: :math:`k` (below 100, as torch requires).
        adjust_lr_fn: ``None`` or ``"original"`` (:math:`\gamma\sqrt{\max(1, A/B)}`),
            ``"match_rms_adamw"`` (:math:`0.2\gamma\sqrt{\max(A, B)}`).
        ns_dtype: the dtype of the Newton-Schulz iteration. torch's is bfloat16 (fixed):
            the default reproduces it, each matmul accumulated in float32 and rounded once, as
            torch's CPU ``addmm``; results then agree with torch's to bfloat16 precision, not
            to float64's. ``jnp.float32`` or ``jnp.float64`` (an fnlearn option, not torch's)
            run the same iteration without that rounding.

    Returns:
        A :class:`GradientTransformation` whose state is :class:`MuonState`; ``update``
        needs ``params`` when ``weight_decay`` is nonzero.

    Raises:
        ValueError: a hyperparameter out of torch's range (torch's message), or, at ``init``,
            a parameter that is not a matrix.
        TypeError: a complex parameter (torch: "Muon does not support complex parameters").

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import muon, apply_updates
        >>> params = {"w": jnp.eye(2, 3)}
        >>> opt = muon(lr=0.02, ns_dtype=jnp.float32)
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.ones((2, 3))}, state, params)
        >>> updates["w"].shape
        (2, 3)

    .. note::
       ``optax.contrib.muon`` is another implementation (its own eps, 1e-8, and scaling
       options; non-matrix leaves go through AdamW): on the same gradients its numbers are
       not torch's (tests/optim/test_muon.py).

    References:
        Jordan et al., 2024. `Muon: An optimizer for hidden layers in neural networks
        <https://kellerjordan.github.io/posts/muon/>`_; Liu et al., 2025. `Muon is Scalable
        for LLM Training <https://arxiv.org/abs/2502.16982>`_.
    """
    lr, weight_decay, momentum, eps = hyperparameters(
        "muon", lr=lr, weight_decay=weight_decay, momentum=momentum, eps=eps)
    check_range(lr, "Learning rate should be >= 0 but is", lambda v: v >= 0)
    check_range(momentum, "momentum should be >= 0 but is", lambda v: v >= 0)
    check_range(weight_decay, "weight decay should be >= 0 but is", lambda v: v >= 0)
    if adjust_lr_fn not in ADJUST_LR_FNS:
        raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
    if ns_steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    if len(ns_coefficients) != 3:
        raise ValueError("Coefficients must be a tuple of exactly 3 values")
    ns_dtype = jnp.dtype(ns_dtype)
    if not jnp.issubdtype(ns_dtype, jnp.floating):
        raise TypeError(f"muon: ns_dtype must be a floating dtype, got {ns_dtype}")

    def init(params: Params) -> MuonState:
        reject_complex(params, "muon", "params",
                       "Muon does not support complex parameters (as torch's)")
        for path, p in jax.tree_util.tree_leaves_with_path(params):
            if jnp.ndim(p) != 2:
                raise ValueError(f"muon: params{jax.tree_util.keystr(path)} has shape "
                                 f"{tuple(jnp.shape(p))}; Muon only supports 2D parameters "
                                 "(give the others another optimizer with param_groups)")
        return MuonState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update(grads: Params, state: MuonState, params: Params | None = None):
        if not is_zero(weight_decay):
            params = require_params(params, "muon", "weight_decay is nonzero")
        dtype = scalar_dtype(grads)
        gamma = resolve(lr, state.step, dtype)
        lam = resolve(weight_decay, state.step, dtype)
        mu = jnp.asarray(momentum, dtype)

        def rule(grad, theta, buf):
            g = grad.astype(dtype)
            buf_t = torch_lerp(buf.astype(dtype), g, 1 - mu)
            u = torch_lerp(g, buf_t, mu) if nesterov else buf_t
            o = _newton_schulz(u, ns_coefficients, ns_steps, eps, ns_dtype).astype(dtype)
            step = -(gamma * _lr_ratio(adjust_lr_fn, grad.shape)) * o
            if not is_zero(weight_decay):
                th = theta.astype(dtype)
                step = (th * (1 - gamma * lam) - th) + step
            return step.astype(grad.dtype), buf_t.astype(buf.dtype)

        updates, buffer = tree_map_tuple(
            rule, grads, params if not is_zero(weight_decay) else None, state.momentum_buffer,
            n_out=2)
        return updates, MuonState(state.step + 1, buffer)

    return per_parameter(init, update)


def _lr_ratio(adjust_lr_fn: str | None, shape: tuple[int, ...]) -> float:
    """torch's ``_adjust_lr`` factor for an ``A x B`` parameter."""
    rows, cols = shape[:2]
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1, rows / cols))


def _newton_schulz(g: Array, coefficients: tuple[float, float, float], steps: int,
                   eps: float, dtype: Any) -> Array:
    """torch's ``_zeropower_via_newtonschulz`` in ``dtype``: each matmul (with its ``addmm``
    scaling) accumulated in float32 at least and rounded once to ``dtype``."""
    a, b, c = coefficients
    wide = dtype if jnp.dtype(dtype).itemsize >= 4 else jnp.dtype(jnp.float32)
    x = g.astype(dtype)
    tall = g.shape[0] > g.shape[1]
    if tall:
        x = x.T
    norm = jnp.linalg.norm(x.astype(wide)).astype(dtype)
    x = (x.astype(wide) / jnp.maximum(norm, jnp.asarray(eps, dtype)).astype(wide)).astype(dtype)

    def mm(p, q):
        return jnp.matmul(p, q, preferred_element_type=wide)

    for _ in range(steps):
        m = mm(x, x.T).astype(dtype)
        m2 = (b * m.astype(wide) + c * mm(m, m)).astype(dtype)
        x = (a * x.astype(wide) + mm(m2, x)).astype(dtype)
    return x.T if tall else x

