"""fnlearn.schedules against torch.optim.lr_scheduler (committed reference data, no torch
needed) and against optax's schedules.

Reference: ``reference/schedules.npz`` from ``generate_reference.py`` (this folder):
torch's lr (and the momentum / beta1 that CyclicLR and OneCycleLR write) during the k-th
``optimizer.step()``, ``scheduler.step()`` after each; float64, rtol 1e-10 (absolute 1e-14 of
the largest lr: torch applies most schedulers recursively, the closed forms differ by
rounding, which is relative to the lr's scale near zero lrs).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn import optim, schedules
from tests._reference import TESTS, load
from tests.schedules.cases import SCHED_CASES, TRAJ_CASES

s = schedules


def _close(actual, expected, rtol=1e-10):
    expected = np.asarray(expected)
    atol = 1e-14 * max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=atol)


def _values(schedule, n):
    """schedule(k) for k = 0..n-1 with an int32 step, under jit (vmapped)."""
    return np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(n, dtype=jnp.int32)))


def _optax_values(schedule, n):
    """As _values, for optax's schedules, which mix int32 counts and float32 constants and so
    need JAX's standard dtype promotion (fnlearn's schedules run under the strict one)."""
    with jax.numpy_dtype_promotion("standard"):
        return _values(schedule, n)


@pytest.fixture(scope="module")
def ref():
    return load(TESTS / "schedules" / "reference" / "schedules.npz")


@pytest.fixture(scope="module")
def ours():
    """Every case's lr and momentum for k = 0..steps-1: one jit over all cases, int32 steps."""
    built = [(c.fn(), c.momentum() if c.momentum else None, c.steps) for c in SCHED_CASES]

    @jax.jit
    def evaluate():
        out = []
        for lr, momentum, n in built:
            ks = jnp.arange(n, dtype=jnp.int32)
            out.append((jax.vmap(lr)(ks), None if momentum is None else jax.vmap(momentum)(ks)))
        return out

    return {c.id: v for c, v in zip(SCHED_CASES, evaluate(), strict=True)}


# --- torch reference ---------------------------------------------------------------------


@pytest.mark.parametrize("case", SCHED_CASES, ids=[c.id for c in SCHED_CASES])
def test_schedule_matches_torch_reference(case, ref, ours):
    lr, momentum = ours[case.id]
    key = f"{case.id}|lr"
    assert key in ref, f"no reference for {case.id}: run tests/schedules/generate_reference.py"
    assert lr.dtype == jnp.float64 and lr.shape == (case.steps,)
    _close(lr, ref[key])
    if case.momentum is not None:
        _close(momentum, ref[f"{case.id}|momentum"])


def test_cycling_cases_cover_three_cycles(ref):
    """The issue asks for >= 3 cycles wherever a scheduler cycles: count the cycles in torch's
    reference sequences (a cycle ends at a local minimum followed by a rise)."""

    def cycles(lr):
        return int(np.sum((lr[1:-1] < lr[:-2]) & (lr[1:-1] <= lr[2:] - 1e-12)))

    cycling = [c.id for c in SCHED_CASES if c.id.startswith(("cyclic_lr", "warm_restarts"))]
    assert len(cycling) >= 9
    for case_id in cycling:
        assert cycles(ref[f"{case_id}|lr"]) >= 3, case_id
    # CosineAnnealingLR past T_max: at least two periodic minima (T_max and 3 T_max)
    assert cycles(ref["cosine_annealing_lr-10|lr"]) >= 2
    assert cycles(ref["cosine_annealing_lr-7-eta|lr"]) >= 3


@pytest.mark.parametrize("case", TRAJ_CASES, ids=[c.id for c in TRAJ_CASES])
def test_optimizer_with_momentum_cycling_matches_torch(case, ref):
    """CyclicLR / OneCycleLR rewrite SGD's momentum / Adam's beta1 every step in torch: fnlearn
    reproduces the parameter trajectory with the lr and momentum schedules."""
    n = len(case.shapes)
    params = [jnp.asarray(ref[f"traj/{case.id}|init{i}"]) for i in range(n)]
    grads = [ref[f"traj/{case.id}|grad{i}"] for i in range(n)]
    opt = case.fn()
    state = opt.init(params)

    @jax.jit
    def step(params, state, g):
        updates, state = opt.update(g, state, params)
        return optim.apply_updates(params, updates), state

    for k in range(case.steps):
        params, state = step(params, state, [jnp.asarray(g[k]) for g in grads])
        for i in range(n):
            np.testing.assert_allclose(np.asarray(params[i]), ref[f"traj/{case.id}|param{i}"][k],
                                       rtol=1e-10, atol=1e-13, err_msg=f"step {k}, param {i}")


