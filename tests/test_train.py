"""fnlearn.train: the train step (donation, accumulation, non-finite skipping, pytree kinds),
the eval step, evaluate and fit."""

import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import fnlearn as fl
from fnlearn import train
from fnlearn.data import iterate_batches
from fnlearn.train import TrainState, make_eval_step, make_train_step
from tests._tiers import one_in


def _data(n=12, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return jnp.asarray(x), jnp.asarray(x @ rng.normal(size=(d, 2)) + 0.1 * rng.normal(size=(n, 2)))


def _params(d=3):
    return {"w": jnp.full((d, 2), 0.1), "b": jnp.zeros((1, 2))}


def _mse(params, batch):
    x, y = batch
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def _mse_aux(params, batch):
    x, y = batch
    err = x @ params["w"] + params["b"] - y
    return jnp.mean(err**2), {"mae": jnp.mean(jnp.abs(err)), "max": jnp.max(jnp.abs(err))}


def _bits(tree):
    """Leaves as raw bytes: equality means bit-identical."""
    return [np.asarray(leaf).tobytes() for leaf in jax.tree.leaves(tree)]


def _hand_step(params, opt_state, batch, opt):
    loss, grads = jax.value_and_grad(_mse)(params, batch)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def test_step_is_value_and_grad_then_optimizer_update():
    opt = fl.optim.adam(lr=0.05)
    batch = _data()
    state = TrainState.create(_params(), opt)
    step = make_train_step(_mse, opt)
    params, opt_state = _params(), opt.init(_params())
    for i in range(3):
        state, metrics = step(state, batch)
        params, opt_state, loss = jax.jit(_hand_step, static_argnums=3)(params, opt_state,
                                                                         batch, opt)
        assert int(state.step) == i + 1
        np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-14)
    for got, want in zip(jax.tree.leaves((state.params, state.opt_state)),
                         jax.tree.leaves((params, opt_state)), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert state.step.dtype == jnp.int32 and int(state.skipped) == 0


def test_metrics_are_device_arrays_and_the_step_compiles_once():
    traces = []

    def loss_fn(params, batch):
        traces.append(1)
        return _mse_aux(params, batch)

    opt = optax.sgd(0.1)
    step = make_train_step(loss_fn, opt, has_aux=True)
    state = TrainState.create(_params(), opt)
    for _ in range(3):
        state, metrics = step(state, _data())
    assert len(traces) == 1
    assert set(metrics) == {"loss", "aux"} and set(metrics["aux"]) == {"mae", "max"}
    assert all(isinstance(m, jax.Array) for m in jax.tree.leaves(metrics))


def test_donation_updates_in_place_and_the_returned_state_is_reusable():
    opt = fl.optim.adam(lr=0.01)
    initial = _params()
    state = TrainState.create(initial, opt)
    step = make_train_step(_mse, opt)
    first = state
    state, _ = step(state, _data())
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves((first.params, first.opt_state)))
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(initial))  # create copies
    for _ in range(3):  # the returned state feeds the next step, as often as needed
        state, metrics = step(state, _data())
    assert math.isfinite(float(metrics["loss"])) and int(state.step) == 4
    # donate=False keeps the input alive and gives the same numbers
    kept = TrainState.create(initial, opt)
    out, _ = make_train_step(_mse, opt, donate=False)(kept, _data())
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(kept))
    ref, _ = make_train_step(_mse, opt)(TrainState.create(initial, opt), _data())
    assert _bits(out) == _bits(ref)


