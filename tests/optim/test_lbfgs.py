"""lbfgs: torch's LBFGS against committed torch trajectories (reference/lbfgs.npz, written
by ``python -m tests.generate_reference lbfgs``): parameters and returned loss after
every step, and torch's ``func_evals`` / ``n_iter`` counters (float64; float32 by its
distance from the exact trajectory); bad input."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import optim
from tests._reference import TESTS, load
from tests._tiers import each_with_one, one_in
from tests.optim.lbfgs_cases import CONFIGS, PROBLEMS, STEPS, loss

TOL = {"float64": 1e-10}
REFERENCE = load(TESTS / "optim" / "reference" / "lbfgs.npz")


def run(problem: str, config: str, dtype: str):
    opt = optim.lbfgs(**CONFIGS[config])
    params = {k: jnp.asarray(v, dtype) for k, v in PROBLEMS[problem].items()}
    state = opt.init(params)
    rows: dict[str, list] = {k: [] for k in [*params, "loss", "func_evals", "n_iter"]}
    for _ in range(STEPS):
        value, params, state = opt.step(lambda p: loss(problem, p, jnp), params, state)
        rows["loss"].append(float(value))
        for k, p in params.items():
            assert p.dtype == np.dtype(dtype)
            rows[k].append(np.asarray(p))
        rows["func_evals"].append(state.func_evals)
        rows["n_iter"].append(state.n_iter)
    return {k: np.asarray(v) for k, v in rows.items()}


# each configuration on one problem by default (in turn), every pair in the exhaustive tier
@pytest.mark.parametrize(("config", "problem"), each_with_one(CONFIGS, list(PROBLEMS)))
def test_lbfgs_matches_torch_reference_float64(problem, config):
    """The same iterates, losses and evaluation counts as torch, step by step."""
    ours = run(problem, config, "float64")
    prefix = f"{problem}|{config}|float64|"
    for k in [*PROBLEMS[problem], "loss"]:
        ref = REFERENCE[prefix + k]
        np.testing.assert_allclose(ours[k], ref, rtol=TOL["float64"],
                                   atol=TOL["float64"] * np.max(np.abs(ref)), err_msg=k)
    for k in ("func_evals", "n_iter"):
        np.testing.assert_array_equal(ours[k], REFERENCE[prefix + k], err_msg=k)


def _deviation(a, ref) -> float:
    return float(np.max(np.abs(np.asarray(a) - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("config", one_in(2, 0, CONFIGS))
def test_lbfgs_float32_on_a_convex_problem(config):
    """float32: L-BFGS amplifies rounding, so two float32 implementations drift apart (torch's
    own float32 run is up to 2e-4 of the parameters from its float64 run here, and 8e-3 on
    Rosenbrock, whose float32 iterates are not asserted). On the convex least-squares problem
    the losses every step returns agree with torch's float32 run to float32's 1e-5, the
    parameters to 1e-3 (measured: at most 6e-4)."""
    problem = "least-squares"
    ours = run(problem, config, "float32")
    prefix = f"{problem}|{config}|float32|"
    assert _deviation(ours["loss"], REFERENCE[prefix + "loss"]) < 1e-5
    for k in PROBLEMS[problem]:
        assert _deviation(ours[k], REFERENCE[prefix + k]) < 1e-3, k


def test_converges_and_stops_at_the_optimum():
    opt = optim.lbfgs(line_search_fn="strong_wolfe")
    params = {"x": jnp.array([3.0, -2.0], jnp.float64)}
    state = opt.init(params)
    _, params, state = opt.step(lambda p: jnp.sum((p["x"] - 1.0) ** 2), params, state)
    np.testing.assert_allclose(np.asarray(params["x"]), [1.0, 1.0], rtol=1e-12)
    evals = state.func_evals
    _, again, state = opt.step(lambda p: jnp.sum((p["x"] - 1.0) ** 2), params, state)
    assert state.func_evals == evals + 1  # gradient below tolerance_grad: one evaluation
    np.testing.assert_array_equal(np.asarray(again["x"]), np.asarray(params["x"]))


def test_bad_input():
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        optim.lbfgs(lr=-1)
    with pytest.raises(ValueError, match="line_search_fn must be None or 'strong_wolfe'"):
        optim.lbfgs(line_search_fn="armijo")
    with pytest.raises(TypeError, match=r"params\['z'\] is complex"):
        optim.lbfgs().init({"z": jnp.ones(2, jnp.complex64)})


def _train_step_run(problem: str, config: str, host_steps: int):
    """``host_steps`` host-driven steps, then compiled ones (make_train_step) from the state
    they left, against host-driven steps all along."""
    from fnlearn import train

    opt = optim.lbfgs(**CONFIGS[config])
    params = {k: jnp.asarray(v, "float64") for k, v in PROBLEMS[problem].items()}
    closure = lambda p: loss(problem, p, jnp)  # noqa: E731
    step = train.make_train_step(lambda p, batch: closure(p), opt)
    host_state, host_params = opt.init(params), params
    state = None
    for k in range(STEPS):
        if k == host_steps:
            state = train.TrainState.create(host_params, opt)._replace(opt_state=host_state)
        ref_loss, host_params, host_state = opt.step(closure, host_params, host_state)
        if state is None:
            continue
        state, metrics = step(state, jnp.zeros(1))
        assert float(metrics["loss"]) == pytest.approx(float(ref_loss), rel=1e-10)
        for name in params:
            np.testing.assert_allclose(state.params[name], host_params[name], rtol=1e-10,
                                       atol=1e-10 * float(np.max(np.abs(host_params[name]))))
        assert int(state.opt_state.func_evals) == host_state.func_evals
        assert int(state.opt_state.n_iter) == host_state.n_iter


#: the default run's sample: without and with the line search, from init and from a host
#: run's state, history overflow (history_size 2 and 3), max_eval and tolerances
_DEFAULT_TIER = {("least-squares", "wolfe-history-max_iter", 2),
                 ("rosenbrock", "lr-history-max_iter", 0),
                 ("rosenbrock", "tolerances-max_eval", 2)}


@pytest.mark.parametrize("problem, config, host_steps", [
    pytest.param(p, c, h, id=f"{p}-{c}-{'after-host-steps' if h else 'from-init'}",
                 marks=() if (p, c, h) in _DEFAULT_TIER else pytest.mark.exhaustive)
    for p in PROBLEMS for c in CONFIGS for h in (0, 2)])
def test_compiled_train_step_equals_host_driven_step(problem, config, host_steps):
    """make_train_step runs the closure loop (and the strong-Wolfe line search) in
    lax.while_loops: the same iterates, losses and counters as the host-driven step (f64,
    1e-10; measured at most 5e-12, on Rosenbrock with history_size=2), also continuing a
    host-driven run's state."""
    _train_step_run(problem, config, host_steps)