# --- tracing -----------------------------------------------------------------------------


def test_int32_tracer_jit_equals_eager():
    """A schedule takes a Python int (eager) or an int32 scalar tracer (jit), same values."""
    for case in SCHED_CASES[::12]:
        sched = case.fn()
        jitted = jax.jit(sched)
        for k in (0, case.steps - 1):
            eager = sched(k)
            traced = jitted(jnp.int32(k))
            assert traced.shape == () and traced.dtype == jnp.float64
            np.testing.assert_allclose(float(traced), float(eager), rtol=1e-12, atol=1e-16,
                                       err_msg=case.id)


def test_schedule_as_lr_traces_once_and_uses_schedule_k():
    """The k-th update of an fnlearn optimizer uses schedule(k); the lr changes every step
    without retracing (the step count is state)."""
    sched = s.cosine_annealing_lr(0.5, T_max=3)
    opt = optim.sgd(lr=sched)
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(None)
        updates, state = opt.update({"w": jnp.ones(())}, state, params)
        return optim.apply_updates(params, updates), state

    params = {"w": jnp.zeros(())}
    state = opt.init(params)
    expected = 0.0
    for k in range(7):
        params, state = step(params, state)
        expected -= float(sched(k))
        assert float(params["w"]) == pytest.approx(expected, rel=1e-12)
    assert len(traces) == 1


def test_schedule_inside_inject_hyperparams():
    """A schedule given to optax.inject_hyperparams: the k-th update uses schedule(k), which
    the state records as the current lr."""
    sched = s.step_lr(0.1, 2, 0.5)
    opt = optax.inject_hyperparams(optim.sgd)(lr=sched)
    params = {"w": jnp.zeros(())}
    state = opt.init(params)
    for k in range(5):
        updates, state = opt.update({"w": jnp.ones(())}, state, params)
        assert float(updates["w"]) == pytest.approx(-float(sched(k)))
        assert float(state.hyperparams["lr"]) == pytest.approx(float(sched(k)))


# --- optax ---------------------------------------------------------------------------------


F = np.float64  # optax schedules compute in their arguments' dtype: float64 values


def _sgdr(lr, T_0, T_mult, eta_min, n_cycles):
    return optax.sgdr_schedule([
        dict(init_value=F(lr), peak_value=F(lr), warmup_steps=0, decay_steps=T_0 * T_mult**i,
             end_value=F(eta_min))
        for i in range(n_cycles)
    ])


OPTAX_EXACT = [
    ("step_lr", s.step_lr(0.1, 3, 0.5),
     optax.exponential_decay(F(0.1), 3, F(0.5), staircase=True), 20),
    ("multi_step_lr", s.multi_step_lr(0.1, [2, 5, 5, 9], 0.5),
     optax.piecewise_constant_schedule(F(0.1), {2: F(0.5), 5: F(0.25), 9: F(0.5)}), 14),
    ("constant_lr", s.constant_lr(0.1, 0.5, 3),
     optax.piecewise_constant_schedule(F(0.05), {3: F(2.0)}), 8),
    ("linear_lr", s.linear_lr(0.1, 0.25, 1.0, 8), optax.linear_schedule(F(0.025), F(0.1), 8),
     12),
    ("exponential_lr", s.exponential_lr(0.1, 0.9), optax.exponential_decay(F(0.1), 1, F(0.9)),
     30),
    ("polynomial_lr", s.polynomial_lr(0.1, 8, 2.0),
     optax.polynomial_schedule(F(0.1), F(0.0), F(2.0), 8), 12),
    ("cosine_annealing_lr-upto-T_max", s.cosine_annealing_lr(0.1, 10, 0.01),
     optax.cosine_decay_schedule(F(0.1), 10, alpha=F(0.1)), 11),
    ("warm_restarts", s.cosine_annealing_warm_restarts(0.1, 3, 2, 1e-3),
     _sgdr(0.1, 3, 2, 1e-3, 4), 45),
    ("sequential-warmup-cosine",
     s.sequential_lr([s.linear_lr(0.1, 0.1, 1.0, 5), s.cosine_annealing_lr(0.1, 20)], [5]),
     optax.warmup_cosine_decay_schedule(F(0.01), F(0.1), 5, 25), 26),
    ("sequential-join", s.sequential_lr([s.constant_lr(0.1, 0.2, 9), s.exponential_lr(0.1, 0.9)],
                                        [3]),
     optax.join_schedules([optax.constant_schedule(F(0.02)),
                           optax.exponential_decay(F(0.1), 1, F(0.9))], [3]), 10),
    ("one_cycle-cos-exact-form", s.one_cycle_lr(1.0, total_steps=50),
     optax.schedules.piecewise_interpolate_schedule(
         "cosine", F(1.0 / 25), {14: F(25.0), 49: F(1 / (25 * 1e4))}), 50),
    ("one_cycle-three-phase-linear-exact-form",
     s.one_cycle_lr(1.0, total_steps=50, three_phase=True, anneal_strategy="linear"),
     optax.schedules.piecewise_interpolate_schedule(
         "linear", F(1.0 / 25), {14: F(25.0), 28: F(1 / 25), 49: F(1e-4)}), 50),
    ("lambda_lr-of-an-optax-schedule",
     s.lambda_lr(1.0, optax.cosine_decay_schedule(F(0.1), 10)),
     optax.cosine_decay_schedule(F(0.1), 10), 15),
    ("chained", s.chained_scheduler(0.1, [s.constant_lr(0.1, 0.5, 3), s.exponential_lr(0.1, 0.9)]),
     lambda k: optax.piecewise_constant_schedule(F(0.05), {3: F(2.0)})(k)
     * optax.exponential_decay(F(0.1), 1, F(0.9))(k) / 0.1, 10),
]


