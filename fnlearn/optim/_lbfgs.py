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
jitted call. :func:`fnlearn.train.make_train_step` runs the same iterations compiled
(:func:`train_update`): a ``lax.while_loop`` over the evaluations, the history kept in
fixed-shape arrays (:class:`LBFGSArrays`), so the step also runs on a device mesh;
:func:`as_state` turns those back into the host-driven state (``step`` and torch's
``state_dict`` continue from it).
"""

from __future__ import annotations

import dataclasses
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
class _Options:
    """The hyperparameters of one :func:`lbfgs` (what :func:`train_update` reads)."""

    lr: Any
    max_iter: int
    max_eval: int
    tolerance_grad: float
    tolerance_change: float
    history_size: int
    line_search_fn: str | None


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
        return _step(options, evaluator, loss_fn, params,
                     as_state(state))  # a compiled step's LBFGSArrays continue here too

    step.options = options
    return LBFGS(init, step)


def options(optimizer: Any) -> _Options | None:
    """The hyperparameters of an :func:`lbfgs` optimizer; ``None`` for any other object."""
    if isinstance(optimizer, LBFGS):
        return getattr(optimizer.step, "options", None)
    return None


def as_arrays(opts: _Options, state: LBFGSState | LBFGSArrays, flat: Array) -> LBFGSArrays:
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
    scalar = lambda v: np.asarray(v)[()]  # noqa: E731 (the host loop's NumPy scalars)
    if n_iter == 0:
        return LBFGSState(int(state.func_evals), 0, None, None, (), (), (), None, None, None)
    return LBFGSState(
        int(state.func_evals), n_iter, state.d, scalar(state.t),
        tuple(state.old_dirs[i] for i in range(count)),
        tuple(state.old_stps[i] for i in range(count)), tuple(ro[i] for i in range(count)),
        scalar(state.H_diag), state.prev_flat_grad, float(state.prev_loss))


def train_update(opts: _Options, value_and_grad: Callable[[Array], tuple[Array, Array]],
                 x: Array, state: LBFGSArrays, loss: Array, g: Array
                 ) -> tuple[Array, LBFGSArrays, Array]:
    """One ``step`` compiled, from the loss and flat gradient ``g`` at ``x`` (the closure's
    first evaluation): ``value_and_grad(x) -> (loss, flat gradient)`` evaluated in a
    ``lax.while_loop`` with the host loop's iterations and stopping rules. Returns the new
    ``x`` and state (with ``"strong_wolfe"``, the line search compiled too), and whether every
    loss and gradient the iterations took (the first one and each step's) was finite."""
    dt = x.dtype
    m = opts.history_size
    tol_grad, tol_change = opts.tolerance_grad, opts.tolerance_change
    lr = jnp.asarray(opts.lr, dt)
    loss, g = _cast((loss, g), dt)

    def body(c: dict) -> dict:
        c = dict(c)
        n_iter, n_total = c["n_iter"] + 1, c["n_total"] + 1
        first = n_total == 1
        g, d, t = c["g"], c["d"], c["t"]
        # a new (s, y) pair when the curvature is positive; the oldest dropped when full
        y, s = g - c["prev_g"], d * t
        ys = jnp.dot(y, s)
        keep = jnp.logical_not(first) & (ys > 1e-10)
        full = c["count"] == m
        at = jnp.where(full, m - 1, c["count"])

        def push(rows: Array, row: Array) -> Array:
            pushed = jnp.where(full, jnp.roll(rows, -1, axis=0), rows).at[at].set(row)
            return jnp.where(keep, pushed, rows)

        dirs, stps, ro = push(c["dirs"], y), push(c["stps"], s), push(c["ro"], 1.0 / ys)
        count = jnp.where(first, 0, jnp.where(keep, jnp.minimum(c["count"] + 1, m),
                                              c["count"]))
        H = jnp.where(first, jnp.ones((), dt),
                      jnp.where(keep, ys / jnp.dot(y, y), c["H"]))

        def backward(i: Array, carry: tuple) -> tuple:
            q, al = carry
            j = count - 1 - i
            a = jnp.dot(stps[j], q) * ro[j]
            return q - a * dirs[j], al.at[j].set(a)

        q, al = jax.lax.fori_loop(0, count, backward, (-g, jnp.zeros(m, dt)))

        def forward(i: Array, r: Array) -> Array:
            be = jnp.dot(dirs[i], r) * ro[i]
            return r + (al[i] - be) * stps[i]

        d = jnp.where(first, -g, jax.lax.fori_loop(0, count, forward, q * H))
        prev_g, prev_loss = g, c["loss"]
        t = jnp.where(first, jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))) * lr, lr)
        gtd = jnp.dot(g, d)
        descent = gtd <= -tol_change
        if opts.line_search_fn is None:
            evaluate = descent & (n_iter != opts.max_iter)
            loss_new, g_new = jax.lax.cond(
                evaluate, lambda: _cast(value_and_grad(c["x"] + t * d), dt),
                lambda: (c["loss"], g))
            opt_cond = evaluate & (jnp.max(jnp.abs(g_new)) <= tol_grad)
            evals = evaluate.astype(jnp.int32)
        else:
            def search() -> tuple:
                return _strong_wolfe_compiled(
                    lambda a: _cast(value_and_grad(a), dt), c["x"], t, d, c["loss"], g, gtd,
                    tolerance_change=tol_change, max_ls=opts.max_eval - c["current"])

            loss_new, g_new, t, evals = jax.lax.cond(
                descent, search, lambda: (c["loss"], g, t, jnp.zeros((), jnp.int32)))
            opt_cond = descent & (jnp.max(jnp.abs(g_new)) <= tol_grad)
        x = jnp.where(descent, c["x"] + t * d, c["x"])
        current = c["current"] + evals
        done = (jnp.logical_not(descent) | (n_iter == opts.max_iter)
                | (current >= opts.max_eval) | opt_cond
                | (jnp.max(jnp.abs(d * t)) <= tol_change)
                | (jnp.abs(loss_new - prev_loss) < tol_change))
        c.update(x=x, loss=loss_new, g=g_new, d=d, t=t, dirs=dirs, stps=stps, ro=ro,
                 count=count, H=H, prev_g=prev_g, prev_loss=prev_loss, n_iter=n_iter,
                 n_total=n_total, current=current, func_evals=c["func_evals"] + evals,
                 done=done, finite=c["finite"] & _finite(loss_new, g_new))
        return c

    start = {"x": x, "loss": loss, "g": g, "d": state.d, "t": state.t, "dirs": state.old_dirs,
             "stps": state.old_stps, "ro": state.ro, "count": state.count, "H": state.H_diag,
             "prev_g": state.prev_flat_grad, "prev_loss": state.prev_loss,
             "n_iter": jnp.zeros((), jnp.int32), "n_total": state.n_iter,
             "current": jnp.ones((), jnp.int32), "func_evals": state.func_evals + 1,
             "done": jnp.max(jnp.abs(g)) <= tol_grad, "finite": _finite(loss, g)}
    c = jax.lax.while_loop(lambda c: jnp.logical_not(c["done"]), body, start)
    new = LBFGSArrays(c["func_evals"], c["n_total"], c["d"], c["t"], c["dirs"], c["stps"],
                      c["ro"], c["count"], c["H"], c["prev_g"], c["prev_loss"])
    return c["x"], new, c["finite"]


