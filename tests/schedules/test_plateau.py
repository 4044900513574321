"""reduce_lr_on_plateau against torch's ReduceLROnPlateau (committed reference sequences from
``tests/schedules/generate_reference.py``), the run-time lr path without recompilation, and
the documented difference with optax.contrib.reduce_on_plateau."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn import optim
from fnlearn.optim import reduce_lr_on_plateau, set_hyperparam
from tests._reference import TESTS, load
from tests.schedules.cases import PLATEAU_CASES


@pytest.fixture(scope="module")
def ref():
    return load(TESTS / "schedules" / "reference" / "plateau.npz")


def _run(plateau, metrics):
    """All states after each step, with the step under jit inside one lax.scan."""

    def body(state, m):
        state = plateau.step(state, m)
        return state, state

    _, states = jax.jit(lambda ms: jax.lax.scan(body, plateau.init(), ms))(jnp.asarray(metrics))
    return states


@pytest.mark.parametrize("case", PLATEAU_CASES, ids=[c.id for c in PLATEAU_CASES])
def test_matches_torch_reference(case, ref):
    metrics = ref[f"{case.id}|metrics"]
    states = _run(reduce_lr_on_plateau(case.lr, **case.kwargs), metrics)
    expected_lr = ref[f"{case.id}|lr"]
    lr = np.asarray(states.lr).reshape(expected_lr.shape)
    assert lr.dtype == np.float64
    np.testing.assert_array_equal(lr, expected_lr)  # same IEEE operations: exact
    np.testing.assert_array_equal(np.asarray(states.best), ref[f"{case.id}|best"])
    np.testing.assert_array_equal(np.asarray(states.num_bad_epochs),
                                  ref[f"{case.id}|num_bad_epochs"])
    np.testing.assert_array_equal(np.asarray(states.cooldown_counter),
                                  ref[f"{case.id}|cooldown_counter"])
    np.testing.assert_array_equal(np.asarray(states.last_epoch), np.arange(1, len(metrics) + 1))
    # the table exercises reductions (not a constant lr)
    assert len(np.unique(expected_lr)) > 1 or case.id == "eps-blocks"


def test_eps_blocks_every_reduction_in_its_case(ref):
    """The eps case: lr 0.1 * 0.5 would change by 0.05 > eps=0.02 once, then 0.025, then
    0.0125 <= eps: torch skips that reduction and every later one."""
    lr = ref["eps-blocks|lr"][:, 0]
    assert set(np.round(lr, 12)) <= {0.1, 0.05, 0.025}
    assert lr[-1] == pytest.approx(0.025)


def test_eager_step_equals_scanned_jit():
    plateau = reduce_lr_on_plateau(0.1, patience=1, factor=0.5, cooldown=1)
    metrics = [1.0, 1.0, 1.0, 0.5, 0.6, 0.7, 0.8, 0.9]
    state = plateau.init()
    scanned = _run(plateau, metrics)
    for i, m in enumerate(metrics):
        state = plateau.step(state, m)
        assert float(state.lr) == float(scanned.lr[i])
        assert int(state.num_bad_epochs) == int(scanned.num_bad_epochs[i])


def test_state_is_stable_and_init_is_torchs():
    plateau = reduce_lr_on_plateau((0.1, 0.01), mode="max")
    state = plateau.init()
    assert state.best == -math.inf and state.lr.shape == (2,)
    assert int(state.num_bad_epochs) == int(state.cooldown_counter) == int(state.last_epoch) == 0
    new = plateau.step(state, jnp.float32(1.0))
    assert jax.tree.structure(new) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(state), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape


def test_runtime_lr_change_does_not_recompile():
    """The epoch loop of a torch script with ReduceLROnPlateau: the jitted train step is traced
    once although the lr changes; the plateau step is traced once too."""
    opt = optax.inject_hyperparams(optim.sgd)(lr=0.1, momentum=0.9)
    plateau = reduce_lr_on_plateau(0.1, patience=0, factor=0.5)
    traces = {"train": 0, "plateau": 0}

    @jax.jit
    def train_step(params, opt_state):
        traces["train"] += 1
        grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optim.apply_updates(params, updates), opt_state

    @jax.jit
    def plateau_step(state, metric):
        traces["plateau"] += 1
        return plateau.step(state, metric)

    params = {"w": jnp.ones(3)}
    opt_state, pstate = opt.init(params), plateau.init()
    lrs = []
    for epoch, val_loss in enumerate([1.0, 2.0, 3.0, 4.0]):  # always worse: halve each epoch
        for _ in range(2):
            params, opt_state = train_step(params, opt_state)
        lrs.append(float(opt_state.hyperparams["lr"]))
        pstate = plateau_step(pstate, jnp.float64(val_loss))
        opt_state = set_hyperparam(opt_state, "lr", pstate.lr)
        assert float(opt_state.hyperparams["lr"]) == pytest.approx(0.1 * 0.5**epoch, rel=1e-7)
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.025], rel=1e-7)
    assert traces == {"train": 1, "plateau": 1}


def test_plain_inject_hyperparams_lr_change_does_not_recompile_but_a_python_float_does():
    """Changing lr through optax.inject_hyperparams state: an array of the stored dtype keeps
    the trace; a bare Python float (weakly typed) is a new input type and retraces, which is
    what set_hyperparam prevents."""
    opt = optax.inject_hyperparams(optim.adam)(lr=1e-3)
    traces = []

    @jax.jit
    def step(params, opt_state):
        traces.append(None)
        updates, opt_state = opt.update({"w": jnp.ones(2)}, opt_state, params)
        return optim.apply_updates(params, updates), opt_state

    params = {"w": jnp.zeros(2)}
    state = opt.init(params)
    dtype = state.hyperparams["lr"].dtype
    for lr in (1e-3, 1e-2, 1e-4):
        state.hyperparams["lr"] = jnp.asarray(lr, dtype)  # optax's documented in-place way
        params, state = step(params, state)
    for lr in (0.5, 0.25):
        params, state = step(params, set_hyperparam(state, "lr", lr))
    assert len(traces) == 1
    state.hyperparams["lr"] = 0.3
    step(params, state)
    assert len(traces) == 2


def test_set_hyperparam_is_pure_and_checks():
    opt = optax.inject_hyperparams(optim.sgd)(lr=0.1)
    state = opt.init({"w": jnp.zeros(2)})
    new = set_hyperparam(state, "lr", 0.5)
    assert float(state.hyperparams["lr"]) == pytest.approx(0.1)
    assert float(new.hyperparams["lr"]) == 0.5
    assert new.hyperparams["lr"].dtype == state.hyperparams["lr"].dtype
    with pytest.raises(KeyError, match="'beta' is not an injected hyperparameter"):
        set_hyperparam(state, "beta", 0.9)
    with pytest.raises(ValueError, match="shape"):
        set_hyperparam(state, "lr", jnp.ones(2))
    with pytest.raises(TypeError, match="inject_hyperparams"):
        set_hyperparam(optim.sgd(0.1).init({"w": jnp.zeros(2)}), "lr", 0.5)


def test_optax_contrib_reduce_on_plateau_reduces_one_epoch_earlier():
    """optax.contrib.reduce_on_plateau(patience=p) reduces when the bad-epoch count equals p;
    torch reduces when it exceeds p: optax's scale follows torch's patience p - 1 (fed once
    per epoch, rtol = threshold, no cooldown, no eps effect)."""
    metrics = [1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    tx = optax.contrib.reduce_on_plateau(factor=0.5, patience=3, rtol=1e-4, atol=0.0)
    params = {"w": jnp.zeros((), jnp.float64)}
    optax_scales = []
    with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 count and floats
        state = tx.init(params)
        update = jax.jit(lambda g, st, m: tx.update(g, st, params, value=m))
        for m in metrics:
            _, state = update({"w": jnp.ones((), jnp.float64)}, state, jnp.float64(m))
            optax_scales.append(float(state.scale))

    def torch_like(patience):
        states = _run(reduce_lr_on_plateau(1.0, factor=0.5, patience=patience), metrics)
        return list(np.asarray(states.lr))

    assert optax_scales == torch_like(2)
    assert optax_scales != torch_like(3)


BAD = [
    ("factor-1", dict(factor=1.0), ValueError, "Factor should be < 1.0."),
    ("factor-negative", dict(factor=-0.5), ValueError, "factor"),
    ("mode", dict(mode="minimum"), ValueError, "mode minimum is unknown!"),
    ("threshold_mode", dict(threshold_mode="relative"), ValueError,
     "threshold mode relative is unknown!"),
    ("patience", dict(patience=-1), ValueError, "patience"),
    ("patience-float", dict(patience=2.5), ValueError, "patience"),
    ("cooldown", dict(cooldown=-2), ValueError, "cooldown"),
    ("threshold", dict(threshold=-1e-4), ValueError, "threshold"),
    ("eps", dict(eps=float("nan")), ValueError, "eps"),
    ("min_lr", dict(min_lr=-1.0), ValueError, "min_lr"),
    ("min_lr-count", dict(min_lr=[0.0, 0.1]), ValueError, "expected 1 min_lrs, got 2"),
    ("lr", dict(lr=-0.1), ValueError, "lr"),
]


@pytest.mark.parametrize(("name", "kwargs", "error", "match"), BAD, ids=[b[0] for b in BAD])
def test_bad_arguments_raise(name, kwargs, error, match):
    kwargs = {"lr": 0.1, **kwargs}
    with pytest.raises(error, match=match):
        reduce_lr_on_plateau(**kwargs)


def test_groups_need_matching_min_lrs_and_scalar_metric():
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 3"):
        reduce_lr_on_plateau([0.1, 0.2], min_lr=[0.0, 0.0, 0.0])
    plateau = reduce_lr_on_plateau(0.1)
    with pytest.raises(ValueError, match="metric must be a scalar"):
        plateau.step(plateau.init(), jnp.ones(2))