OPTAX_FLOAT32_FRACTION = {
    "sequential-warmup-cosine",
    "one_cycle-cos-exact-form",
    "one_cycle-three-phase-linear-exact-form",
}


@pytest.mark.parametrize(("name", "ours", "theirs", "n"), OPTAX_EXACT,
                         ids=[c[0] for c in OPTAX_EXACT])
def test_matches_optax_where_optax_computes_the_same(name, ours, theirs, n):
    if name.startswith("lambda_lr"):  # an optax schedule inside ours
        mine = _optax_values(ours, n)
    else:
        mine = _values(ours, n)
    # optax computes the interpolation fraction of its warmup and piecewise-interpolate
    # schedules as int32 / int, which JAX makes float32: those agree to float32 precision
    rtol = 3e-6 if name in OPTAX_FLOAT32_FRACTION else 1e-12
    _close(mine, _optax_values(theirs, n), rtol=rtol)


def test_optax_cosine_onecycle_is_off_by_one():
    """optax's cosine_onecycle_schedule puts its boundaries at int(pct*T) and T, torch at
    pct*T - 1 and T - 1: the difference exists and is large near the peak."""
    ours = _values(s.one_cycle_lr(1.0, total_steps=50), 50)
    theirs = _optax_values(optax.cosine_onecycle_schedule(50, F(1.0)), 50)
    assert ours[14] == pytest.approx(1.0) and theirs[15] == pytest.approx(1.0)
    assert np.max(np.abs(ours - theirs)) > 0.05
    assert ours[49] == pytest.approx(1.0 / 25 / 1e4) and theirs[49] > 100 * ours[49]


def test_optax_linear_onecycle_is_a_different_shape():
    ours = _values(s.one_cycle_lr(1.0, total_steps=50, three_phase=True,
                                  anneal_strategy="linear"), 50)
    theirs = _optax_values(optax.linear_onecycle_schedule(50, F(1.0)), 50)
    assert np.max(np.abs(ours - theirs)) > 0.4


def test_optax_cosine_decay_stays_at_eta_min_past_T_max_torch_does_not():
    """torch's CosineAnnealingLR keeps following the cosine after T_max (period 2 T_max)."""
    ours = _values(s.cosine_annealing_lr(0.1, 10, eta_min=0.01), 41)
    theirs = _optax_values(optax.cosine_decay_schedule(F(0.1), 10, alpha=F(0.1)), 41)
    _close(ours[:11], theirs[:11], rtol=1e-12)
    np.testing.assert_allclose(theirs[11:], 0.01, rtol=1e-12)
    assert ours[20] == pytest.approx(0.1) and ours[40] == pytest.approx(0.1)
    assert ours[30] == pytest.approx(0.01)
    assert np.max(np.abs(ours[11:] - theirs[11:])) == pytest.approx(0.09)


