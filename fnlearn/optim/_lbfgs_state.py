"""What an L-BFGS step reads and carries: its checked hyperparameters (:class:`LBFGSOptions`)
and its state in two forms, torch's (:class:`LBFGSState`, variable-length history, for the
host-driven step) and fixed-shape arrays (:class:`LBFGSArrays`, for the compiled step), with
the conversions between them, so either step continues from the other's state."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from .._typing import Array
from .._validate import hyperparameter
from ._base import check_nonnegative


class LBFGSState(NamedTuple):
    """torch's LBFGS state (its keys), carried from one ``step`` to the next.

    ``old_dirs`` / ``old_stps`` / ``ro`` are tuples (oldest first) of at most
    ``history_size`` entries; ``d``, ``t``, ``H_diag``, ``prev_flat_grad`` and ``prev_loss``
    are ``None`` before the first step.
    """

    func_evals: int
    n_iter: int
    d: Array | None
    t: Any
    old_dirs: tuple[Array, ...]
    old_stps: tuple[Array, ...]
    ro: tuple[Array, ...]
    H_diag: Any
    prev_flat_grad: Array | None
    prev_loss: float | None


class LBFGSArrays(NamedTuple):
    """:class:`LBFGSState` in fixed shapes, as the compiled step of
    :func:`fnlearn.train.make_train_step` carries it (:func:`as_arrays` converts,
    :func:`as_state` converts back).

    ``old_dirs`` / ``old_stps`` are ``(history_size, n)`` and ``ro`` ``(history_size,)``:
    their first ``count`` rows hold the pairs, oldest first. Before the first step ``d`` and
    ``prev_flat_grad`` are zeros and ``n_iter`` is 0 (which is what the first iteration
    reads).
    """

    func_evals: Array
    n_iter: Array
    d: Array
    t: Array
    old_dirs: Array
    old_stps: Array
    ro: Array
    count: Array
    H_diag: Array
    prev_flat_grad: Array
    prev_loss: Array


@dataclasses.dataclass(frozen=True)
class LBFGSOptions:
    """The hyperparameters of one :func:`~fnlearn.optim.lbfgs`, checked, with ``max_eval``
    filled in: what both the host-driven and the compiled step read."""

    lr: Any
    max_iter: int
    max_eval: int
    tolerance_grad: float
    tolerance_change: float
    history_size: int
    line_search_fn: str | None

    @classmethod
    def of(cls, lr: Any, max_iter: int, max_eval: int | None, tolerance_grad: float,
           tolerance_change: float, history_size: int, line_search_fn: str | None
           ) -> LBFGSOptions:
        """The options of ``lbfgs(...)``'s arguments: ``lr`` a non-negative number (torch's
        message), ``line_search_fn`` ``None`` or ``"strong_wolfe"`` (else ``ValueError``),
        ``max_eval`` by default ``max_iter * 5 // 4`` (torch's)."""
        lr = hyperparameter(lr, "lr", "lbfgs", schedule=False)
        check_nonnegative(lr, "learning rate")
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"lbfgs: line_search_fn must be None or 'strong_wolfe', got "
                             f"{line_search_fn!r} (torch: only 'strong_wolfe' is supported)")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        return cls(lr, max_iter, max_eval, tolerance_grad, tolerance_change, history_size,
                   line_search_fn)


def as_arrays(opts: LBFGSOptions, state: LBFGSState | LBFGSArrays, flat: Array) -> LBFGSArrays:
    """``state`` as :class:`LBFGSArrays` for flat parameters like ``flat`` (unchanged if it
    already is one)."""
    if isinstance(state, LBFGSArrays):
        return state
    m, n, dt = opts.history_size, flat.shape[0], flat.dtype

    def rows(values: tuple) -> Array:
        out = jnp.zeros((m, n), dt)
        return out.at[:len(values)].set(jnp.stack(values)) if values else out

    def vector(v: Any) -> Array:
        return jnp.zeros(n, dt) if v is None else jnp.asarray(v, dt)

    def scalar(v: Any, default: float) -> Array:
        return jnp.asarray(default if v is None else v, dt)

    ro = jnp.zeros(m, dt).at[:len(state.ro)].set(jnp.asarray(state.ro, dt)) if state.ro \
        else jnp.zeros(m, dt)
    return LBFGSArrays(
        jnp.asarray(int(state.func_evals), jnp.int32), jnp.asarray(int(state.n_iter), jnp.int32),
        vector(state.d), scalar(state.t, 0.0), rows(state.old_dirs), rows(state.old_stps), ro,
        jnp.asarray(len(state.old_dirs), jnp.int32), scalar(state.H_diag, 1.0),
        vector(state.prev_flat_grad), scalar(state.prev_loss, 0.0))


def as_state(state: LBFGSState | LBFGSArrays) -> LBFGSState:
    """``state`` as the host-driven :class:`LBFGSState` (unchanged if it already is one): the
    ``count`` live pairs, oldest first (torch's list order), and ``None`` for the buffers
    before the first iteration, so ``step`` and :func:`fnlearn.interop.torch.optimizer_to_torch`
    continue from where the compiled step left off."""
    if not isinstance(state, LBFGSArrays):
        return state
    n_iter, count = int(state.n_iter), int(state.count)
    ro = np.asarray(state.ro)
    if n_iter == 0:
        return LBFGSState(int(state.func_evals), 0, None, None, (), (), (), None, None, None)
    return LBFGSState(
        int(state.func_evals), n_iter, state.d, host_scalar(state.t),
        tuple(state.old_dirs[i] for i in range(count)),
        tuple(state.old_stps[i] for i in range(count)), tuple(ro[i] for i in range(count)),
        host_scalar(state.H_diag), state.prev_flat_grad, float(state.prev_loss))


def host_scalar(x: Array) -> Any:
    """A 0-d result as a NumPy scalar of its dtype: torch keeps these as 0-d tensors, and
    NumPy's promotion (a Python float stays in the scalar's dtype) is torch's for them."""
    return np.asarray(x)[()]
