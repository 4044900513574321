r"""Gradient clipping with :mod:`torch.nn.utils` semantics: functions over gradient pytrees and
transformations for a chain.

.. math::
   \begin{aligned}
   n &= \big\| \left(\|g_1\|_p, \ldots, \|g_L\|_p\right) \big\|_p
       \qquad \text{(the p-norm of all gradient leaves together)} \\
   c &= \min\!\left(\frac{\texttt{max\_norm}}{n + 10^{-6}},\ 1\right), \qquad
   g_i \leftarrow c\, g_i \ \text{ for every leaf (no branch)}
   \end{aligned}

Symbols: :math:`g_i` = the gradient leaves, :math:`p` = ``norm_type`` (``inf`` or ``'inf'``:
the largest :math:`|g|`), :math:`n` = ``total_norm`` (returned before clipping), :math:`c` =
the clipping coefficient.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .._typing import Array, ArrayLike, Params
from .._validate import is_tracer
from ..flat import unpadded
from ._base import GradientTransformation, check_nonnegative, reject_complex, scalar_dtype


def _norm_order(norm_type: float | str) -> float:
    """torch's ``float(norm_type)``: a number, ``inf`` or ``'inf'``; NaN is rejected."""
    if isinstance(norm_type, jax.core.Tracer):
        raise ValueError(
            "norm_type must be a static number, got a traced value; under "
            "optax.inject_hyperparams pass static_args=('norm_type',)"
        )
    try:
        p = float(norm_type)
    except (TypeError, ValueError):
        raise ValueError(f"norm_type must be a number or 'inf', got {norm_type!r}") from None
    if math.isnan(p):
        raise ValueError(f"norm_type must be a number or 'inf', got {norm_type!r}")
    return p


def _nonfinite_message(p: float) -> str:
    return (
        f"The total norm of order {p} for gradients from `parameters` is non-finite, so it "
        "cannot be clipped. To disable this error and scale the gradients by the non-finite "
        "norm anyway, set `error_if_nonfinite=False`"
    )


def _raise_if_nonfinite(total_norm: Array, p: float) -> None:
    """Raise torch's RuntimeError for a concrete non-finite norm. A traced norm (under ``jit``,
    ``vmap``, ``grad``) has no value yet and compiled code cannot raise a Python exception
    (a host callback's error reaches the user as XLA's "CpuCallback error" with the message
    buried), so a trace is refused at once with what to write instead."""
    if is_tracer(total_norm):
        raise TypeError(
            "error_if_nonfinite=True needs concrete gradients (a value to check now), but "
            "the gradients are traced (inside jit, vmap or grad), and compiled code cannot "
            "raise. Inside jit pass error_if_nonfinite=False and check the returned total "
            "norm after the jitted call: `if not jnp.isfinite(total_norm): raise ...`; "
            "fnlearn.train.make_train_step(skip_nonfinite=True) skips such steps instead")
    if not bool(jnp.isfinite(total_norm)):
        raise RuntimeError(_nonfinite_message(p))


def get_total_norm(
    grads: Params, norm_type: float | str = 2.0, error_if_nonfinite: bool = False
) -> Array:
    r"""JAX implementation of :func:`torch.nn.utils.get_total_norm`.

    :math:`n = \| (\|g_1\|_p, \ldots, \|g_L\|_p) \|_p` over the leaves of ``grads``: the
    p-norm of all leaves concatenated. Each leaf's norm is computed in the wider of float32
    and its dtype, the total in the widest of those (a tree of float32 and float64 leaves
    gives a float64 norm, as torch's ``stack`` promotes). A complex leaf contributes the norm
    of its elements' moduli :math:`|z|` (torch's ``vector_norm``).

    Args:
        grads: a pytree of gradient arrays (``None`` leaves are skipped, as torch skips
            parameters whose ``.grad`` is ``None``).
        norm_type: :math:`p`: any number (torch's ``vector_norm`` orders, including 0 and
            negative ones), ``float('inf')`` or ``'inf'``. Default: 2.0.
        error_if_nonfinite: raise torch's ``RuntimeError`` when the norm is nan or inf; see
            :func:`clip_grad_norm` for what happens under ``jit``.

    Returns:
        The total norm, a scalar (0.0 in float32 for a tree without leaves, as torch).

    Example::

        >>> from fnlearn.optim import get_total_norm
        >>> import jax.numpy as jnp
        >>> float(get_total_norm({"a": jnp.array([3.0]), "b": jnp.array([[4.0]])}))
        5.0
    """
    p = _norm_order(norm_type)
    if p < 0:  # a Flat's zero padding would be the minimum; for p >= 0 a zero adds nothing
        grads = unpadded(grads)
    leaves = jax.tree.leaves(grads)
    dtype = scalar_dtype(leaves)
    if not leaves:
        return jnp.zeros([], dtype)
    norms = []
    for g in leaves:
        g = jnp.asarray(g)
        g = jnp.abs(g) if jnp.iscomplexobj(g) else g  # torch's vector_norm of a complex: |z|
        norms.append(jnp.linalg.norm(jnp.ravel(g.astype(scalar_dtype([g]))), ord=p))
    total = jnp.linalg.norm(jnp.stack([n.astype(dtype) for n in norms]), ord=p)
    if error_if_nonfinite:
        _raise_if_nonfinite(total, p)
    return total