def test_one_cycle_past_total_steps_raises_like_torch_and_holds_under_jit():
    """torch's OneCycleLR raises when stepped past total_steps: so does a concrete step (the
    same message); a traced step cannot raise and holds the value at total_steps."""
    sched = s.one_cycle_lr(1.0, total_steps=10)
    sched(10)
    for k in (11, np.int64(11), jnp.asarray(11), jnp.arange(12)):
        with pytest.raises(ValueError, match="Tried to step 11 times. The specified number of "
                                             "total steps is 10"):
            sched(k)
    jitted = jax.jit(sched)
    assert float(jitted(10)) == float(jitted(11)) == float(jitted(1000))
    momentum = s.one_cycle_momentum(total_steps=10)
    with pytest.raises(ValueError, match="Tried to step 12 times"):
        momentum(12)
    # inside an optimizer the step count is concrete in eager code: the 11th update raises
    opt = optim.sgd(lr=sched)
    params = {"w": jnp.ones(2)}
    state = opt.init(params)
    for _ in range(11):
        _, state = opt.update({"w": jnp.ones(2)}, state, params)
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        opt.update({"w": jnp.ones(2)}, state, params)


def test_warm_restarts_exact_at_large_steps():
    """The cycle is found with integer arithmetic: a restart 2**20 steps in is exact."""
    sched = s.cosine_annealing_warm_restarts(1.0, T_0=1, T_mult=2)
    start = 2**20 - 1  # cycles start at 2**i - 1
    vals = _values(lambda k: sched(k + start - 1), 3)
    assert vals[1] == 1.0 and vals[0] < 1e-10 and 0.99 < vals[2] < 1.0


def test_schedules_return_the_default_float_dtype():
    for case in SCHED_CASES[:3]:
        assert case.fn()(3).dtype == jnp.float64  # x64 is on in the tests
    assert s.step_lr(jnp.float32(0.1), 2)(1).dtype == jnp.float64


# --- bad arguments -------------------------------------------------------------------------

