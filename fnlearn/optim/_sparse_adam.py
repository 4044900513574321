r"""SparseAdam: Adam on the entries a sparse gradient holds (torch.optim.SparseAdam).

The algorithm (torch's, with its symbols) is in :func:`sparse_adam`'s docstring:
``help(fnlearn.optim.sparse_adam)``.
"""

from __future__ import annotations

import math
import sys
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._typing import Array, Params, ScalarOrSchedule
from .._validate import check_range, hyperparameter, is_number
from ._base import GradientTransformation, check_adam_beta, optimizer_factory, pair, scalar_dtype
from ._schedule import resolve, resolve_one_minus_pow


class IndexedRows(NamedTuple):
    """A sparse gradient given as rows of a parameter: ``values[i]`` is a gradient
    contribution to row ``indices[i]`` of the parameter's first axis.

    ``indices`` is an integer array of any shape ``S`` (e.g. the ``(batch, time)`` token ids
    of an embedding lookup) and ``values`` has shape ``S + param.shape[1:]``. Repeated rows
    are summed, as torch sums the repeated indices of an ``nn.Embedding(sparse=True)``
    gradient (``coalesce``). With ``rows = table[ids]``, the gradient with respect to
    ``rows`` is that gradient: ``IndexedRows(ids, grad_rows)``.
    """

    indices: Array
    values: Array


class SparseAdamState(NamedTuple):
    """State of :func:`sparse_adam`, named after torch's state keys: ``step`` (int32 scalar,
    counts updates), ``exp_avg`` (:math:`m`) and ``exp_avg_sq`` (:math:`v`), dense buffers
    of each parameter's shape and dtype."""

    step: Array
    exp_avg: Params
    exp_avg_sq: Params