def clip_grads_with_norm(grads: Params, max_norm: ArrayLike, total_norm: ArrayLike) -> Params:
    r"""JAX implementation of :func:`torch.nn.utils.clip_grads_with_norm_` (not in place).

    Every leaf is multiplied by :math:`c = \min(\texttt{max\_norm} / (n + 10^{-6}), 1)` with
    :math:`n` = ``total_norm`` (computed in the wider of float32 and the leaf's dtype, the
    result cast back to the leaf's dtype).

    Args:
        grads: the gradient pytree.
        max_norm: the largest norm allowed (a number or a traced scalar).
        total_norm: a precomputed total norm (e.g. from :func:`get_total_norm`).

    Returns:
        The scaled gradients, with ``grads``' structure and dtypes.
    """
    check_nonnegative(max_norm, "max_norm")
    total = jnp.asarray(total_norm)
    coef = jnp.minimum(jnp.asarray(max_norm, total.dtype) / (total + 1e-6), 1.0)

    def scale(g: Array) -> Array:
        d = scalar_dtype([g])
        if jnp.iscomplexobj(g):  # both parts times c (complex64/128 need no widening)
            c = coef.astype(d)
            return jax.lax.complex(jnp.real(g) * c, jnp.imag(g) * c)
        return (g.astype(d) * coef.astype(d)).astype(g.dtype)

    return jax.tree.map(scale, grads)


def clip_grad_norm(
    grads: Params,
    max_norm: ArrayLike,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
) -> tuple[Params, Array]:
    r"""JAX implementation of :func:`torch.nn.utils.clip_grad_norm_`, as a pure function.

    .. math::
        n = \| (\|g_1\|_p, \ldots, \|g_L\|_p) \|_p, \qquad
        g_i \leftarrow g_i \cdot \min\!\left(\frac{\texttt{max\_norm}}{n + 10^{-6}}, 1\right)

    Every gradient is multiplied by the coefficient, also when it is 1; so clipping is
    slightly active already when :math:`n` is up to ~1e-6 below ``max_norm``, and a clipped
    tree has norm ``max_norm * n / (n + 1e-6)``, not exactly ``max_norm``. A nan norm makes
    every gradient nan; an inf norm makes finite entries 0 and infinite ones nan.

    Args:
        grads: a pytree of gradients.
        max_norm: the largest total norm allowed (a number >= 0 or a traced scalar).
        norm_type: :math:`p` of the p-norm; ``float('inf')`` or ``'inf'`` for the max-norm.
            Default: 2.0.
        error_if_nonfinite: raise ``RuntimeError`` (torch's message) when the total norm is
            nan or inf. Needs concrete gradients (eager code): under ``jit``, ``vmap`` or
            ``grad`` the norm has no value yet and compiled code cannot raise, so ``True``
            raises a ``TypeError`` at trace time saying so; there, pass ``False`` and check
            the returned norm after the jitted call (or skip the step:
            ``make_train_step(skip_nonfinite=True)``).

    Returns:
        ``(clipped_grads, total_norm)``: the scaled gradients and the total norm *before*
        clipping (torch's return value).

    Example::

        >>> from fnlearn.optim import clip_grad_norm
        >>> import jax.numpy as jnp
        >>> clipped, norm = clip_grad_norm({"w": jnp.array([3.0, 4.0])}, max_norm=1.0)
        >>> float(norm), [round(float(x), 5) for x in clipped["w"]]
        (5.0, [0.6, 0.8])

    .. warning::
       ``optax.clip_by_global_norm(max_norm)`` is L2 only and computes
       ``g / n * max_norm`` only when ``n >= max_norm`` (no ``1e-6``): its clipped gradients
       differ by a relative ~``1e-6 / n`` when clipping is active, and for ``max_norm = 0``
       with zero gradients it returns nan (0/0) where torch returns 0. For
       ``norm_type = inf`` or other p there is no optax transformation
       (``optax.tree.norm(tree, ord=...)`` computes the same total norm).
    """
    check_nonnegative(max_norm, "max_norm")
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    return clip_grads_with_norm(grads, max_norm, total), total


