r"""L-BFGS with an optional strong-Wolfe line search (torch.optim.LBFGS).

One ``step`` is torch's ``optimizer.step(closure)``: up to ``max_iter`` quasi-Newton
iterations on the flattened parameters :math:`x`, each

.. math::
   d_k = -H_k g_k \ \text{(two-loop recursion over the last } m \text{ pairs }
   (s_i, y_i),\ H_0 = \tfrac{s^\top y}{y^\top y} I), \qquad x_{k+1} = x_k + t_k d_k

with :math:`t_k = \gamma` (the first iteration ever: :math:`\min(1, 1/\|g\|_1)\,\gamma`), or
the step a strong-Wolfe line search finds (cubic interpolation, :math:`c_1 = 10^{-4}`,
:math:`c_2 = 0.9`); a pair is kept only when :math:`s^\top y > 10^{-10}`. The iterations stop
early on :math:`\|g\|_\infty \le` ``tolerance_grad``, :math:`g^\top d > -` ``tolerance_change``,
a step or loss change below ``tolerance_change``, or ``max_eval`` loss evaluations.

Like torch's, ``step`` is driven from the host: its stopping rules read the loss and the
gradient after every evaluation, and every evaluation of the loss and its gradient is one
jitted call. This module holds the public constructor and that host-driven step (its line
search: ``_lbfgs_line_search.py``). :func:`fnlearn.train.make_train_step` runs the same
iterations compiled (``train_update``, ``_lbfgs_compiled.py``): a ``lax.while_loop`` over
the evaluations, the history kept in fixed-shape arrays (:class:`LBFGSArrays`), so the step
also runs on a device mesh. Both states, the options and the conversions between the states
(``as_arrays``, ``as_state``: ``step`` and torch's ``state_dict`` continue from a compiled
state) are in ``_lbfgs_state.py``; their names are importable from here too, where
:mod:`fnlearn.train` and the tests read them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .._typing import Array, Params
from ._base import optimizer_factory, reject_complex
from ._lbfgs_compiled import train_update as train_update
from ._lbfgs_line_search import strong_wolfe
from ._lbfgs_state import LBFGSArrays as LBFGSArrays
from ._lbfgs_state import LBFGSOptions, LBFGSState, as_state, host_scalar
from ._lbfgs_state import as_arrays as as_arrays


class LBFGS(NamedTuple):
    """What :func:`lbfgs` returns: ``init(params)`` and
    ``step(loss_fn, params, state) -> (loss, params, state)``."""

    init: Callable[[Params], LBFGSState]
    step: Callable[[Callable[[Params], Array], Params, LBFGSState],
                   tuple[Array, Params, LBFGSState]]


@optimizer_factory
def lbfgs(
    lr: float = 1,
    max_iter: int = 20,
    max_eval: int | None = None,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    history_size: int = 100,
    line_search_fn: str | None = None,
) -> LBFGS:
    r"""JAX implementation of :class:`torch.optim.LBFGS`.

    ``step(loss_fn, params, state)`` is torch's ``optimizer.step(closure)`` with
    ``closure = loss_fn(params)`` (``loss_fn`` returns a scalar; its gradient is taken with
    ``jax.value_and_grad``): it returns the loss at the ``params`` passed in (torch returns
    the closure's first value), the new params and the new state. Its jitted value-and-grad is
    cached per ``loss_fn`` object: pass the same function every step (a new ``lambda`` each
    step compiles again). ``state`` may also be the :class:`LBFGSArrays` a compiled step
    (:func:`fnlearn.train.make_train_step`) returned: ``step`` continues from it and returns
    an :class:`LBFGSState`.

    Args:
        lr: :math:`\gamma`, the step length (with a line search: its first trial).
        max_iter: iterations per ``step``.
        max_eval: loss evaluations per ``step`` (default ``max_iter * 5 // 4``).
        tolerance_grad: stop when :math:`\|g\|_\infty` is at most this.
        tolerance_change: stop when the step, the loss change or :math:`-g^\top d` is below
            this.
        history_size: :math:`m`, the number of :math:`(s, y)` pairs kept.
        line_search_fn: ``None`` or ``"strong_wolfe"``.

    Returns:
        An :class:`LBFGS` ``(init, step)``.

    Raises:
        ValueError: a negative ``lr`` (torch's message) or an unknown ``line_search_fn``.
        TypeError: complex parameters (not supported here; torch views them as real).

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import lbfgs
        >>> opt = lbfgs(line_search_fn="strong_wolfe")
        >>> params = {"x": jnp.array([3.0, -2.0])}
        >>> loss_fn = lambda p: jnp.sum((p["x"] - 1.0) ** 2)
        >>> loss, params, state = opt.step(loss_fn, params, opt.init(params))
        >>> [round(float(v), 4) for v in params["x"]]
        [1.0, 1.0]

    .. note::
       ``optax.lbfgs`` takes one quasi-Newton iteration per ``update`` (with its own zoom
       line search, ``optax.scale_by_zoom_linesearch``), where torch's ``step`` runs up to
       ``max_iter`` of them with its own stopping rules; its iterates are not torch's.
       float32: L-BFGS amplifies rounding, so float32 runs of two implementations drift
       apart (torch's own float32 run is up to 8e-3 from its float64 run on a 4-D
       Rosenbrock, tests/optim/test_lbfgs.py); float64 runs agree with torch's step by step.
    """
    options = LBFGSOptions.of(lr, max_iter, max_eval, tolerance_grad, tolerance_change,
                              history_size, line_search_fn)

    def init(params: Params) -> LBFGSState:
        reject_complex(params, "lbfgs", "params", "complex parameters are not supported")
        return LBFGSState(0, 0, None, None, (), (), (), None, None, None)

    @functools.lru_cache(maxsize=8)
    def evaluator(loss_fn: Callable, unravel: Callable) -> Callable:
        """One jitted (loss, flat gradient) of the flat parameters, per loss_fn."""
        return jax.jit(jax.value_and_grad(lambda flat: loss_fn(unravel(flat))))

    def step(loss_fn: Callable[[Params], Array], params: Params, state: LBFGSState
             ) -> tuple[Array, Params, LBFGSState]:
        return _step(options, evaluator, loss_fn, params,
                     as_state(state))  # a compiled step's LBFGSArrays continue here too

    step.options = options
    return LBFGS(init, step)


def options(optimizer: Any) -> LBFGSOptions | None:
    """The hyperparameters of an :func:`lbfgs` optimizer; ``None`` for any other object."""
    if isinstance(optimizer, LBFGS):
        return getattr(optimizer.step, "options", None)
    return None


def _step(options: LBFGSOptions, evaluator: Callable, loss_fn: Callable[[Params], Array],
          params: Params, state: LBFGSState) -> tuple[Array, Params, LBFGSState]:
    """One ``step`` of :func:`lbfgs`: torch's ``LBFGS.step`` on the flattened parameters."""
    lr, max_iter, max_eval = options.lr, options.max_iter, options.max_eval
    tolerance_grad, tolerance_change = options.tolerance_grad, options.tolerance_change
    history_size, line_search_fn = options.history_size, options.line_search_fn
    x, unravel = ravel_pytree(params)
    value_and_grad = evaluator(loss_fn, unravel)

    def closure(at):
        value, grad = value_and_grad(at)
        return value, grad

    orig_loss, flat_grad = closure(x)
    loss = float(orig_loss)
    current_evals = 1
    func_evals, n_total = state.func_evals + 1, state.n_iter
    if host_scalar(jnp.max(jnp.abs(flat_grad))) <= tolerance_grad:
        return orig_loss, params, state._replace(func_evals=func_evals)
    d, t, H_diag = state.d, state.t, state.H_diag
    old_dirs, old_stps, ro = list(state.old_dirs), list(state.old_stps), list(state.ro)
    prev_flat_grad, prev_loss = state.prev_flat_grad, state.prev_loss
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        n_total += 1
        if n_total == 1:
            d = -flat_grad
            old_dirs, old_stps, ro, H_diag = [], [], [], 1
        else:
            H_diag = _remember(flat_grad - prev_flat_grad, d * t, old_dirs, old_stps, ro, H_diag,
                               history_size)
            d = _two_loop(flat_grad, old_dirs, old_stps, ro, H_diag)
        prev_flat_grad, prev_loss = flat_grad, loss
        if n_total == 1:
            inv = 1.0 / host_scalar(jnp.sum(jnp.abs(flat_grad)))
            t = min(1.0, inv) * lr
        else:
            t = lr
        gtd = host_scalar(jnp.dot(flat_grad, d))
        if gtd > -tolerance_change:
            break
        ls_func_evals = 0
        if line_search_fn is not None:
            loss, flat_grad, t, ls_func_evals = strong_wolfe(
                closure, x, t, d, loss, flat_grad, gtd, tolerance_change=tolerance_change,
                max_ls=max_eval - current_evals)
            x = x + t * d
            opt_cond = host_scalar(jnp.max(jnp.abs(flat_grad))) <= tolerance_grad
        else:
            x = x + t * d
            opt_cond = False
            if n_iter != max_iter:
                value, flat_grad = closure(x)
                loss = float(value)
                opt_cond = host_scalar(jnp.max(jnp.abs(flat_grad))) <= tolerance_grad
                ls_func_evals = 1
        current_evals += ls_func_evals
        func_evals += ls_func_evals
        if n_iter == max_iter or current_evals >= max_eval or opt_cond:
            break
        if host_scalar(jnp.max(jnp.abs(d * t))) <= tolerance_change:
            break
        if abs(loss - prev_loss) < tolerance_change:
            break
    new_state = LBFGSState(func_evals, n_total, d, t, tuple(old_dirs), tuple(old_stps),
                           tuple(ro), H_diag, prev_flat_grad, prev_loss)
    return orig_loss, unravel(x), new_state


def _remember(y: Array, s: Array, old_dirs: list, old_stps: list, ro: list, H_diag: Any,
              history_size: int) -> Any:
    """Append the pair ``(s, y)`` to the history lists (in place, dropping the oldest past
    ``history_size``) when :math:`s^\top y > 10^{-10}`, and return the new ``H_diag``
    (:math:`s^\top y / y^\top y`; unchanged when the pair is skipped)."""
    ys = host_scalar(jnp.dot(y, s))
    if ys > 1e-10:
        if len(old_dirs) == history_size:
            old_dirs.pop(0)
            old_stps.pop(0)
            ro.pop(0)
        old_dirs.append(y)
        old_stps.append(s)
        ro.append(1.0 / ys)
        H_diag = ys / host_scalar(jnp.dot(y, y))
    return H_diag


def _two_loop(flat_grad: Array, old_dirs: list, old_stps: list, ro: list, H_diag: Any) -> Array:
    """The direction :math:`d = -H g` by the two-loop recursion over the history."""
    al = [None] * len(old_dirs)
    q = -flat_grad
    for i in range(len(old_dirs) - 1, -1, -1):
        al[i] = host_scalar(jnp.dot(old_stps[i], q)) * ro[i]
        q = q - al[i] * old_dirs[i]
    r = q * H_diag
    for i in range(len(old_dirs)):
        be_i = host_scalar(jnp.dot(old_dirs[i], r)) * ro[i]
        r = r + (al[i] - be_i) * old_stps[i]
    return r