BAD = [
    ("step_lr-lr", lambda: s.step_lr(-0.1, 2), ValueError, "lr"),
    ("lambda_lr-lr", lambda: s.lambda_lr(float("nan"), lambda k: 1.0), ValueError, "lr"),
    ("lr-not-a-number", lambda: s.exponential_lr("0.1", 0.9), TypeError, "lr"),
    ("cyclic-base_lr", lambda: s.cyclic_lr(-0.01, 0.1), ValueError, "base_lr"),
    ("cyclic_momentum-max", lambda: s.cyclic_momentum(0.8, -0.9), ValueError, "max_momentum"),
    ("one_cycle-max_lr", lambda: s.one_cycle_lr(-1.0, total_steps=10), ValueError, "max_lr"),
    ("one_cycle_momentum-base", lambda: s.one_cycle_momentum(10, base_momentum=-0.1),
     ValueError, "base_momentum"),
    ("step_lr-step_size-0", lambda: s.step_lr(0.1, 0), ValueError, "step_size"),
    ("step_lr-step_size-float", lambda: s.step_lr(0.1, 2.5), ValueError, "step_size"),
    ("step_lr-gamma", lambda: s.step_lr(0.1, 2, gamma=-0.1), ValueError, "gamma"),
    ("multi_step_lr-negative", lambda: s.multi_step_lr(0.1, [3, -1]), ValueError, "milestone"),
    ("constant_lr-factor", lambda: s.constant_lr(0.1, factor=1.5), ValueError,
     "Constant multiplicative factor expected to be between 0 and 1"),
    ("constant_lr-total_iters", lambda: s.constant_lr(0.1, total_iters=0), ValueError,
     "total_iters"),
    ("linear_lr-start", lambda: s.linear_lr(0.1, start_factor=0.0), ValueError,
     "Starting multiplicative factor"),
    ("linear_lr-end", lambda: s.linear_lr(0.1, end_factor=1.5), ValueError,
     "Ending multiplicative factor"),
    ("linear_lr-total_iters", lambda: s.linear_lr(0.1, total_iters=-1), ValueError,
     "total_iters"),
    ("exponential_lr-gamma", lambda: s.exponential_lr(0.1, float("nan")), ValueError, "gamma"),
    ("polynomial_lr-power", lambda: s.polynomial_lr(0.1, power=-1.0), ValueError, "power"),
    ("polynomial_lr-total_iters", lambda: s.polynomial_lr(0.1, total_iters=0), ValueError,
     "total_iters"),
    ("cosine-T_max", lambda: s.cosine_annealing_lr(0.1, 0), ValueError, "T_max"),
    ("cosine-eta_min", lambda: s.cosine_annealing_lr(0.1, 5, eta_min=-1.0), ValueError,
     "eta_min"),
    ("warm-T_0", lambda: s.cosine_annealing_warm_restarts(0.1, 0), ValueError,
     "Expected positive integer T_0"),
    ("warm-T_mult", lambda: s.cosine_annealing_warm_restarts(0.1, 2, T_mult=0), ValueError,
     "Expected integer T_mult >= 1"),
    ("warm-T_mult-float", lambda: s.cosine_annealing_warm_restarts(0.1, 2, T_mult=1.5),
     ValueError, "T_mult"),
    ("warm-eta_min", lambda: s.cosine_annealing_warm_restarts(0.1, 2, eta_min="0"), ValueError,
     "Expected float or int eta_min"),
    ("cyclic-mode", lambda: s.cyclic_lr(0.01, 0.1, mode="sine"), ValueError,
     "mode is invalid and scale_fn is None"),
    ("cyclic-step_size_up", lambda: s.cyclic_lr(0.01, 0.1, step_size_up=0), ValueError,
     "step_size_up"),
    ("cyclic-step_size_down", lambda: s.cyclic_lr(0.01, 0.1, step_size_down=-2), ValueError,
     "step_size_down"),
    ("cyclic-scale_mode", lambda: s.cyclic_lr(0.01, 0.1, scale_fn=lambda x: 1.0,
                                              scale_mode="epochs"), ValueError, "scale_mode"),
    ("cyclic-scale_fn", lambda: s.cyclic_lr(0.01, 0.1, scale_fn=3.0), TypeError, "scale_fn"),
    ("cyclic_momentum-mode", lambda: s.cyclic_momentum(mode="x"), ValueError, "mode is invalid"),
    ("one_cycle-no-total", lambda: s.one_cycle_lr(0.1), ValueError,
     r"You must define either total_steps OR \(epochs AND steps_per_epoch\)"),
    ("one_cycle-total", lambda: s.one_cycle_lr(0.1, total_steps=0), ValueError,
     "Expected positive integer total_steps"),
    ("one_cycle-epochs", lambda: s.one_cycle_lr(0.1, epochs=0, steps_per_epoch=3), ValueError,
     "Expected positive integer epochs"),
    ("one_cycle-steps_per_epoch", lambda: s.one_cycle_lr(0.1, epochs=2, steps_per_epoch=-1),
     ValueError, "Expected positive integer steps_per_epoch"),
    ("one_cycle-pct", lambda: s.one_cycle_lr(0.1, total_steps=10, pct_start=1.5), ValueError,
     "Expected float between 0 and 1 pct_start"),
    ("one_cycle-anneal", lambda: s.one_cycle_lr(0.1, total_steps=10, anneal_strategy="exp"),
     ValueError, "anneal_strategy must be one of 'cos' or 'linear'"),
    ("one_cycle-zero-phase", lambda: s.one_cycle_lr(0.1, total_steps=10, pct_start=0.1),
     ValueError, "zero length"),
    ("one_cycle-div", lambda: s.one_cycle_lr(0.1, total_steps=10, div_factor=0.0), ValueError,
     "div_factor"),
    ("one_cycle-final_div", lambda: s.one_cycle_lr(0.1, total_steps=10, final_div_factor=-1.0),
     ValueError, "final_div_factor"),
    ("one_cycle_momentum-total", lambda: s.one_cycle_momentum(), ValueError,
     "You must define either total_steps"),
    ("lambda_lr-not-callable", lambda: s.lambda_lr(0.1, 0.5), TypeError,
     "lr_lambda should be a function"),
    ("multiplicative-not-callable", lambda: s.multiplicative_lr(0.1, [0.9]), TypeError,
     "lr_lambda should be a function"),
    ("sequential-empty", lambda: s.sequential_lr([], []), ValueError,
     "expects at least one scheduler"),
    ("sequential-milestones", lambda: s.sequential_lr([s.exponential_lr(0.1, 0.9)] * 2, []),
     ValueError, "one more than the number of milestone points"),
    ("sequential-not-callable", lambda: s.sequential_lr([0.1, s.exponential_lr(0.1, 0.9)], [3]),
     TypeError, "index 0"),
    ("sequential-decreasing", lambda: s.sequential_lr([s.exponential_lr(0.1, 0.9)] * 3, [5, 2]),
     ValueError, "non-decreasing"),
    ("sequential-plateau",
     lambda: s.sequential_lr([optim.reduce_lr_on_plateau(0.1), s.exponential_lr(0.1, 0.9)], [3]),
     TypeError, "index 0"),
    ("chained-empty", lambda: s.chained_scheduler(0.1, []), ValueError,
     "expects at least one scheduler to be chained"),
    ("chained-not-callable", lambda: s.chained_scheduler(0.1, [s.exponential_lr(0.1, 0.9), 2]),
     TypeError, "index 1"),
    ("swa_lr-strategy", lambda: s.swa_lr(0.1, 0.01, anneal_strategy="exp"), ValueError,
     "anneal_strategy must be one of 'cos' or 'linear', instead got exp"),
    ("swa_lr-epochs", lambda: s.swa_lr(0.1, 0.01, anneal_epochs=-1), ValueError,
     "anneal_epochs must be equal or greater than 0, got -1"),
    ("swa_lr-epochs-float", lambda: s.swa_lr(0.1, 0.01, anneal_epochs=2.5), ValueError,
     "anneal_epochs must be equal or greater than 0, got 2.5"),
]


