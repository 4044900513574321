"""Shared helpers of the optimizer oracle tests: a gradient sequence, a trajectory, rel_disp."""

from __future__ import annotations

import jax
import numpy as np

from fnlearn import optim


def problem(seed: int, steps: int = 50, shapes=((2, 3), (3,)), scale=(0.1, 10.0),
            dtype="float64"):
    """A start point (a list of arrays, one per shape) and its gradient sequence (a list of
    arrays stacked over ``steps``): per step and leaf a standard normal times a log-uniform
    factor in ``scale`` (torch-semantics.md section 2.6 uses 0.1..10)."""
    rng = np.random.default_rng(seed)
    params = [np.asarray(rng.standard_normal(s), dtype) for s in shapes]
    lo, hi = np.log(scale[0]), np.log(scale[1])
    grads = [
        np.asarray(rng.standard_normal((steps, *s))
                   * np.exp(rng.uniform(lo, hi, (steps,) + (1,) * len(s))), dtype)
        for s in shapes
    ]
    return params, grads


def trajectory(opt, params, grads):
    """Run ``opt`` over the stacked gradients (one jitted ``lax.scan``).

    Returns the parameters after every step and the updates of every step (each leaf stacked
    over steps), and the final state.
    """

    def step(carry, g):
        params, state = carry
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
        return (params, state), (params, updates)

    def run(params, grads):
        (_, state), (traj, updates) = jax.lax.scan(step, (params, opt.init(params)), grads)
        return traj, updates, state

    return jax.jit(run)(params, grads)


def rel_disp(params0, desired, actual) -> float:
    """max over steps and leaves of ``|D_a - D_d|_inf / |D_d|_inf`` with ``D = p_t - p_0``
    (torch-semantics.md section 2.6's measure): 0 for equal trajectories, about 1 when they
    differ at the scale of the displacement itself."""
    out = 0.0
    for p0, d, a in zip(jax.tree.leaves(params0), jax.tree.leaves(desired),
                        jax.tree.leaves(actual), strict=True):
        dd, da = np.asarray(d) - np.asarray(p0), np.asarray(a) - np.asarray(p0)
        out = max(out, float(np.max(np.abs(da - dd)) / np.max(np.abs(dd))))
    return out