@optimizer_factory
def sparse_adam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float | Array, float | Array] = (0.9, 0.999),
    eps: float | Array = 1e-8,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    r"""JAX implementation of :class:`torch.optim.SparseAdam`.

    Adam restricted to the entries present in a sparse gradient: only they update their
    moments and their parameters; every other entry (parameter, :math:`m`, :math:`v`) stays
    bit-identical. For the entries present :math:`P_t` (repeated indices summed first):

    .. math::
       \begin{aligned}
       &\textbf{for}\ t = 1, 2, \ldots \\
       &\quad g_t \leftarrow \text{the sparse gradient, summed over repeated indices}
          \quad (\textbf{if}\ \textit{maximize}:\ g_t \leftarrow -g_t) \\
       &\quad \textbf{for}\ i \in P_t: \\
       &\qquad m_{t,i} \leftarrow m_{t-1,i} + (1 - \beta_1)(g_{t,i} - m_{t-1,i}) \\
       &\qquad v_{t,i} \leftarrow v_{t-1,i} + (1 - \beta_2)(g_{t,i}^2 - v_{t-1,i}) \\
       &\qquad \theta_{t,i} \leftarrow \theta_{t-1,i} - \gamma
          \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}
          \cdot \frac{m_{t,i}}{\sqrt{v_{t,i}} + \epsilon}
       \end{aligned}

    Symbols: :math:`\gamma` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``,
    :math:`\epsilon` = ``eps``, :math:`m` = ``exp_avg``, :math:`v` = ``exp_avg_sq``,
    :math:`t` = ``step``. The bias corrections use the global step :math:`t` even for an
    entry seen for the first time (torch's approximation). An entry present with a zero
    value is updated (its moments decay), as in torch: presence, not the value, decides.

    Args:
        lr: learning rate, ``> 0`` (number, 0-d array or schedule ``step -> lr``).
        betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
        eps: added to :math:`\sqrt{v}`, ``> 0``.
        maximize: maximize the objective instead of minimizing it.

    Returns:
        A :class:`GradientTransformation` whose state is :class:`SparseAdamState`. Its
        ``update(grads, state, params=None)`` takes, for every parameter, either a
        :class:`jax.experimental.sparse.BCOO` of the parameter's shape (its sparse dimensions
        lead; trailing dense dimensions make whole rows present, as torch's hybrid sparse
        tensors do) or an :class:`IndexedRows`; the updates come back dense (zero where
        nothing changes), for :func:`~fnlearn.optim.apply_updates`. A dense array is refused
        with torch's message (torch's SparseAdam refuses dense gradients: use :func:`adam`).
        ``None`` (no gradient) leaves the parameter and its moments unchanged.

    Shape:
        the work per step is a scatter of the entries present into the moments (the
        updates tree is dense, as ``apply_updates`` expects). Under ``jit`` the number of
        entries (``BCOO.nse``, the shape of ``IndexedRows.indices``) is static; padding
        entries of a BCOO (out-of-range indices) are ignored.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from fnlearn.optim import IndexedRows, apply_updates, sparse_adam
        >>> table = jnp.zeros((5, 2))                      # an embedding table
        >>> ids = jnp.array([1, 3, 1])                     # the rows a batch looked up
        >>> opt = sparse_adam(lr=0.1)
        >>> state = opt.init(table)
        >>> g_rows = jax.grad(lambda rows: jnp.sum(rows * 2.0))(table[ids])
        >>> updates, state = opt.update(IndexedRows(ids, g_rows), state)
        >>> [round(x, 4) for x in apply_updates(table, updates)[:, 0].tolist()]
        [0.0, -0.1, 0.0, -0.1, 0.0]

    .. note::
       optax has no equivalent: ``optax.adam`` (also under ``optax.masked``) decays every
       entry's moments at every step, whether or not the entry had a gradient.

    References:
        Kingma and Ba, 2014. `Adam: A Method for Stochastic Optimization
        <https://arxiv.org/abs/1412.6980>`_.
    """
    lr = hyperparameter(lr, "lr", "sparse_adam")
    eps = hyperparameter(eps, "eps", "sparse_adam", schedule=False)
    beta1, beta2 = pair(betas, "betas", "sparse_adam", "(0.9, 0.999)")
    check_range(lr, "Invalid learning rate", lambda v: v > 0)
    check_range(eps, "Invalid epsilon value", lambda v: v > 0)
    check_adam_beta(beta1, 0)
    check_adam_beta(beta2, 1)
    if not isinstance(maximize, bool):
        raise TypeError(f"sparse_adam: maximize must be True or False, got {maximize!r}")

    def init(params: Params) -> SparseAdamState:
        for path, p in jax.tree_util.tree_leaves_with_path(params):
            if jnp.iscomplexobj(p):
                raise ValueError(f"sparse_adam: params{jax.tree_util.keystr(path)} is complex "
                                 f"({p.dtype}); SparseAdam does not support complex parameters "
                                 "(torch raises the same)")

        def zeros():
            return jax.tree.map(jnp.zeros_like, params)

        return SparseAdamState(jnp.zeros([], jnp.int32), zeros(), zeros())

    def update(grads: Params, state: SparseAdamState, params: Params | None = None):
        del params  # SparseAdam has no weight decay: the rule never reads the params
        dtype = scalar_dtype(state.exp_avg)
        t = (state.step + 1).astype(dtype)
        gamma = resolve(lr, state.step, dtype)
        step_size = (gamma * jnp.sqrt(resolve_one_minus_pow(beta2, t, state.step, dtype))
                     / resolve_one_minus_pow(beta1, t, state.step, dtype))
        one_minus = (_one_minus(beta1, dtype), _one_minus(beta2, dtype))
        epsilon = jnp.asarray(eps, dtype)
        structure = jax.tree.structure(state.exp_avg)
        leaves = structure.flatten_up_to(grads)
        out = [_leaf(g, m, v, step_size, one_minus, epsilon, maximize)
               for g, m, v in zip(leaves, jax.tree.leaves(state.exp_avg),
                                  jax.tree.leaves(state.exp_avg_sq), strict=True)]
        updates, m, v = ([structure.unflatten(x) for x in zip(*out, strict=True)]
                         if out else (grads, state.exp_avg, state.exp_avg_sq))
        return updates, SparseAdamState(state.step + 1, m, v)

    return GradientTransformation(init, update)


def _one_minus(beta: Any, dtype: np.dtype) -> Array:
    """``1 - beta`` (taken in double precision for a number, as torch's Python floats)."""
    if is_number(beta):
        return jnp.asarray(1 - beta, dtype)
    return 1 - jnp.asarray(beta, dtype)


def _is_bcoo(grad: Any) -> bool:
    """Whether ``grad`` is a ``jax.experimental.sparse.BCOO``, asked of the module only where it
    is loaded (a BCOO cannot exist before): importing it imports scipy.sparse, the larger part
    of ``import fnlearn``'s own time."""
    sparse = sys.modules.get("jax.experimental.sparse")
    return sparse is not None and isinstance(grad, sparse.BCOO)