def test_donation_aliases_params_and_optimizer_state_in_the_compiled_step():
    """The state's buffers are updated in place when donated; the kept gradient buffer (as
    torch's ``.grad``) always is."""
    opt = fl.optim.adam(lr=0.01)
    state = TrainState.create(_params(), opt)
    state_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
    grad_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(state.params))
    for donate, expected in [(True, state_bytes + grad_bytes), (False, grad_bytes)]:
        compiled = make_train_step(_mse, opt, donate=donate).lower(state, _data()).compile()
        assert compiled.memory_analysis().alias_size_in_bytes == expected


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the fused kernel is a CPU kernel")
def test_a_layer_stack_step_updates_its_parameters_in_place_with_no_copy():
    """The default step on CPU (the fused kernel, one call over every leaf) writes each
    parameter in its own buffer: no copy of any parameter in the compiled step. (An update per
    leaf, the XLA rule's or optax's, makes XLA copy every layer's weight but the first: the
    backward pass still reads it for the layers below after its own gradient is known.)"""
    params = {f"w{i}": jnp.full((16, 16), 0.1) for i in range(3)}

    def loss(p, x):
        for w in p.values():
            x = jnp.tanh(x @ w)
        return jnp.mean(x ** 2)

    opt = fl.optim.adam(lr=0.01)
    state = TrainState.create(params, opt)
    hlo = make_train_step(loss, opt).lower(state, jnp.ones((8, 16))).compile().as_text()
    assert "FnlearnFused" in hlo
    assert re.findall(r"= f64\[16,16\]\{[0-9,]+\} copy\(", hlo) == []


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the fused kernel is a CPU kernel")
def test_a_weight_penalty_in_the_loss_costs_the_default_step_no_parameter_copy():
    """The loss reads every weight outside its gradient's chain (``sum(w ** 2)``): the step
    orders the kernel's in-place update after the loss (through the optimizer's step count),
    so XLA copies no parameter (two per weight without the ordering); the numbers are those
    of a step without it."""
    params = {f"w{i}": jnp.full((16, 16), 0.1 * (i + 1)) for i in range(3)}

    def loss(p, x):
        return sum(jnp.sum(w ** 2) for w in p.values()) + jnp.mean(x)

    opt = fl.optim.adam(lr=0.01)
    step = make_train_step(loss, opt)
    state = TrainState.create(params, opt)
    hlo = step.lower(state, jnp.ones((8, 16))).compile().as_text()
    assert "FnlearnFused" in hlo
    assert re.findall(r"= f64\[16,16\]\{[0-9,]+\} copy\(", hlo) == []

    @jax.jit
    def plain(params, opt_state, x):  # the same step, no ordering asked for
        grads = jax.grad(loss)(params, x)
        return fl.optim.update_and_apply(opt, grads, opt_state, params)

    got, want = state, jax.tree.map(jnp.copy, (params, state.opt_state))  # step donates
    for _ in range(3):
        got, _ = step(got, jnp.ones((8, 16)))
        want = plain(*want, jnp.ones((8, 16)))
    assert _bits(got.params) == _bits(want[0]) and _bits(got.opt_state) == _bits(want[1])


def test_the_gradient_buffer_is_kept_and_reused_without_recompiling():
    opt = fl.optim.sgd(lr=0.1, momentum=0.9)
    step = make_train_step(_mse, opt)
    kept_gradient = step.__wrapped__  # under the donation check's wrapper
    state = TrainState.create(_params(), opt)
    state, _ = step(state, _data())
    kept = kept_gradient._kept
    assert jax.tree.map(lambda g: g.shape, kept) == jax.tree.map(lambda p: p.shape, state.params)
    state, _ = step(state, _data())
    assert all(g.is_deleted() for g in jax.tree.leaves(kept))  # donated to the second call
    assert kept_gradient._jitted._cache_size() == 1
    # params of other shapes (another model) get a buffer of their own; same numbers
    def mse_c(p, b):
        return _mse(p, b) + jnp.sum(p["c"] ** 2)

    step_c = make_train_step(mse_c, opt)
    step_c(TrainState.create(_params() | {"c": jnp.ones(2)}, opt), _data())
    got, _ = step_c(TrainState.create(_params() | {"c": jnp.ones(3)}, opt), _data())
    want, _ = make_train_step(mse_c, opt)(TrainState.create(_params() | {"c": jnp.ones(3)},
                                                            opt), _data())
    assert _bits(got) == _bits(want) and step_c.__wrapped__._kept["c"].shape == (3,)
    # under an outer jit the step keeps nothing and gives the same numbers
    outer, _ = jax.jit(step_c)(TrainState.create(_params() | {"c": jnp.zeros(2)}, opt),
                               _data())
    inner, _ = make_train_step(mse_c, opt)(TrainState.create(_params() | {"c": jnp.zeros(2)},
                                                             opt), _data())
    assert _bits(outer) == _bits(inner)


def test_create_unshares_an_optimizer_state_that_holds_the_params():
    """An optimizer whose state is the params themselves (as lookahead's slow weights)."""
    opt = optax.GradientTransformation(
        init=lambda params: params,
        update=lambda grads, state, params: (jax.tree.map(lambda g: -0.1 * g, grads), params),
    )
    initial = _params()
    state = TrainState.create(initial, opt)
    assert not set(map(id, jax.tree.leaves(state.params))) & set(
        map(id, jax.tree.leaves(state.opt_state)))
    step = make_train_step(_mse, opt)
    for _ in range(3):  # donating one buffer twice would raise
        state, metrics = step(state, _data())
    assert math.isfinite(float(metrics["loss"]))


