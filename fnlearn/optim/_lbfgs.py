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

Like torch's, the step is driven from the host: its stopping rules read the loss and the
gradient after every evaluation, so ``step`` is not itself jit-able; every evaluation of the
loss and its gradient is one jitted call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._typing import Array, Params
from .._validate import hyperparameter
from ._base import check_nonnegative, optimizer_factory, reject_complex


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
    step compiles again).

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
    lr = hyperparameter(lr, "lr", "lbfgs", schedule=False)
    check_nonnegative(lr, "learning rate")
    if line_search_fn not in (None, "strong_wolfe"):
        raise ValueError(f"lbfgs: line_search_fn must be None or 'strong_wolfe', got "
                         f"{line_search_fn!r} (torch: only 'strong_wolfe' is supported)")
    if max_eval is None:
        max_eval = max_iter * 5 // 4

    def init(params: Params) -> LBFGSState:
        reject_complex(params, "lbfgs", "params", "complex parameters are not supported")
        return LBFGSState(0, 0, None, None, (), (), (), None, None, None)

    @functools.lru_cache(maxsize=8)
    def evaluator(loss_fn: Callable, unravel: Callable) -> Callable:
        """One jitted (loss, flat gradient) of the flat parameters, per loss_fn."""
        return jax.jit(jax.value_and_grad(lambda flat: loss_fn(unravel(flat))))

    options = _Options(lr, max_iter, max_eval, tolerance_grad, tolerance_change, history_size,
                       line_search_fn)

    def step(loss_fn: Callable[[Params], Array], params: Params, state: LBFGSState
             ) -> tuple[Array, Params, LBFGSState]:
        return _step(options, evaluator, loss_fn, params, state)

    return LBFGS(init, step)


class _Options(NamedTuple):
    """:func:`lbfgs`'s arguments, checked."""

    lr: Any
    max_iter: int
    max_eval: int
    tolerance_grad: float
    tolerance_change: float
    history_size: int
    line_search_fn: str | None


def _step(options: _Options, evaluator: Callable, loss_fn: Callable[[Params], Array],
          params: Params, state: LBFGSState) -> tuple[Array, Params, LBFGSState]:
    """One ``step`` of :func:`lbfgs`: torch's ``LBFGS.step`` on the flattened parameters."""
    lr, max_iter, max_eval, tolerance_grad, tolerance_change, history_size, line_search_fn = (
        options)
    x, unravel = ravel_pytree(params)
    value_and_grad = evaluator(loss_fn, unravel)

    def closure(at):
        value, grad = value_and_grad(at)
        return value, grad

    orig_loss, flat_grad = closure(x)
    loss = float(orig_loss)
    current_evals = 1
    func_evals, n_total = state.func_evals + 1, state.n_iter
    if _scalar(jnp.max(jnp.abs(flat_grad))) <= tolerance_grad:
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
            inv = 1.0 / _scalar(jnp.sum(jnp.abs(flat_grad)))
            t = min(1.0, inv) * lr
        else:
            t = lr
        gtd = _scalar(jnp.dot(flat_grad, d))
        if gtd > -tolerance_change:
            break
        ls_func_evals = 0
        if line_search_fn is not None:
            loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                closure, x, t, d, loss, flat_grad, gtd, tolerance_change=tolerance_change,
                max_ls=max_eval - current_evals)
            x = x + t * d
            opt_cond = _scalar(jnp.max(jnp.abs(flat_grad))) <= tolerance_grad
        else:
            x = x + t * d
            opt_cond = False
            if n_iter != max_iter:
                value, flat_grad = closure(x)
                loss = float(value)
                opt_cond = _scalar(jnp.max(jnp.abs(flat_grad))) <= tolerance_grad
                ls_func_evals = 1
        current_evals += ls_func_evals
        func_evals += ls_func_evals
        if n_iter == max_iter or current_evals >= max_eval or opt_cond:
            break
        if _scalar(jnp.max(jnp.abs(d * t))) <= tolerance_change:
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
    ys = _scalar(jnp.dot(y, s))
    if ys > 1e-10:
        if len(old_dirs) == history_size:
            old_dirs.pop(0)
            old_stps.pop(0)
            ro.pop(0)
        old_dirs.append(y)
        old_stps.append(s)
        ro.append(1.0 / ys)
        H_diag = ys / _scalar(jnp.dot(y, y))
    return H_diag


def _two_loop(flat_grad: Array, old_dirs: list, old_stps: list, ro: list, H_diag: Any) -> Array:
    """The direction :math:`d = -H g` by the two-loop recursion over the history."""
    al = [None] * len(old_dirs)
    q = -flat_grad
    for i in range(len(old_dirs) - 1, -1, -1):
        al[i] = _scalar(jnp.dot(old_stps[i], q)) * ro[i]
        q = q - al[i] * old_dirs[i]
    r = q * H_diag
    for i in range(len(old_dirs)):
        be_i = _scalar(jnp.dot(old_dirs[i], r)) * ro[i]
        r = r + (al[i] - be_i) * old_stps[i]
    return r


def _scalar(x: Array) -> Any:
    """A 0-d result as a NumPy scalar of its dtype: torch keeps these as 0-d tensors, and
    NumPy's promotion (a Python float stays in the scalar's dtype) is torch's for them."""
    return np.asarray(x)[()]


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    """The minimizer of the cubic through two points with slopes, clamped to ``bounds``
    (default: the interval); the midpoint when the cubic has no minimum (torch's rule)."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, lo), hi)
    return (lo + hi) / 2.0


def _strong_wolfe(closure, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    """torch's ``_strong_wolfe``: bracket a step satisfying the strong Wolfe conditions, then
    zoom by cubic interpolation. Returns ``(loss, grad, t, evaluations)``."""
    d_norm = _scalar(jnp.max(jnp.abs(d)))

    def evaluate(step):
        value, grad = closure(x + step * d)
        return float(value), grad, _scalar(jnp.dot(grad, d))

    f_new, g_new, gtd_new = evaluate(t)
    ls_func_evals = 1
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    bracket = bracket_f = bracket_g = bracket_gtd = None
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new, gtd_new
        f_new, g_new, gtd_new = evaluate(t)
        ls_func_evals += 1
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) \
                    else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new, gtd_new = evaluate(t)
        ls_func_evals += 1
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new, gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new, gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals
