"""The L-BFGS ``step`` compiled, for :func:`fnlearn.train.make_train_step`.

The host-driven step (``_lbfgs.py``) reads the loss and gradient back after each evaluation to
decide what to do next; here those decisions are traced: one ``lax.while_loop`` over the
iterations, the history in the fixed-shape rows of :class:`LBFGSArrays`, each branch a
``jnp.where`` and each evaluation under a ``lax.cond`` so that only the evaluations the host
loop would make run. The same operations in the same order as the host step, so the two agree
to round-off and count the same ``func_evals`` and ``n_iter``; being one traced function, the
step also runs on a device mesh.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .._typing import Array
from ._lbfgs_state import LBFGSArrays, LBFGSOptions

#: ``evaluate(t) -> (loss, gradient, gradient . d)`` at ``x + t * d`` (a line search's view)
Evaluate = Callable[[Array], tuple[Array, Array, Array]]


def train_update(opts: LBFGSOptions, value_and_grad: Callable[[Array], tuple[Array, Array]],
                 x: Array, state: LBFGSArrays, loss: Array, g: Array
                 ) -> tuple[Array, LBFGSArrays, Array]:
    """One ``step`` compiled, from the loss and flat gradient ``g`` at ``x`` (the closure's
    first evaluation): ``value_and_grad(x) -> (loss, flat gradient)`` evaluated in a
    ``lax.while_loop`` with the host loop's iterations and stopping rules. Returns the new
    ``x`` and state (with ``"strong_wolfe"``, the line search compiled too), and whether every
    loss and gradient the iterations took (the first one and each step's) was finite."""
    dt = x.dtype
    tol_grad, tol_change = opts.tolerance_grad, opts.tolerance_change
    lr = jnp.asarray(opts.lr, dt)
    loss, g = _cast((loss, g), dt)

    def body(c: dict) -> dict:
        c = dict(c)
        n_iter, n_total = c["n_iter"] + 1, c["n_total"] + 1
        first = n_total == 1
        g = c["g"]
        dirs, stps, ro, count, H = _remember(c, first, opts.history_size, dt)
        d = _direction(first, g, dirs, stps, ro, count, H, opts.history_size, dt)
        prev_g, prev_loss = g, c["loss"]
        t = jnp.where(first, jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))) * lr, lr)
        gtd = jnp.dot(g, d)
        descent = gtd <= -tol_change
        loss_new, g_new, t, evals, opt_cond = _advance(opts, value_and_grad, c, n_iter, d, t,
                                                       gtd, descent, dt)
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


def _remember(c: dict, first: Array, m: int, dt: Any) -> tuple[Array, ...]:
    """The history after the last step (``c``'s ``d * t`` and gradient change): the pair
    ``(s, y)`` pushed when :math:`s^\\top y > 10^{-10}` (the oldest dropped when all ``m`` rows
    are full), and ``H_diag``; on the first iteration ever, an empty history and ``H_diag = 1``.
    Returns ``(dirs, stps, ro, count, H_diag)``."""
    g, d, t = c["g"], c["d"], c["t"]
    y, s = g - c["prev_g"], d * t
    ys = jnp.dot(y, s)
    keep = jnp.logical_not(first) & (ys > 1e-10)
    full = c["count"] == m
    at = jnp.where(full, m - 1, c["count"])

    def push(rows: Array, row: Array) -> Array:
        pushed = jnp.where(full, jnp.roll(rows, -1, axis=0), rows).at[at].set(row)
        return jnp.where(keep, pushed, rows)

    dirs, stps, ro = push(c["dirs"], y), push(c["stps"], s), push(c["ro"], 1.0 / ys)
    count = jnp.where(first, 0, jnp.where(keep, jnp.minimum(c["count"] + 1, m), c["count"]))
    H = jnp.where(first, jnp.ones((), dt), jnp.where(keep, ys / jnp.dot(y, y), c["H"]))
    return dirs, stps, ro, count, H


def _direction(first: Array, g: Array, dirs: Array, stps: Array, ro: Array, count: Array,
               H: Array, m: int, dt: Any) -> Array:
    """:math:`d = -H g` by the two-loop recursion over the first ``count`` rows of the
    history (:math:`-g` on the first iteration ever)."""

    def backward(i: Array, carry: tuple) -> tuple:
        q, al = carry
        j = count - 1 - i
        a = jnp.dot(stps[j], q) * ro[j]
        return q - a * dirs[j], al.at[j].set(a)

    q, al = jax.lax.fori_loop(0, count, backward, (-g, jnp.zeros(m, dt)))

    def forward(i: Array, r: Array) -> Array:
        be = jnp.dot(dirs[i], r) * ro[i]
        return r + (al[i] - be) * stps[i]

    return jnp.where(first, -g, jax.lax.fori_loop(0, count, forward, q * H))


def _advance(opts: LBFGSOptions, value_and_grad: Callable[[Array], tuple[Array, Array]],
             c: dict, n_iter: Array, d: Array, t: Array, gtd: Array, descent: Array, dt: Any
             ) -> tuple[Array, Array, Array, Array, Array]:
    """The loss and gradient after the step along ``d`` (when ``d`` is a descent direction):
    at ``x + t * d`` (none on the last iteration, as torch's), or where the strong-Wolfe
    search stops. Returns ``(loss, gradient, t, evaluations, gradient small enough)``."""
    g = c["g"]
    if opts.line_search_fn is None:
        evaluate = descent & (n_iter != opts.max_iter)
        loss_new, g_new = jax.lax.cond(
            evaluate, lambda: _cast(value_and_grad(c["x"] + t * d), dt),
            lambda: (c["loss"], g))
        opt_cond = evaluate & (jnp.max(jnp.abs(g_new)) <= opts.tolerance_grad)
        return loss_new, g_new, t, evaluate.astype(jnp.int32), opt_cond

    def search() -> tuple:
        return _strong_wolfe(
            lambda a: _cast(value_and_grad(a), dt), c["x"], t, d, c["loss"], g, gtd,
            tolerance_change=opts.tolerance_change, max_ls=opts.max_eval - c["current"])

    loss_new, g_new, t, evals = jax.lax.cond(
        descent, search, lambda: (c["loss"], g, t, jnp.zeros((), jnp.int32)))
    opt_cond = descent & (jnp.max(jnp.abs(g_new)) <= opts.tolerance_grad)
    return loss_new, g_new, t, evals, opt_cond


def _finite(loss: Array, g: Array) -> Array:
    return jnp.isfinite(loss) & jnp.all(jnp.isfinite(g))


def _cast(out: tuple[Array, Array], dt: Any) -> tuple[Array, Array]:
    return out[0].astype(dt), out[1].astype(dt)


def _strong_wolfe(value_and_grad: Callable[[Array], tuple[Array, Array]], x: Array, t: Array,
                  d: Array, f: Array, g: Array, gtd: Array, c1: float = 1e-4, c2: float = 0.9,
                  tolerance_change: float = 1e-9, max_ls: Array | int = 25
                  ) -> tuple[Array, Array, Array, Array]:
    """The host step's ``strong_wolfe`` (``_lbfgs_line_search.py``) traced: its bracketing
    loop and its zoom loop each a ``lax.while_loop`` (:func:`_bracket`, :func:`_zoom`), the
    bracket two slots (a step found at once fills both with it), the same branches taken as
    ``jnp.where``s, every evaluation under a ``lax.cond`` so only the host loop's evaluations
    run. Returns ``(loss, grad, t, evaluations)``."""
    d_norm = jnp.max(jnp.abs(d))

    def evaluate(step: Array) -> tuple[Array, Array, Array]:
        value, grad = value_and_grad(x + step * d)
        return value, grad, jnp.dot(grad, d)

    z = _bracket(evaluate, x.dtype, t, f, g, gtd, c1, c2, max_ls)
    z = _zoom(evaluate, z, f, gtd, c1, c2, d_norm, tolerance_change, max_ls)
    low = z["low"]
    return z["b"]["f"][low], z["b"]["g"][low], z["b"]["t"][low], z["evals"]


def _bracket(evaluate: Evaluate, dt: Any, t: Array, f: Array, g: Array, gtd: Array, c1: float,
             c2: float, max_ls: Array | int) -> dict:
    """The bracketing phase: from ``t``, extrapolate (cubic, within ``[t + 0.01 (t - t_prev),
    10 t]``) until a step breaks the sufficient decrease, meets the strong Wolfe conditions or
    the slope turns upward, or ``max_ls`` evaluations pass (then the bracket is ``[0, t]``).
    Returns the zoom's starting carry: the bracket ``b`` (``t``, ``f``, ``g``, ``gtd`` in two
    slots), its ``low`` slot, ``done`` (Wolfe met), ``ls_iter`` and ``evals``."""
    f_new, g_new, gtd_new = evaluate(t)
    zero = jnp.zeros((), dt)
    b = {"t": _pair(zero, t), "f": _pair(f, f_new), "g": _pair(g, g_new),
         "gtd": _pair(gtd, gtd_new)}
    c = {"t": t, "f_new": f_new, "g_new": g_new, "gtd_new": gtd_new, "t_prev": zero,
         "f_prev": f, "g_prev": g, "gtd_prev": gtd, "ls_iter": jnp.zeros((), jnp.int32),
         "evals": jnp.ones((), jnp.int32), "stop": jnp.asarray(False),
         "done": jnp.asarray(False), "b": b}
    c = jax.lax.while_loop(lambda c: (c["ls_iter"] < max_ls) & jnp.logical_not(c["stop"]),
                           functools.partial(_bracket_step, evaluate, f, gtd, c1, c2), c)
    exhausted = c["ls_iter"] == max_ls
    last = {"t": _pair(zero, c["t"]), "f": _pair(f, c["f_new"]), "g": _pair(g, c["g_new"]),
            "gtd": c["b"]["gtd"]}
    b = jax.tree.map(lambda a, old: jnp.where(exhausted, a, old), last, c["b"])
    low = jnp.where(b["f"][0] <= b["f"][1], 0, 1)
    return {"b": b, "low": low, "insuf": jnp.asarray(False), "done": c["done"],
            "ls_iter": c["ls_iter"], "evals": c["evals"]}