@pytest.mark.parametrize("k", one_in(3, 2, [pytest.param(k, id=f"K={k}") for k in (2, 3, 6)]))
def test_accumulation_equals_one_big_batch(k):
    opt = fl.optim.adam(lr=0.05)  # non-linear in g: only equal gradients give equal steps
    batch = _data(n=12)
    big = make_train_step(_mse_aux, opt, has_aux=True)
    acc = make_train_step(_mse_aux, opt, has_aux=True, accumulate_steps=k)
    s_big, s_acc = TrainState.create(_params(), opt), TrainState.create(_params(), opt)
    for _ in range(3):
        s_big, m_big = big(s_big, batch)
        s_acc, m_acc = acc(s_acc, batch)
        np.testing.assert_allclose(m_acc["loss"], m_big["loss"], rtol=1e-13)
        np.testing.assert_allclose(m_acc["aux"]["mae"], m_big["aux"]["mae"], rtol=1e-13)
    for got, want in zip(jax.tree.leaves(s_acc), jax.tree.leaves(s_big), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_accumulation_equals_torch_style_loop_over_micro_batches():
    """The update equals the mean of per-micro-batch gradients (loss/K; backward; step)."""
    opt = optax.sgd(0.1)
    x, y = _data(n=8)

    @jax.jit  # the expected update as one program
    def torch_style(params, x, y):
        grads = [jax.grad(_mse)(params, (x[i : i + 2], y[i : i + 2])) for i in range(0, 8, 2)]
        mean_grad = jax.tree.map(lambda *g: sum(g) / 4, *grads)
        return optax.apply_updates(params, opt.update(mean_grad, opt.init(params))[0])

    want = torch_style(_params(), x, y)
    state, _ = make_train_step(_mse, opt, accumulate_steps=4)(TrainState.create(_params(), opt),
                                                               (x, y))
    for got, w in zip(jax.tree.leaves(state.params), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(got, w, rtol=1e-13)


def test_accumulation_holds_one_gradient_sum_whatever_k():
    """Compiled temporaries: K=1 needs one gradient; K>1 adds only the gradient sum."""
    d = 256
    params = {"w": jnp.zeros((d, d), jnp.float32)}
    size = d * d * 4

    def loss_fn(p, batch):
        x, y = batch
        return jnp.mean((jnp.tanh(x @ p["w"]) - y) ** 2)

    opt = optax.sgd(0.1)
    state = TrainState.create(params, opt)
    temp = {}
    for k in (1, 2, 8):
        batch = (jnp.ones((4 * k, d), jnp.float32), jnp.ones((4 * k, d), jnp.float32))
        compiled = make_train_step(loss_fn, opt, accumulate_steps=k).lower(state, batch).compile()
        temp[k] = compiled.memory_analysis().temp_size_in_bytes
    assert temp[1] < 1.2 * size
    assert temp[2] < temp[1] + 1.2 * size
    assert temp[8] == temp[2]


def test_accumulation_errors():
    with pytest.raises(ValueError, match="accumulate_steps must be a positive integer, got 0"):
        make_train_step(_mse, optax.sgd(0.1), accumulate_steps=0)
    with pytest.raises(ValueError, match="got 2.0"):
        make_train_step(_mse, optax.sgd(0.1), accumulate_steps=2.0)
    step = make_train_step(_mse, optax.sgd(0.1), accumulate_steps=5)
    with pytest.raises(ValueError, match=r"accumulate_steps=5 must divide the batch size, but "
                                         r"batch\[0\] has shape \(12, 3\)"):
        step(TrainState.create(_params(), optax.sgd(0.1)), _data(n=12))


def _nan_batch():
    x, y = _data()
    return x.at[3, 1].set(jnp.nan), y


def _nan_grad_loss(params, batch):
    """A finite loss whose gradient is 0/0 = nan: d sqrt(b^2 + e^2) / db at b = e = 0."""
    return _mse(params, batch) + jnp.sum(jnp.sqrt(params["b"] ** 2 + params["extra"] ** 2))


@pytest.mark.parametrize(
    "loss_fn, bad_batch, extra",
    [(_mse, _nan_batch, False), (_nan_grad_loss, _data, True)],
    ids=["nan-loss", "nan-grad-finite-loss"],
)
def test_nonfinite_step_is_skipped_bit_identically(loss_fn, bad_batch, extra):
    opt = fl.optim.adam(lr=0.05)
    params = {**_params(), "extra": jnp.zeros((1, 2))} if extra else _params()
    step = make_train_step(loss_fn, opt, skip_nonfinite=True)
    good = (_data()[0], _data()[1]) if not extra else None
    state = TrainState.create(params, opt)
    if good is not None:
        state, metrics = step(state, good)
        assert not bool(metrics["skipped"])
    before = _bits((state.params, state.opt_state))
    state, metrics = step(state, bad_batch())
    assert bool(metrics["skipped"]) and int(state.skipped) == 1
    assert int(state.step) == (2 if good is not None else 1)
    assert _bits((state.params, state.opt_state)) == before
    if good is not None:  # training carries on normally after a skipped step
        state, metrics = step(state, good)
        assert not bool(metrics["skipped"]) and int(state.skipped) == 1
        assert _bits(state.params) != before[: len(jax.tree.leaves(state.params))]


def test_skip_nonfinite_changes_nothing_on_finite_steps():
    opt = fl.optim.adam(lr=0.05)
    plain = make_train_step(_mse, opt)
    skipping = make_train_step(_mse, opt, skip_nonfinite=True)
    s1 = TrainState.create(_params(), opt)
    s2 = TrainState.create(_params(), opt)
    for _ in range(3):
        s1, _ = plain(s1, _data())
        s2, _ = skipping(s2, _data())
    assert _bits((s1.params, s1.opt_state, s1.step)) == _bits((s2.params, s2.opt_state, s2.step))
    assert int(s2.skipped) == 0


def test_skip_nonfinite_is_decided_by_the_step_alone():
    opt = optax.sgd(0.1)
    state = TrainState.create(_params(), opt)
    state, metrics = make_train_step(_mse, opt, skip_nonfinite=True)(state, _data())
    assert int(state.skipped) == 0 and not bool(metrics["skipped"])
    state, metrics = make_train_step(_mse, opt)(state, _data())
    assert int(state.skipped) == 0 and "skipped" not in metrics
    with pytest.raises(ValueError, match=r"state.skipped, which is None"):
        make_train_step(_mse, opt, skip_nonfinite=True)(state._replace(skipped=None), _data())


class _LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(nn.tanh(nn.Dense(4)(x)))


class _NNXMLP(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(3, 4, rngs=rngs)
        self.out = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.tanh(self.hidden(x)))


def _dict_model():
    def apply(params, x):
        return jnp.tanh(x @ params["w1"]) @ params["w2"]

    key1, key2 = jax.random.split(jax.random.key(0))
    w1 = jax.random.normal(key1, (3, 4), jnp.float32)
    return {"w1": w1, "w2": jax.random.normal(key2, (4, 2), jnp.float32)}, apply


def _linen_model():
    model = _LinenMLP()
    params = model.init(jax.random.key(0), jnp.ones((1, 3), jnp.float32))["params"]
    return params, lambda p, x: model.apply({"params": p}, x)


def _nnx_model():
    graphdef, params = nnx.split(_NNXMLP(nnx.Rngs(0)), nnx.Param)
    return params, lambda p, x: nnx.merge(graphdef, p)(x)


@pytest.mark.parametrize("make_model", [_dict_model, _linen_model, _nnx_model],
                         ids=["dict", "flax-linen", "flax-nnx"])
def test_any_parameter_pytree_trains(make_model):
    params, apply = make_model()
    x, y = _data(n=16)
    x, y = x.astype(jnp.float32), y.astype(jnp.float32)

    def loss_fn(p, batch):
        return jnp.mean((apply(p, batch[0]) - batch[1]) ** 2)

    opt = fl.optim.adam(lr=0.05)
    state = TrainState.create(params, opt)
    step = make_train_step(loss_fn, opt, accumulate_steps=2, skip_nonfinite=True)
    losses = []
    for _ in range(20):
        state, metrics = step(state, (x, y))
        losses.append(float(metrics["loss"]))
    assert jax.tree.structure(state.params) == jax.tree.structure(params)
    assert type(state.params) is type(params)
    assert losses[-1] < 0.5 * losses[0] and int(state.skipped) == 0


def test_compiler_options_reach_xla_and_keep_the_numbers():
    opt = fl.optim.adam(lr=0.05)
    batch = jax.tree.map(lambda a: a.astype(jnp.float32), _data())
    params = jax.tree.map(lambda a: a.astype(jnp.float32), _params())
    results = []
    for options in (None, {"xla_cpu_use_xnnpack": True}):
        step = make_train_step(_mse, opt, compiler_options=options)
        state = TrainState.create(params, opt)
        for _ in range(3):
            state, metrics = step(state, batch)
        evaluated = make_eval_step(_mse, compiler_options=options)(state.params, batch)
        results.append((state.params, metrics["loss"], evaluated["loss"]))
    for got, want in zip(jax.tree.leaves(results[1]), jax.tree.leaves(results[0]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # the options are passed to XLA, which names an unknown one at the first call
    for make in (lambda o: make_train_step(_mse, opt, compiler_options=o),
                 lambda o: make_eval_step(_mse, compiler_options=o)):
        fn = make({"xla_no_such_option": True})
        args = (TrainState.create(params, opt), batch) if fn.__name__ == "step" else (params,
                                                                                      batch)
        with pytest.raises(Exception, match="xla_no_such_option"):
            fn(*args)
        with pytest.raises(TypeError, match="compiler_options"):
            make({1: True})
        with pytest.raises(TypeError, match="compiler_options"):
            make(["xla_cpu_use_xnnpack"])


def test_eval_step_and_evaluate():
    params = _params()
    x, y = _data(n=10)
    metrics = make_eval_step(_mse_aux, has_aux=True)(params, (x, y))
    loss, aux = _mse_aux(params, (x, y))
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-14)
    np.testing.assert_allclose(metrics["aux"]["mae"], aux["mae"], rtol=1e-14)
    # batch size 4 does not divide 10: the size-weighted mean is still the full-data mean
    means = train.evaluate(make_eval_step(_mse_aux, has_aux=True), params, (x, y), 4)
    assert isinstance(means["loss"], float)
    np.testing.assert_allclose(means["loss"], loss, rtol=1e-13)
    np.testing.assert_allclose(means["aux"]["mae"], aux["mae"], rtol=1e-13)
    assert set(train.evaluate(make_eval_step(_mse), params, (x, y), 3)) == {"loss"}


def test_fit_equals_the_hand_written_loop_and_records_history():
    opt = fl.optim.sgd(lr=0.05, momentum=0.9)
    data = _data(n=10)
    key = jax.random.key(3)
    step = make_train_step(_mse, opt)
    state, history = train.fit(step, TrainState.create(_params(), opt), data, epochs=3,
                               batch_size=4, key=key, eval_step=make_eval_step(_mse),
                               val_data=_data(n=6, seed=1), progress=False)
    assert len(history.loss) == 3 * 3 and len(history.epochs) == 3
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3]
    assert [e["step"] for e in history.epochs] == [3, 6, 9]
    assert set(history.epochs[0]) == {"epoch", "step", "train_loss", "time", "val_loss"}
    np.testing.assert_allclose(history.epochs[1]["train_loss"], np.mean(history.loss[3:6]))

    manual, losses = TrainState.create(_params(), opt), []
    for epoch in range(3):
        for batch in iterate_batches(data, 4, shuffle=True,
                                           key=jax.random.fold_in(key, epoch)):
            manual, metrics = step(manual, batch)
            losses.append(float(metrics["loss"]))
    assert _bits(state) == _bits(manual) and history.loss == losses
    val = train.evaluate(make_eval_step(_mse), state.params, _data(n=6, seed=1), 4)
    assert history.epochs[-1]["val_loss"] == val["loss"]


def test_fit_drop_last_start_epoch_and_errors():
    opt = optax.sgd(0.05)
    step = make_train_step(_mse, opt)
    _, history = train.fit(step, TrainState.create(_params(), opt), _data(n=10), epochs=3,
                           batch_size=4, shuffle=False, drop_last=True, start_epoch=1,
                           progress=False)
    assert len(history.loss) == 2 * 2 and [e["epoch"] for e in history.epochs] == [2, 3]
    with pytest.raises(ValueError, match="shuffle=True needs a JAX PRNG key"):
        train.fit(step, TrainState.create(_params(), opt), _data(), epochs=1, batch_size=4)
    with pytest.raises(ValueError, match="val_data needs eval_step"):
        train.fit(step, TrainState.create(_params(), opt), _data(), epochs=1, batch_size=4,
                  shuffle=False, val_data=_data())


def test_fit_progress_bar_shows_loss_and_steps_per_second(capsys):
    opt = optax.sgd(0.05)
    train.fit(make_train_step(_mse, opt), TrainState.create(_params(), opt), _data(n=12),
              epochs=1, batch_size=4, shuffle=False, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "3/3" in err and "step/s" in err and "loss=" in err
    train.fit(make_train_step(_mse, opt), TrainState.create(_params(), opt), _data(n=12),
              epochs=1, batch_size=4, shuffle=False)  # progress=None: stderr is not a terminal
    assert capsys.readouterr().err == ""


def test_history_plot_writes_a_png(tmp_path):
    history = train.History(loss=[1.0, 0.5, 0.4, 0.3],
                            epochs=[{"epoch": 1, "step": 2, "train_loss": 0.75, "val_loss": 0.8},
                                    {"epoch": 2, "step": 4, "train_loss": 0.35, "val_loss": 0.5}])
    path = history.plot(tmp_path / "loss.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = train.History(loss=[2.0, -1.0], epochs=[{"epoch": 1, "step": 2, "train_loss": 0.5}])
    path = train.plot_histories({"a": history, "b": other}, tmp_path / "two.png")
    assert path.stat().st_size > 1000


def test_reusing_a_donated_state_says_what_happened_and_how_to_opt_out():
    """donate=True uses the state up; calling the step on it again is our ValueError (what
    happened, donate=False), never XLA's "Buffer has been deleted or donated"."""
    opt = optax.sgd(0.1)
    step = make_train_step(_mse, opt)
    state = TrainState.create(_params(), opt)
    new_state, _ = step(state, _data())
    message = r"donated to an earlier call.*make_train_step\(\.\.\., donate=False\)"
    with pytest.raises(ValueError, match=message) as info:
        step(state, _data())
    assert "Buffer" not in str(info.value) and info.value.__cause__ is None
    # only the params reused (a fresh counter): XLA's error is translated too
    with pytest.raises(ValueError, match=message):
        step(state._replace(step=jnp.zeros((), jnp.int32)), _data())
    step(new_state, _data())  # the returned state goes on
    keep = make_train_step(_mse, opt, donate=False)
    state = TrainState.create(_params(), opt)
    a, _ = keep(state, _data())
    b, _ = keep(state, _data())
    assert _bits(a) == _bits(b)


def test_fit_bar_names_the_run_and_counts_a_step_once_computed(capsys):
    """The bar is named by desc and counts step i once its loss is ready (the host waits
    for it while step i + 1 runs): steps/s is the rate of computation, not of dispatch."""
    log = []

    class Loss:
        def __init__(self, k):
            self.k = k

        def __float__(self):
            log.append(("ready", self.k))
            return 1.0

    def step(state, batch):
        log.append(("dispatch", len([e for e in log if e[0] == "dispatch"])))
        return state, {"loss": Loss(log[-1][1])}

    train.fit(step, None, _data(n=12), epochs=1, batch_size=4, shuffle=False, progress=True,
              desc="Adam")
    err = capsys.readouterr().err
    assert "Adam epoch 1/1" in err and "3/3" in err and "step/s" in err
    assert log[:6] == [("dispatch", 0), ("dispatch", 1), ("ready", 0), ("dispatch", 2),
                       ("ready", 1), ("ready", 2)]


def test_optional_dependencies_name_the_train_extra(monkeypatch, tmp_path):
    import sys

    from fnlearn import checkpoint

    extra = r'pip install "fnlearn\[train\]"'
    opt = optax.sgd(0.1)
    for module in ("tqdm", "matplotlib.figure", "orbax.checkpoint"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(ImportError, match=rf"fit\(progress=True\) needs tqdm.*{extra}"):
        train.fit(make_train_step(_mse, opt), TrainState.create(_params(), opt), _data(),
                  epochs=1, batch_size=4, shuffle=False, progress=True)
    # progress=None (a bar only where one can be shown) trains without tqdm
    train.fit(make_train_step(_mse, opt), TrainState.create(_params(), opt), _data(),
              epochs=1, batch_size=4, shuffle=False)
    with pytest.raises(ImportError, match=rf"plot_histories needs matplotlib.*{extra}"):
        train.History(loss=[1.0]).plot(tmp_path / "x.png")
    with pytest.raises(ImportError, match=rf"fnlearn.checkpoint needs orbax.*{extra}"):
        checkpoint.save(tmp_path / "run", {"w": jnp.ones(2)}, key=None, epoch=1)


# -- L-BFGS: its closure re-evaluated inside the step ------------------------------------------


@pytest.mark.parametrize("line_search_fn", [
    None, pytest.param("strong_wolfe", marks=pytest.mark.exhaustive)])
def test_lbfgs_accumulation_is_a_closure_over_the_micro_batches(line_search_fn):
    """With accumulate_steps=K every evaluation L-BFGS makes is the mean loss over the K
    micro-batches and its gradient: the host-driven step whose closure is that mean (f64,
    1e-10; the same counters)."""
    rng = np.random.default_rng(4)
    a, b = jnp.asarray(rng.normal(size=(8, 5))), jnp.asarray(rng.normal(size=8))

    def loss_fn(p, batch):
        x, y = batch
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2) + 0.1 * jnp.sum(p["w"] ** 4)

    def closure(p):  # torch: for each micro-batch, (loss / K).backward()
        return sum(loss_fn(p, (a[2 * k:2 * k + 2], b[2 * k:2 * k + 2])) for k in range(4)) / 4

    opt = fl.optim.lbfgs(max_iter=5, history_size=3, line_search_fn=line_search_fn)
    params = {"b": jnp.zeros(()), "w": jnp.full(5, 0.1)}
    step = make_train_step(loss_fn, opt, accumulate_steps=4)
    state, host_params, host = TrainState.create(params, opt), params, opt.init(params)
    for _ in range(3):
        host_loss, host_params, host = opt.step(closure, host_params, host)
        state, metrics = step(state, (a, b))
        assert float(metrics["loss"]) == pytest.approx(float(host_loss), rel=1e-12)
        for name in params:
            np.testing.assert_allclose(state.params[name], host_params[name], rtol=1e-10,
                                       atol=1e-12)
        assert (int(state.opt_state.func_evals), int(state.opt_state.n_iter)) \
            == (host.func_evals, host.n_iter)


def _log_barrier(p, batch):
    """Finite for x[0] < batch[1] only: L-BFGS's iterations can step into its NaN region."""
    return jnp.sum((p["x"] - batch[0]) ** 2) + jnp.log(batch[1] - p["x"][0])


# the default run: a non-finite first evaluation without the line search, one within the
# iterations with it
@pytest.mark.parametrize(("bad", "line_search_fn"), [
    pytest.param(bad, ls, id=f"{name}-{ls}",
                 marks=() if (name == "nan-first-evaluation") == (ls is None)
                 else pytest.mark.exhaustive)
    for name, bad in (("nan-first-evaluation", (jnp.nan, 2.0)),
                      ("nan-within-the-iterations", (3.0, 2.0)))
    for ls in (None, "strong_wolfe")])
def test_lbfgs_nonfinite_step_is_skipped_bit_identically(line_search_fn, bad):
    """skip_nonfinite with L-BFGS skips a step when the loss or gradient is non-finite at the
    params passed in or at any point its iterations step to: params and the L-BFGS
    state stay bit-identical, and the next finite step is the host-driven step from them."""
    opt = fl.optim.lbfgs(max_iter=5, line_search_fn=line_search_fn)
    step = make_train_step(_log_barrier, opt, skip_nonfinite=True, donate=False)
    good = jnp.asarray([0.5, 2.0])
    state, metrics = step(TrainState.create({"x": jnp.zeros(2)}, opt), good)
    assert not bool(metrics["skipped"])
    before = _bits((state.params, state.opt_state))
    skipped, metrics = step(state, jnp.asarray(bad))
    assert bool(metrics["skipped"]) and int(skipped.skipped) == 1
    assert np.isfinite(float(metrics["loss"])) == (bad[0] == 3.0)  # the first: finite there
    assert _bits((skipped.params, skipped.opt_state)) == before
    after, metrics = step(skipped, good)
    host_loss, host_params, host = opt.step(lambda p: _log_barrier(p, good), state.params,
                                            state.opt_state)
    assert not bool(metrics["skipped"]) and int(after.skipped) == 1
    np.testing.assert_allclose(after.params["x"], host_params["x"], rtol=1e-10)
    assert int(after.opt_state.func_evals) == host.func_evals