@pytest.mark.parametrize("problem, config", [
    pytest.param(p, c, id=f"{p}-{c}", marks=() if (p, c) == ("rosenbrock", "wolfe-history-max_iter")
                 else pytest.mark.exhaustive) for p in PROBLEMS for c in CONFIGS])
def test_host_step_continues_from_the_compiled_steps_state(problem, config):
    """A compiled step's LBFGSArrays: as_state keeps the live pairs, oldest first (as_arrays
    of it gives the arrays back bit for bit), and host-driven steps continuing from it equal
    the compiled steps continuing (f64, 1e-10; the same counters)."""
    from fnlearn import train
    from fnlearn.optim import LBFGSArrays, LBFGSState, _lbfgs

    opt = optim.lbfgs(**CONFIGS[config])
    params = {k: jnp.asarray(v, "float64") for k, v in PROBLEMS[problem].items()}
    closure = lambda p: loss(problem, p, jnp)  # noqa: E731
    step = train.make_train_step(lambda p, batch: closure(p), opt, donate=False)
    state = train.TrainState.create(params, opt)
    for _ in range(3):
        state, _ = step(state, jnp.zeros(1))
    arrays = state.opt_state
    host = _lbfgs.as_state(arrays)
    assert isinstance(arrays, LBFGSArrays) and isinstance(host, LBFGSState)
    assert len(host.old_dirs) == len(host.old_stps) == len(host.ro) == int(arrays.count)
    again = _lbfgs.as_arrays(_lbfgs.options(opt), host, arrays.d)
    for a, b in zip(again, arrays, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    host_params = state.params
    for _ in range(3):
        _, host_params, host = opt.step(closure, host_params, host)
        state, _ = step(state, jnp.zeros(1))
        for name in params:
            np.testing.assert_allclose(host_params[name], state.params[name], rtol=1e-10,
                                       atol=1e-10 * float(np.max(np.abs(host_params[name]))))
        assert (host.func_evals, host.n_iter) == (int(state.opt_state.func_evals),
                                                  int(state.opt_state.n_iter))
    # and straight from the arrays, without as_state: the same first step
    _, direct, _ = opt.step(closure, state.params, state.opt_state)
    _, via, _ = opt.step(closure, state.params, _lbfgs.as_state(state.opt_state))
    for name in params:
        np.testing.assert_array_equal(direct[name], via[name])