def _bracket_step(evaluate: Evaluate, f: Array, gtd: Array, c1: float, c2: float, c: dict
                  ) -> dict:
    """One pass of the bracketing loop: test the step ``c["t"]``; if it brackets or is
    accepted, record the bracket and stop, else extrapolate and evaluate the next step."""
    c = dict(c)
    t, f_new, g_new, gtd_new = c["t"], c["f_new"], c["g_new"], c["gtd_new"]
    armijo = (f_new > f + c1 * t * gtd) | ((c["ls_iter"] > 1) & (f_new >= c["f_prev"]))
    wolfe = jnp.logical_not(armijo) & (jnp.abs(gtd_new) <= -c2 * gtd)
    upward = jnp.logical_not(armijo | wolfe) & (gtd_new >= 0)
    around = {"t": _pair(c["t_prev"], t), "f": _pair(c["f_prev"], f_new),
              "g": _pair(c["g_prev"], g_new), "gtd": _pair(c["gtd_prev"], gtd_new)}
    at = {"t": _pair(t, t), "f": _pair(f_new, f_new), "g": _pair(g_new, g_new),
          "gtd": _pair(gtd_new, gtd_new)}
    c["b"] = jax.tree.map(lambda a, w, old: jnp.where(armijo | upward, a,
                                                      jnp.where(wolfe, w, old)),
                          around, at, c["b"])
    stop = armijo | wolfe | upward

    def extrapolate() -> tuple:
        t_next = _cubic(c["t_prev"], c["f_prev"], c["gtd_prev"], t, f_new, gtd_new,
                        bounds=(t + 0.01 * (t - c["t_prev"]), t * 10))
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


def _zoom(evaluate: Evaluate, z: dict, f: Array, gtd: Array, c1: float, c2: float,
          d_norm: Array, tolerance_change: float, max_ls: Array | int) -> dict:
    """The zoom phase: shrink the bracket by cubic interpolation until a step meets the
    strong Wolfe conditions, ``max_ls`` evaluations pass, or the bracket is narrower than
    ``tolerance_change`` (in the max-norm of ``t * d``). Returns the final carry."""

    def zoom_on(z: dict) -> Array:
        width = jnp.abs(z["b"]["t"][1] - z["b"]["t"][0]) * d_norm
        return jnp.logical_not(z["done"]) & (z["ls_iter"] < max_ls) & (width >= tolerance_change)

    return jax.lax.while_loop(zoom_on, functools.partial(_zoom_step, evaluate, f, gtd, c1, c2),
                              z)


def _zoom_step(evaluate: Evaluate, f: Array, gtd: Array, c1: float, c2: float, z: dict
               ) -> dict:
    """One pass of the zoom loop: the cubic's minimizer in the bracket (moved in from an end
    it comes too close to, torch's ``insuf_progress`` rule), evaluated, replaces the high end
    (no sufficient decrease) or the low end (flipping the ends first when the slope there
    points away from the high end)."""
    z = dict(z)
    b, low = z["b"], z["low"]
    high = 1 - low
    lo_t, hi_t = jnp.min(b["t"]), jnp.max(b["t"])
    t = _cubic(b["t"][0], b["f"][0], b["gtd"][0], b["t"][1], b["f"][1], b["gtd"][1])
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
    lows = jax.tree.map(lambda a: a[low], b)
    if_worse = _set_at(b, high, new)
    if_better = _set_at(jax.tree.map(lambda a, fl: jnp.where(flip, fl, a), b,
                                     _set_at(b, high, lows)), low, new)
    b = jax.tree.map(lambda w, o: jnp.where(worse, w, o), if_worse, if_better)
    z.update(b=b, low=jnp.where(worse, jnp.where(b["f"][0] <= b["f"][1], 0, 1), low),
             insuf=insuf, done=wolfe, ls_iter=z["ls_iter"] + 1, evals=z["evals"] + 1)
    return z


def _cubic(x1: Array, f1: Array, g1: Array, x2: Array, f2: Array, g2: Array,
           bounds: tuple[Array, Array] | None = None) -> Array:
    """The host step's ``cubic_interpolate`` (``_lbfgs_line_search.py``) on traced
    scalars."""
    lo, hi = bounds if bounds is not None else (jnp.minimum(x1, x2), jnp.maximum(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    d2 = jnp.sqrt(jnp.maximum(d2_square, 0))
    min_pos = jnp.where(x1 <= x2, x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2)),
                        x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2)))
    return jnp.where(d2_square >= 0, jnp.minimum(jnp.maximum(min_pos, lo), hi), (lo + hi) / 2)


def _pair(a: Array, b: Array) -> Array:
    return jnp.stack([a, b])


def _set_at(arrays: dict, i: Array, values: dict) -> dict:
    return jax.tree.map(lambda a, v: a.at[i].set(v), arrays, values)