def _rows(grad: Any, shape: tuple[int, ...]) -> tuple[Array, Array, int]:
    """``(row_ids, values, n_rows)``: the gradient as rows of the parameter reshaped to
    ``(n_rows, *dense_shape)``; out-of-range ids (BCOO padding) are ``>= n_rows``."""
    if _is_bcoo(grad):
        if tuple(grad.shape) != tuple(shape):
            raise ValueError(f"sparse_adam: a gradient of shape {tuple(grad.shape)} for a "
                             f"parameter of shape {tuple(shape)}")
        if grad.n_batch:
            raise ValueError("sparse_adam: batched BCOO gradients (n_batch > 0) are not "
                             "supported; give one BCOO per parameter")
        lead = shape[:grad.n_sparse]
        n_rows = math.prod(lead)
        index = grad.indices  # (nse, n_sparse)
        bound = jnp.asarray(lead, index.dtype)[None, :]
        in_range = jnp.all((index >= 0) & (index < bound), axis=-1)
        flat = jnp.ravel_multi_index(tuple(index.T), lead, mode="clip") if lead else \
            jnp.zeros(index.shape[:1], index.dtype)
        ids = jnp.where(in_range, flat, n_rows)
        return ids, grad.data, n_rows
    if isinstance(grad, IndexedRows):
        indices, values = jnp.asarray(grad.indices), jnp.asarray(grad.values)
        if not jnp.issubdtype(indices.dtype, jnp.integer):
            raise TypeError(f"sparse_adam: IndexedRows.indices must be integers, got "
                            f"{indices.dtype}")
        if not shape or values.shape != indices.shape + tuple(shape[1:]):
            raise ValueError(f"sparse_adam: IndexedRows values of shape {values.shape} for "
                             f"indices of shape {indices.shape} and a parameter of shape "
                             f"{tuple(shape)} (values need indices.shape + param.shape[1:])")
        ids = indices.reshape(-1)
        ids = jnp.where((ids >= 0) & (ids < shape[0]), ids, shape[0])
        return ids, values.reshape(-1, *shape[1:]), shape[0]
    raise TypeError("SparseAdam does not support dense gradients, please consider Adam "
                    "instead (fnlearn.optim.adam); give sparse_adam each gradient as a "
                    "jax.experimental.sparse.BCOO or fnlearn.optim.IndexedRows(indices, values)"
                    f", got {type(grad).__name__}")


def _leaf(grad, m, v, step_size, one_minus, epsilon, maximize):
    """One parameter's ``(update, m, v)``: the entries present, summed per entry, update."""
    if grad is None:
        return jnp.zeros_like(m), m, v
    ids, values, n_rows = _rows(grad, m.shape)
    dense = m.shape[len(m.shape) - (values.ndim - 1):] if values.ndim > 1 else ()
    rows_m, rows_v = m.reshape(n_rows, *dense), v.reshape(n_rows, *dense)
    # coalesce: one slot per distinct row present (ids past the end are padding)
    uniq, inverse = jnp.unique(ids, size=ids.shape[0], fill_value=n_rows, return_inverse=True)
    g = jnp.zeros((ids.shape[0], *dense), values.dtype).at[inverse.reshape(-1)].add(values)
    g = (-g if maximize else g).astype(m.dtype)
    dt = m.dtype
    m_old = rows_m.at[uniq].get(mode="fill", fill_value=0)
    v_old = rows_v.at[uniq].get(mode="fill", fill_value=0)
    m_new = m_old + (g - m_old) * one_minus[0].astype(dt)
    v_new = v_old + (g * g - v_old) * one_minus[1].astype(dt)
    u = -step_size.astype(dt) * (m_new / (jnp.sqrt(v_new) + epsilon.astype(dt)))
    scatter = {"mode": "drop"}  # the padding slots (row n_rows) are dropped
    update = jnp.zeros_like(rows_m).at[uniq].set(u, **scatter)
    return (update.reshape(m.shape), rows_m.at[uniq].set(m_new, **scatter).reshape(m.shape),
            rows_v.at[uniq].set(v_new, **scatter).reshape(v.shape))