@pytest.mark.parametrize(("name", "build", "error", "match"), BAD, ids=[b[0] for b in BAD])
def test_bad_arguments_raise(name, build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_traced_hyperparameters_are_not_checked_but_work():
    """A base lr or gamma may be a tracer (meta-learning): no Python branch on it."""

    def lr_at_3(lr, gamma):
        return s.step_lr(lr, 2, gamma)(3) + s.one_cycle_lr(lr, total_steps=10)(3)

    value = jax.jit(lr_at_3)(jnp.float64(0.1), jnp.float64(0.5))
    assert float(value) == pytest.approx(0.05 + float(s.one_cycle_lr(0.1, total_steps=10)(3)))
    grad = jax.grad(lambda lr: s.cosine_annealing_lr(lr, 4)(1))(0.2)
    assert float(grad) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)


# every scheduler with its first (lr-like) argument given by keyword, the rest fixed
_BY_LR = {
    "step_lr": lambda v: s.step_lr(v, 2),
    "multi_step_lr": lambda v: s.multi_step_lr(v, [2]),
    "constant_lr": lambda v: s.constant_lr(v),
    "linear_lr": lambda v: s.linear_lr(v),
    "exponential_lr": lambda v: s.exponential_lr(v, 0.9),
    "polynomial_lr": lambda v: s.polynomial_lr(v),
    "cosine_annealing_lr": lambda v: s.cosine_annealing_lr(v, 5),
    "cosine_annealing_warm_restarts": lambda v: s.cosine_annealing_warm_restarts(v, 3),
    "cyclic_lr": lambda v: s.cyclic_lr(0.01, v),
    "one_cycle_lr": lambda v: s.one_cycle_lr(v, total_steps=10),
    "lambda_lr": lambda v: s.lambda_lr(v, lambda k: 1.0),
    "multiplicative_lr": lambda v: s.multiplicative_lr(v, lambda k: 0.9),
    "chained_scheduler": lambda v: s.chained_scheduler(v, [s.exponential_lr(v, 0.9)]),
    "swa_lr": lambda v: s.swa_lr(v, 0.01),
}


@pytest.mark.parametrize("name", sorted(_BY_LR))
def test_scheduler_hyperparameters_as_torch_takes_them(name):
    """A number or a 0-d / one-element array (the same values); strings, None and arrays of
    several elements refused at construction, naming the argument."""
    build = _BY_LR[name]
    want = float(build(0.1)(3))
    for value in (jnp.asarray(0.1), jnp.asarray([0.1]), np.float64(0.1)):
        got = build(value)(3)
        assert got.shape == () and float(got) == pytest.approx(want, rel=1e-12)
    with pytest.raises(TypeError, match=r"must be a number or a 0-d array, got '0.1' \(str\)"):
        build("0.1")
    with pytest.raises(TypeError, match="must be a number or a 0-d array, got None"):
        build(None)
    with pytest.raises(ValueError, match=r"must be 1-element, got an array of shape \(2,\)"):
        build(jnp.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="Expected non-negative"):
        build(jnp.asarray(-0.1))
