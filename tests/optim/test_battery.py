"""A battery over every optimizer case of every table (optax's ``alias_test.py`` idea).

Per case: the state keeps its structure and the jitted step traces once; jit equals eager and
``lax.scan`` equals a Python loop; float32 and bfloat16 params keep their dtype (state and
updates too); the optimizer works inside ``optax.chain`` and under ``optax.inject_hyperparams``
(numeric hyperparameters become traced arrays); the loss after three unrolled steps is
differentiable with respect to lr and matches a central finite difference. Plus one test each
for flax's ``TrainState`` and ``nnx.Optimizer``.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn import optim
from tests._reference import seed_of
from tests._tiers import first_of_each, one_in
from tests.optim.cases import all_cases, base_lr, fnlearn_kwargs, make, schedule

# one case per optimizer factory by default, every case in the exhaustive tier; of the three
# slow checks (scan, dtypes, d/dlr) each factory meets one by default, in turn
CASES = first_of_each([pytest.param(table, case, id=case.id) for table, case in all_cases()],
                      lambda table, case: case.name)
STEPS = 3


def _params(seed: int, dtypes=("float64", "float64")) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.standard_normal((2, 3)), dtypes[0]),
        "b": jnp.asarray(rng.standard_normal((3,)), dtypes[1]),
    }


def _grads(seed: int, params: dict) -> list[dict]:
    """A fixed sequence of ``STEPS`` gradient trees shaped (and typed) like ``params``."""
    rng = np.random.default_rng(seed + 1)
    return [
        {k: jnp.asarray(rng.standard_normal(v.shape) * 10.0 ** rng.uniform(-1, 1), v.dtype)
         for k, v in params.items()}
        for _ in range(STEPS)
    ]


def _loss(params: dict):
    """A smooth non-quadratic loss (its gradient depends on the params)."""
    return sum(jnp.sum((p - 0.5) ** 2 + 0.1 * p**4) for p in jax.tree.leaves(params))


def _signature(tree):
    """Structure, shapes and dtypes of a pytree (what a retrace depends on)."""
    return jax.tree.structure(tree), [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]


def _assert_trees_close(actual, desired, rtol, err_msg=""):
    assert jax.tree.structure(actual) == jax.tree.structure(desired), err_msg
    for a, d in zip(jax.tree.leaves(actual), jax.tree.leaves(desired), strict=True):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(d, np.float64),
                                   rtol=rtol, atol=rtol, err_msg=err_msg)


def _eager_loop(opt, params, grads):
    state = opt.init(params)
    init_signature = _signature(state)
    for g in grads:
        updates, state = opt.update(g, state, params)
        assert _signature(updates) == _signature(params)
        assert _signature(state) == init_signature, "state structure changed in update"
        params = optim.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize(("table", "case"), one_in(3, 0, CASES))
def test_jit_scan_equals_eager_loop_without_retrace(table, case):
    """A jitted ``lax.scan`` over the steps equals an eager Python loop, and calling it again
    on its own output state (same structure, shapes and dtypes) does not retrace."""
    seed = seed_of(case.id)
    params = _params(seed)
    grads = _grads(seed, params)
    opt = make(table, case)
    eager_params, eager_state = _eager_loop(opt, params, grads)

    traces = 0

    def run(params, state, stacked):
        nonlocal traces
        traces += 1

        def step(carry, g):
            params, state = carry
            updates, state = opt.update(g, state, params)
            return (optim.apply_updates(params, updates), state), None

        return jax.lax.scan(step, (params, state), stacked)[0]

    jitted = jax.jit(run)
    stacked = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *grads)
    p, s = jitted(params, opt.init(params), stacked)
    _assert_trees_close((p, s), (eager_params, eager_state), 1e-12, "jit(scan) vs eager loop")
    p, s = jitted(p, s, stacked)
    assert traces == 1, "calling the jitted scan on its own output state retraced"
    assert np.all(np.isfinite(np.asarray(p["w"])))


@pytest.mark.parametrize(("table", "case"), one_in(3, 1, CASES))
def test_dtype_kept_float32_and_bfloat16(table, case):
    seed = seed_of(case.id)
    params = _params(seed, ("float32", "bfloat16"))
    grads = _grads(seed, params)
    opt = make(table, case, "float32")
    state = opt.init(params)
    structure = jax.tree.structure(params)

    def check_state(state):
        for name, field in zip(state._fields, state, strict=True):
            if field is not None and jax.tree.structure(field) == structure:
                for k in params:
                    assert field[k].dtype == params[k].dtype, f"state {name}[{k!r}] dtype"

    check_state(state)

    @jax.jit  # one program for the step (dtypes are the same under jit)
    def step(g, state, params):
        updates, state = opt.update(g, state, params)
        return updates, state, optim.apply_updates(params, updates)

    for g in grads:
        updates, state, params = step(g, state, params)
        check_state(state)
        for k in params:
            assert updates[k].dtype == params[k].dtype, f"update[{k!r}] dtype"
        for k in params:
            assert params[k].dtype == updates[k].dtype, f"params[{k!r}] dtype"
            assert np.all(np.isfinite(np.asarray(params[k], np.float32))), k


@pytest.mark.parametrize(("table", "case"), CASES)
def test_inside_optax_chain(table, case):
    seed = seed_of(case.id)
    params = _params(seed)
    grads = _grads(seed, params)
    opt = make(table, case)
    chained = optax.chain(optax.scale(1.0), opt, optax.scale(1.0))
    # both loops in one program (the eager loop is test_jit_scan_equals_eager_loop's subject)
    desired, actual = jax.jit(lambda params, grads: (_eager_loop(opt, params, grads)[0],
                                                     _eager_loop(chained, params, grads)[0]))(
        params, grads)
    _assert_trees_close(actual, desired, 1e-14, "inside optax.chain")


@pytest.mark.parametrize(("table", "case"), CASES)
def test_inject_hyperparams(table, case):
    """Numeric hyperparameters (all floats and ints, lr included) become traced arrays."""
    seed = seed_of(case.id)
    params = _params(seed)
    grads = _grads(seed, params)
    factory = getattr(optim, case.name)
    kwargs = fnlearn_kwargs(table, case, "float64")
    kwargs.setdefault("lr", base_lr(case))
    injected = optax.inject_hyperparams(factory)(**kwargs)
    bound = inspect.signature(factory).bind(**kwargs)
    bound.apply_defaults()
    numeric = [k for k, v in bound.arguments.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    state = injected.init(params)
    assert set(numeric) <= set(state.hyperparams), (numeric, list(state.hyperparams))
    assert "lr" in state.hyperparams

    update = jax.jit(injected.update)
    desired, _ = jax.jit(lambda params, grads: _eager_loop(make(table, case), params, grads))(
        params, grads)
    p = params
    for g in grads:
        updates, state = update(g, state, p)
        p = optim.apply_updates(p, updates)
    _assert_trees_close(p, desired, 1e-12, "under inject_hyperparams")

    # The injected lr is live: a state initialized with another lr runs through the same
    # compiled update (same shapes: no recompilation) and gives that lr's update. (A schedule
    # lives in the update function, not in the state.)
    if case.lr_schedule is None:
        lr2 = 2.0 * kwargs["lr"]
        state2 = optax.inject_hyperparams(factory)(**dict(kwargs, lr=lr2)).init(params)
        updates, _ = update(grads[0], state2, params)
        plain = factory(**dict(kwargs, lr=lr2))
        desired = jax.jit(lambda g, p: plain.update(g, plain.init(p), p)[0])(grads[0], params)
        _assert_trees_close(updates, desired, 1e-12, "injected lr changed in the state")


@pytest.mark.parametrize(("table", "case"), one_in(3, 2, CASES))
def test_differentiable_wrt_lr(table, case):
    seed = seed_of(case.id)
    params = _params(seed)
    factory = getattr(optim, case.name)
    kwargs = dict(case.kwargs)
    lr0 = base_lr(case)
    factor = schedule(table, case)

    def final_loss(lr):
        kw = dict(kwargs, lr=lr if factor is None else (lambda k: lr * factor(k.astype(float))))
        opt = factory(**kw)
        p, state = params, opt.init(params)
        for _ in range(STEPS):
            updates, state = opt.update(jax.grad(_loss)(p), state, p)
            p = optim.apply_updates(p, updates)
        return _loss(p)

    grad = float(jax.grad(final_loss)(jnp.asarray(lr0)))
    h = 1e-4 * lr0
    fd = float(final_loss(lr0 + h) - final_loss(lr0 - h)) / (2 * h)
    assert np.isfinite(grad)
    assert grad != 0.0
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-9 * abs(fd))


def _reference_run(opt, params, grads):
    p, _ = _eager_loop(opt, params, grads)
    return p


def test_flax_train_state():
    from flax.training.train_state import TrainState

    params = _params(0)
    grads = _grads(0, params)
    for opt in (optim.adamw(lr=0.01, amsgrad=True), optim.sgd(0.1, momentum=0.9, nesterov=True)):
        state = TrainState.create(apply_fn=None, params=params, tx=opt)
        apply = jax.jit(lambda s, g: s.apply_gradients(grads=g))
        for g in grads:
            state = apply(state, g)
        assert int(state.step) == STEPS
        _assert_trees_close(state.params, _reference_run(opt, params, grads), 1e-12, "TrainState")


def test_flax_nnx_optimizer():
    from flax import nnx

    class Model(nnx.Module):
        def __init__(self, params):
            self.w = nnx.Param(params["w"])
            self.b = nnx.Param(params["b"])

    params = _params(1)
    grads = _grads(1, params)
    opt = optim.rmsprop(lr=0.01, momentum=0.9, centered=True, weight_decay=0.1)
    model = Model(params)
    optimizer = nnx.Optimizer(model, opt, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, g):
        optimizer.update(model, Model(g))

    for g in grads:
        step(model, optimizer, g)
    desired = _reference_run(opt, params, grads)
    _assert_trees_close({"w": model.w[...], "b": model.b[...]}, desired, 1e-12, "nnx.Optimizer")
    assert int(optimizer.step[...]) == STEPS