def _finite(loss: Array, g: Array) -> Array:
    return jnp.isfinite(loss) & jnp.all(jnp.isfinite(g))


def _cubic_compiled(x1, f1, g1, x2, f2, g2, bounds=None):
    """:func:`_cubic_interpolate` on traced scalars."""
    lo, hi = bounds if bounds is not None else (jnp.minimum(x1, x2), jnp.maximum(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    d2 = jnp.sqrt(jnp.maximum(d2_square, 0))
    min_pos = jnp.where(x1 <= x2, x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2)),
                        x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2)))
    return jnp.where(d2_square >= 0, jnp.minimum(jnp.maximum(min_pos, lo), hi), (lo + hi) / 2)


def _strong_wolfe_compiled(value_and_grad, x, t, d, f, g, gtd, c1=1e-4, c2=0.9,
                           tolerance_change=1e-9, max_ls=25):
    """:func:`_strong_wolfe` as two ``lax.while_loop``s: the bracket is two slots (a step
    found at once fills both with it), the same branches taken as ``jnp.where``s, every
    evaluation under a ``lax.cond`` so only the host loop's evaluations run."""
    dt = x.dtype
    d_norm = jnp.max(jnp.abs(d))

    def evaluate(step):
        value, grad = value_and_grad(x + step * d)
        return value, grad, jnp.dot(grad, d)

    def pair(a, b):
        return jnp.stack([a, b])

    f_new, g_new, gtd_new = evaluate(t)
    zero = jnp.zeros((), dt)
    b = {"t": pair(zero, t), "f": pair(f, f_new), "g": pair(g, g_new),
         "gtd": pair(gtd, gtd_new)}
    c = {"t": t, "f_new": f_new, "g_new": g_new, "gtd_new": gtd_new, "t_prev": zero,
         "f_prev": f, "g_prev": g, "gtd_prev": gtd, "ls_iter": jnp.zeros((), jnp.int32),
         "evals": jnp.ones((), jnp.int32), "stop": jnp.asarray(False),
         "done": jnp.asarray(False), "b": b}

    def bracketing(c):
        c = dict(c)
        t, f_new, g_new, gtd_new = c["t"], c["f_new"], c["g_new"], c["gtd_new"]
        armijo = (f_new > f + c1 * t * gtd) | ((c["ls_iter"] > 1) & (f_new >= c["f_prev"]))
        wolfe = jnp.logical_not(armijo) & (jnp.abs(gtd_new) <= -c2 * gtd)
        upward = jnp.logical_not(armijo | wolfe) & (gtd_new >= 0)
        around = {"t": pair(c["t_prev"], t), "f": pair(c["f_prev"], f_new),
                  "g": pair(c["g_prev"], g_new), "gtd": pair(c["gtd_prev"], gtd_new)}
        at = {"t": pair(t, t), "f": pair(f_new, f_new), "g": pair(g_new, g_new),
              "gtd": pair(gtd_new, gtd_new)}
        c["b"] = jax.tree.map(lambda a, w, old: jnp.where(armijo | upward, a,
                                                          jnp.where(wolfe, w, old)),
                              around, at, c["b"])
        stop = armijo | wolfe | upward

        def extrapolate():
            t_next = _cubic_compiled(c["t_prev"], c["f_prev"], c["gtd_prev"], t, f_new,
                                     gtd_new, bounds=(t + 0.01 * (t - c["t_prev"]), t * 10))
            return (t_next, *evaluate(t_next))

        t_next, f_next, g_next, gtd_next = jax.lax.cond(
            stop, lambda: (t, f_new, g_new, gtd_new), extrapolate)
        moved = jnp.logical_not(stop)
        keep = lambda new, old: jnp.where(moved, new, old)  # noqa: E731
        c.update(t=t_next, f_new=f_next, g_new=g_next, gtd_new=gtd_next,
                 t_prev=keep(t, c["t_prev"]), f_prev=keep(f_new, c["f_prev"]),
                 g_prev=keep(g_new, c["g_prev"]), gtd_prev=keep(gtd_new, c["gtd_prev"]),
                 ls_iter=c["ls_iter"] + moved.astype(jnp.int32),
                 evals=c["evals"] + moved.astype(jnp.int32), stop=stop,
                 done=wolfe)
        return c

    c = jax.lax.while_loop(lambda c: (c["ls_iter"] < max_ls) & jnp.logical_not(c["stop"]),
                           bracketing, c)
    exhausted = c["ls_iter"] == max_ls
    last = {"t": pair(zero, c["t"]), "f": pair(f, c["f_new"]), "g": pair(g, c["g_new"]),
            "gtd": c["b"]["gtd"]}
    b = jax.tree.map(lambda a, old: jnp.where(exhausted, a, old), last, c["b"])
    low = jnp.where(b["f"][0] <= b["f"][1], 0, 1)
    z = {"b": b, "low": low, "insuf": jnp.asarray(False), "done": c["done"],
         "ls_iter": c["ls_iter"], "evals": c["evals"]}

    def zooming(z):
        z = dict(z)
        b, low = z["b"], z["low"]
        high = 1 - low
        lo_t, hi_t = jnp.min(b["t"]), jnp.max(b["t"])
        t = _cubic_compiled(b["t"][0], b["f"][0], b["gtd"][0], b["t"][1], b["f"][1],
                            b["gtd"][1])
        eps = 0.1 * (hi_t - lo_t)
        near = jnp.minimum(hi_t - t, t - lo_t) < eps
        outside = z["insuf"] | (t >= hi_t) | (t <= lo_t)
        moved_in = jnp.where(jnp.abs(t - hi_t) < jnp.abs(t - lo_t), hi_t - eps, lo_t + eps)
        t = jnp.where(near & outside, moved_in, t)
        insuf = near & jnp.logical_not(outside)
        f_new, g_new, gtd_new = evaluate(t)
        new = {"t": t, "f": f_new, "g": g_new, "gtd": gtd_new}
        worse = (f_new > f + c1 * t * gtd) | (f_new >= b["f"][low])
        wolfe = jnp.logical_not(worse) & (jnp.abs(gtd_new) <= -c2 * gtd)
        flip = (jnp.logical_not(worse | wolfe)
                & (gtd_new * (b["t"][high] - b["t"][low]) >= 0))

        def set_at(arrays, i, values):
            return jax.tree.map(lambda a, v: a.at[i].set(v), arrays, values)

        lows = jax.tree.map(lambda a: a[low], b)
        if_worse = set_at(b, high, new)
        if_better = set_at(jax.tree.map(lambda a, fl: jnp.where(flip, fl, a), b,
                                        set_at(b, high, lows)), low, new)
        b = jax.tree.map(lambda w, o: jnp.where(worse, w, o), if_worse, if_better)
        z.update(b=b, low=jnp.where(worse, jnp.where(b["f"][0] <= b["f"][1], 0, 1), low),
                 insuf=insuf, done=wolfe, ls_iter=z["ls_iter"] + 1, evals=z["evals"] + 1)
        return z

    def zoom_on(z):
        width = jnp.abs(z["b"]["t"][1] - z["b"]["t"][0]) * d_norm
        return jnp.logical_not(z["done"]) & (z["ls_iter"] < max_ls) & (width >= tolerance_change)

    z = jax.lax.while_loop(zoom_on, zooming, z)
    low = z["low"]
    return z["b"]["f"][low], z["b"]["g"][low], z["b"]["t"][low], z["evals"]


def _cast(out: tuple[Array, Array], dt: Any) -> tuple[Array, Array]:
    return out[0].astype(dt), out[1].astype(dt)


def _step(options: _Options, evaluator: Callable, loss_fn: Callable[[Params], Array],
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