def clip_grad_value(grads: Params, clip_value: ArrayLike) -> Params:
    r"""JAX implementation of :func:`torch.nn.utils.clip_grad_value_`, as a pure function.

    .. math::
        g \leftarrow \operatorname{clamp}(g, -\texttt{clip\_value}, \texttt{clip\_value})
        \quad \text{elementwise; nan stays nan}

    Args:
        grads: a pytree of gradients.
        clip_value: the bound (a number >= 0 or a traced scalar; torch does not check the
            sign, fnlearn rejects a negative number).

    Returns:
        The clamped gradients, with ``grads``' structure and dtypes.

    Raises:
        NotImplementedError: a complex leaf (torch's ``clamp`` rejects complex tensors).

    Example::

        >>> from fnlearn.optim import clip_grad_value
        >>> import jax.numpy as jnp
        >>> clip_grad_value({"w": jnp.array([-3.0, 0.5, 2.0])}, 1.0)["w"]
        Array([-1. ,  0.5,  1. ], dtype=float32)

    optax equivalent (exact): ``optax.clip(clip_value)``.
    """
    check_nonnegative(clip_value, "clip_value")
    reject_complex(grads, "clip_grad_value", "grads",
                   "clamp is not supported for complex types (torch raises the same); clip by "
                   "norm (clip_grad_norm) instead", NotImplementedError)

    def clamp(g: Array) -> Array:
        v = jnp.asarray(clip_value).astype(g.dtype)
        return jnp.clip(g, -v, v)

    return jax.tree.map(clamp, grads)


class ClipGradNormState(NamedTuple):
    """State of :func:`clip_grad_norm_transform`.

    ``total_norm``: the pre-clipping total norm of the gradients of the last update (0 before
    the first), i.e. what torch's ``clip_grad_norm_`` returns; read it for logging.
    """

    total_norm: Array


def clip_grad_norm_transform(
    max_norm: ArrayLike, norm_type: float | str = 2.0, error_if_nonfinite: bool = False
) -> GradientTransformation:
    r""":func:`clip_grad_norm` as a transformation for ``optax.chain``.

    ``optax.chain(clip_grad_norm_transform(1.0), adam(1e-3))`` is torch's
    ``clip_grad_norm_(model.parameters(), 1.0); optimizer.step()``. Place it first: it
    clips the gradients it receives. The arguments are :func:`clip_grad_norm`'s; ``max_norm``
    may be a traced value, ``norm_type`` must be static: under ``optax.inject_hyperparams``
    pass ``static_args=('norm_type',)``.

    Returns:
        A :class:`GradientTransformation` whose state :class:`ClipGradNormState` keeps the
        last pre-clipping total norm.

    Example::

        >>> import jax.numpy as jnp, optax
        >>> from fnlearn.optim import clip_grad_norm_transform, sgd
        >>> opt = optax.chain(clip_grad_norm_transform(1.0), sgd(lr=0.1))
        >>> params = {"w": jnp.zeros(2)}
        >>> updates, state = opt.update({"w": jnp.array([3.0, 4.0])}, opt.init(params), params)
        >>> float(state[0].total_norm), [round(float(u), 5) for u in updates["w"]]
        (5.0, [-0.06, -0.08])
    """
    check_nonnegative(max_norm, "max_norm")
    _norm_order(norm_type)

    def init(params: Params) -> ClipGradNormState:
        return ClipGradNormState(total_norm=jnp.zeros([], scalar_dtype(params)))

    def update(
        updates: Params, state: ClipGradNormState, params: Params | None = None
    ) -> tuple[Params, ClipGradNormState]:
        del params
        clipped, total = clip_grad_norm(updates, max_norm, norm_type, error_if_nonfinite)
        return clipped, ClipGradNormState(total.astype(state.total_norm.dtype))

    return GradientTransformation(init, update)


def clip_grad_value_transform(clip_value: ArrayLike) -> GradientTransformation:
    r""":func:`clip_grad_value` as a transformation for ``optax.chain`` (stateless).

    ``optax.chain(clip_grad_value_transform(0.5), sgd(0.1))`` is torch's
    ``clip_grad_value_(model.parameters(), 0.5); optimizer.step()``; identical to
    ``optax.clip(0.5)``.

    Example::

        >>> from fnlearn.optim import clip_grad_value_transform
        >>> import jax.numpy as jnp
        >>> tx = clip_grad_value_transform(1.0)
        >>> tx.update({"w": jnp.array([-3.0, 2.0])}, tx.init(None))[0]["w"]
        Array([-1.,  1.], dtype=float32)
    """
    check_nonnegative(clip_value, "clip_value")

    def init(params: Params) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update(
        updates: Params, state: optax.EmptyState, params: Params | None = None
    ) -> tuple[Params, Any]:
        del params
        return clip_grad_value(updates, clip_value), state

    return GradientTransformation(init, update)
