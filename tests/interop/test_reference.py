"""The hand-over against committed torch reference data (no torch needed): torch's state after
K steps -> fnlearn -> N more steps equals torch's K + N (params and every state buffer), and
fnlearn's K steps -> torch's layout equals torch's state after K steps; schedulers handed over
mid-schedule give torch's next lrs; the digits MLP continues with torch's per-step losses.
Regenerate with ``python -m tests.interop.generate_reference`` (needs torch)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn.interop import _flax as it_flax
from fnlearn.interop import torch as it
from fnlearn.optim import set_hyperparam
from tests._reference import load
from tests.interop import _digits, _schedulers
from tests.interop._handover import (
    RTOL,
    K,
    N,
    as_tree,
    assert_close,
    assert_state_dicts_close,
    cases,
    decode_state_dict,
    fnlearn_steps,
    inputs,
    untext,
)
from tests.optim.cases import SHAPES, schedule, unpack
from tests.optim.lbfgs_cases import CONFIGS as LBFGS_CONFIGS
from tests.optim.lbfgs_cases import PROBLEMS as LBFGS_PROBLEMS
from tests.optim.lbfgs_cases import loss as lbfgs_loss

REF = Path(__file__).parent / "reference"
HANDOVER = load(REF / "handover.npz")
SCHEDULERS = load(REF / "schedulers.npz")

ALL = [(table, case, dtype) for table, case in cases() for dtype in case.dtypes]
# the default run: one configuration for each shape of state (a buffer per parameter, 0-d
# scalars per parameter, Adafactor's factors, an lr schedule through LambdaLR) and one float32
# run; the whole grid (every option combination of the tables, both dtypes) is the exhaustive
# tier
DEFAULT_IDS = {("sgd-momentum", "float64"), ("adam-amsgrad-decoupled-maximize-schedule",
               "float64"), ("asgd-t0-10", "float64"), ("nadam-decoupled-wd", "float64"),
               ("adafactor-default", "float64"), ("adam-default", "float32")}
DEFAULT = [x for x in ALL if (x[1].id, x[2]) in DEFAULT_IDS]
assert len(DEFAULT) == len(DEFAULT_IDS), "a default case left the optimizer tables"
GRID = [pytest.param(*x, marks=() if x in DEFAULT else pytest.mark.exhaustive,
                     id=f"{x[1].id}-{x[2]}") for x in ALL]


def _stored(case, dtype):
    tag = f"{case.id}|{dtype}"
    sd_k = decode_state_dict(HANDOVER, f"{tag}|k")
    sd_end = decode_state_dict(HANDOVER, f"{tag}|end")
    both = unpack(HANDOVER[f"{tag}|params"], SHAPES + SHAPES)
    sched = HANDOVER.get(f"{tag}|sched")
    return sd_k, sd_end, both[:len(SHAPES)], both[len(SHAPES):], sched


def _schedule(table, case, sched):
    if sched is None:
        return None
    return it.schedule_from_torch(json.loads(untext(sched)), "LambdaLR",
                                  lr_lambdas=[schedule(table, case)])


def test_inputs_are_the_stored_ones():
    np.testing.assert_array_equal(inputs(cases()[0][1])[0][0], HANDOVER["check|p0"])


@pytest.mark.parametrize(("table", "case", "dtype"), GRID)
def test_from_torch(table, case, dtype):
    sd_k, sd_end, p_k, p_end, sched = _stored(case, dtype)
    _, grads = inputs(case)
    params = as_tree(p_k, dtype)
    tx, state = it.optimizer_from_torch(sd_k, params, case.torch_name,
                                        schedule=_schedule(table, case, sched))
    params, state = fnlearn_steps(tx, state, params, grads, range(K, K + N), dtype)
    for i, p in enumerate(p_end):
        assert_close(params[str(i)], p, dtype, f"{case.id} param {i}")
    back = it.optimizer_to_torch(tx, state, params, numpy=True)
    assert_state_dicts_close(back, sd_end, dtype, case.id)


@pytest.mark.parametrize(("table", "case", "dtype"), GRID)
def test_to_torch(table, case, dtype):
    sd_k, _, p_k, _, sched = _stored(case, dtype)
    p0, grads = inputs(case)
    params = as_tree(p0, dtype)
    # the optimizer as a user starting in fnlearn writes it: torch's class and hyperparameters
    groups = [{k: v for k, v in g.items() if k not in ("params", "initial_lr")}
              for g in sd_k["param_groups"]]
    if sched is not None:
        ts = _schedule(table, case, sched)
        groups[0]["lr"] = lambda count: ts.lr[0](count)
    spec = it.OptimizerSpec(case.torch_name, tuple(groups))
    tx = spec.build()
    params, state = fnlearn_steps(tx, tx.init(params), params, grads, range(K), dtype)
    for i, p in enumerate(p_k):
        assert_close(params[str(i)], p, dtype, f"{case.id} param {i}")
    back = it.optimizer_to_torch(tx, state, params, numpy=True)
    assert_state_dicts_close(back, sd_k, dtype, case.id)
    # the groups torch will read: same hyperparameters, the lr of the next step
    for g_back, g_torch in zip(back["param_groups"], sd_k["param_groups"], strict=True):
        for key, v in g_torch.items():
            if key != "initial_lr":
                assert g_back[key] == pytest.approx(v, rel=RTOL["float64"]) if isinstance(
                    v, float) else g_back[key] == v, (case.id, key)


#: the default run's schedulers (the rest of the table is the exhaustive tier)
SCHED_DEFAULT = ("steplr-groups", "warmrestarts", "onecyclelr-adam-beta1-linear",
                 "reducelronplateau-mid-patience", "reducelronplateau-cooldown-groups")


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.id, marks=() if c.id in SCHED_DEFAULT else pytest.mark.exhaustive)
    for c in _schedulers.CASES])
def test_scheduler_handover(case):
    sched = json.loads(untext(SCHEDULERS[f"{case.id}|scheduler"]))
    sd = decode_state_dict(SCHEDULERS, f"{case.id}|optimizer")
    ts = it.schedule_from_torch(sched, case.name, optimizer_state_dict=sd,
                                lr_lambdas=case.lr_lambdas)
    lrs = SCHEDULERS[f"{case.id}|lrs"]
    _, grads = _schedulers.inputs(case)
    p_k = [SCHEDULERS[f"{case.id}|params-k|{i}"] for i in range(len(SHAPES))]
    params = as_tree(p_k, "float64")
    tx, state = it.optimizer_from_torch(sd, params, case.optimizer, schedule=ts)
    plateau = ts.plateau[1] if ts.plateau else None
    for j in range(case.n):
        k = case.k + j
        # the lr each group uses at this step: torch's
        got = _group_lrs(ts, state, k, plateau, case)
        np.testing.assert_allclose(got, lrs[j], rtol=1e-12, err_msg=f"{case.id} step {k}")
        g = as_tree([gr[k] for gr in grads], "float64")
        updates, state = tx.update(g, state, params)
        params = {n: params[n] + updates[n] for n in params}
        if plateau is not None:
            plateau = ts.plateau[0].step(plateau, case.metrics[k])
            state = _set_lr(state, plateau.lr)
    for i in range(len(SHAPES)):
        assert_close(params[str(i)], SCHEDULERS[f"{case.id}|params-end|{i}"], "float64",
                     f"{case.id} param {i}")
    end = json.loads(untext(SCHEDULERS[f"{case.id}|scheduler-end"]))
    back = it.schedule_to_torch(ts, ts.last_epoch + case.n, plateau)
    assert back.get("last_epoch") == end.get("last_epoch")
    np.testing.assert_allclose(back["_last_lr"], end["_last_lr"], rtol=1e-12)


def _group_lrs(ts, state, k, plateau, case):
    if plateau is not None:
        return np.ravel(np.asarray(plateau.lr))
    return [float(f(k)) for f in ts.lr]


def _set_lr(state, lr):
    """Each group's injected lr (one value per group), as torch's ReduceLROnPlateau sets it."""
    lr = np.ravel(np.asarray(lr))
    if isinstance(state, optax.PartitionState):
        inner = dict(state.inner_states)
        for i in range(len(lr)):
            masked = inner[str(i)]
            inner[str(i)] = masked._replace(
                inner_state=set_hyperparam(masked.inner_state, "lr", lr[i]))
        return state._replace(inner_states=inner)
    return set_hyperparam(state, "lr", lr[0])


def test_digits_second_epoch_equals_torch():
    ref = load(REF / "digits.npz")
    ckpt_dict = {"model": {k.split("|", 1)[1]: v for k, v in ref.items()
                           if k.startswith("model|")},
                 "optimizer": decode_state_dict(ref, "optimizer"),
                 "scheduler": json.loads(untext(ref["scheduler"])), "epoch": 1}
    ckpt = it.load_torch_checkpoint(ckpt_dict, optimizer="Adam", scheduler="StepLR")
    model = _digits.flax_model()
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 64), jnp.float64))
    layout = it.flax_layout({"0": "Linear", "2": "Linear"}, variables)
    # the first 5 batches (one batch shape, one compilation); test_live_torch runs the epoch
    _, losses = _digits.fnlearn_epoch(ckpt, layout, epoch=1, steps=5)
    np.testing.assert_allclose(losses, ref["losses-epoch2"][:5], rtol=1e-10)


def test_flax_layout_pairs_layers_in_creation_order_after_a_transformation():
    """A flax dict that went through a JAX transformation has its keys sorted as strings
    (layers_10 before layers_2): the layers still pair in creation order, each torch Linear
    with its own Dense, whether init ran eagerly or under jit."""
    import flax.linen as nn

    model = nn.Sequential([nn.Dense(3 + i % 2) for i in range(12)])
    torch_layers = {str(i): "Linear" for i in range(12)}
    x = jnp.ones((1, 3), jnp.float32)
    for variables in (model.init(jax.random.key(0), x),
                      jax.jit(model.init)(jax.random.key(0), x)):
        layout = it.flax_layout(torch_layers, variables)
        assert [f for _, _, f in layout.pairs] == [(f"layers_{i}",) for i in range(12)]
    mixed = {"Conv_0": {"kernel": 0}, "Dense_0": {"kernel": 0}, "Dense_1": {"kernel": 0}}
    assert [p for p, _ in it_flax._flax_layers(mixed)] == [("Conv_0",), ("Dense_0",),
                                                         ("Dense_1",)]


#: L-BFGS hand-overs, against torch's own LBFGS runs (tests/optim/reference/lbfgs.npz):
#: without and with the line search (history_size 3 and 2, so the history overflows)
LBFGS_REFERENCE = load(Path(__file__).parents[1] / "optim" / "reference" / "lbfgs.npz")
LBFGS_DEFAULT = {("rosenbrock", "lr-history-max_iter"),
                 ("least-squares", "wolfe-history-max_iter")}


@pytest.mark.parametrize("problem, config", [
    pytest.param(p, c, id=f"{p}-{c}", marks=() if (p, c) in LBFGS_DEFAULT
                 else pytest.mark.exhaustive) for p in LBFGS_PROBLEMS for c in LBFGS_CONFIGS])
def test_lbfgs_compiled_steps_hand_over_through_torch_layout(problem, config):
    """fnlearn's host-driven LBFGS for 2 steps, make_train_step for 2 (its state left as
    LBFGSArrays), optimizer_to_torch -> optimizer_from_torch, 2 host-driven steps more: torch's
    own 6-step run, every step (f64, 1e-10), and the same func_evals / n_iter."""
    from fnlearn.optim import LBFGSArrays
    from fnlearn.train import TrainState, make_train_step

    tx = it.OptimizerSpec("LBFGS", (LBFGS_CONFIGS[config],)).build()
    params = {k: jnp.asarray(v, "float64") for k, v in LBFGS_PROBLEMS[problem].items()}
    closure = lambda p: lbfgs_loss(problem, p, jnp)  # noqa: E731
    step = make_train_step(lambda p, batch: closure(p), tx)
    state = tx.init(params)
    prefix = f"{problem}|{config}|float64|"

    def check(k: int, params, state) -> None:
        for name, value in params.items():
            ref = LBFGS_REFERENCE[prefix + name][k]
            np.testing.assert_allclose(value, ref, rtol=1e-10, atol=1e-10 * np.max(np.abs(ref)),
                                       err_msg=f"{name} after step {k + 1}")
        for key in ("func_evals", "n_iter"):
            assert int(getattr(state, key)) == LBFGS_REFERENCE[prefix + key][k], (key, k)

    for k in range(2):
        _, params, state = tx.step(closure, params, state)
        check(k, params, state)
    train_state = TrainState.create(params, tx)._replace(opt_state=state)
    for k in range(2, 4):
        train_state, _ = step(train_state, jnp.zeros(1))
        check(k, train_state.params, train_state.opt_state)
    assert isinstance(train_state.opt_state, LBFGSArrays)
    sd = it.optimizer_to_torch(tx, train_state.opt_state, train_state.params, numpy=True)
    s = sd["state"][0]
    assert len(s["old_dirs"]) == len(s["old_stps"]) == len(s["ro"]) \
        == int(train_state.opt_state.count)
    tx, state = it.optimizer_from_torch(sd, train_state.params, "LBFGS")
    params = train_state.params
    for k in range(4, 6):
        _, params, state = tx.step(closure, params, state)
        check(k, params, state)
