"""fnlearn.flat: parameters as one buffer per dtype give the same numbers as the tree.

The fast path of the performance issue must not change results: every optimizer case of every
table, run on a :class:`Flat` and on the tree it holds, gives the same params and state up to
float round-off (XLA compiles the two layouts into different fusions and may contract a
``a * b + c`` into an FMA in one and not the other: a last-bit difference, nothing more), for
f64, f32 and bf16 leaves mixed in one tree; gradients with respect to a ``Flat`` are the
concatenated tree gradients; the layout survives jit, donation and optax.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn import optim
from fnlearn.flat import Flat, unpadded
from tests._tiers import one_in
from tests.optim.cases import all_cases, make


def _tree(seed: int, dtypes=("float32", "float32", "bfloat16")) -> dict:
    rng = np.random.default_rng(seed)
    shapes = {"conv": (2, 3, 2), "bias": (3,), "scale": (4,), "empty": (0,), "w": (5, 2)}
    kinds = dict(zip(shapes, [dtypes[0], dtypes[1], dtypes[2], dtypes[0], dtypes[0]],
                     strict=True))
    return {k: jnp.asarray(rng.standard_normal(s), kinds[k]) for k, s in shapes.items()}


def _loss(tree) -> jax.Array:
    return sum(jnp.sum(jnp.sin(x.astype(jnp.float32)) + x.astype(jnp.float32) ** 2)
               for x in jax.tree.leaves(tree))


#: module level, so that every test (and parametrization) shares its compiles
_flat_grad = jax.jit(jax.grad(lambda f: _loss(f.tree())))
_NORMS = (-float("inf"), -1.0, 0.5, 1.0, 2.0, "inf")


@jax.jit
def _norms(g, leaves):
    """``get_total_norm`` of a Flat and of its leaves, for each p of ``_NORMS``."""
    return [(optim.get_total_norm(g, p), optim.get_total_norm(leaves, p)) for p in _NORMS]


def _is_flat(x) -> bool:
    return isinstance(x, Flat)


def _assert_roundoff(actual, desired, msg):
    """Equal up to a few units in the last place of the dtype."""
    assert actual.dtype == desired.dtype, msg
    if not jnp.issubdtype(desired.dtype, jnp.floating):
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(desired), err_msg=msg)
        return
    ulps = {"float64": 2e-15, "float32": 1e-6, "bfloat16": 1.6e-2}[jnp.dtype(desired.dtype).name]
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(desired, np.float64),
                               rtol=ulps, atol=ulps * 1e-3, err_msg=msg)


def test_roundtrip_keeps_structure_shapes_dtypes_and_values():
    tree = _tree(0, ("float64", "float32", "bfloat16"))
    flat = Flat.of(tree)
    # one buffer per dtype, in order of first appearance in jax.tree leaf order
    assert flat.layout.groups == ("float32", "float64", "bfloat16")
    assert [b.dtype.name for b in flat.buffers] == list(flat.layout.groups)
    assert flat.size == sum(x.size for x in jax.tree.leaves(tree))
    back = flat.tree()
    assert jax.tree.structure(back) == jax.tree.structure(tree)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(tree), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a, np.float64), np.asarray(b, np.float64))
    assert jax.tree.structure(flat.like(tree)) == jax.tree.structure(flat)


def test_gradient_wrt_flat_is_the_concatenated_tree_gradient():
    tree = _tree(1)
    g_flat = _flat_grad(Flat.of(tree))
    g_tree = jax.jit(jax.grad(_loss))(tree)
    assert isinstance(g_flat, Flat)
    for a, b in zip(jax.tree.leaves(g_flat.tree()), jax.tree.leaves(g_tree), strict=True):
        np.testing.assert_array_equal(np.asarray(a, np.float64), np.asarray(b, np.float64))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="no array leaves"):
        Flat.of({})
    flat = Flat.of({"a": jnp.ones(3)})
    with pytest.raises(ValueError, match="does not match this layout"):
        flat.like({"a": jnp.ones(4)})


_OPTIMIZERS = sorted({case.name for _, case in all_cases()})


@pytest.mark.parametrize(("name", "dtypes"), [  # by default every third optimizer, in float64
    *one_in(3, 0, [pytest.param(n, ("float64",) * 3, id=f"{n}-f64") for n in _OPTIMIZERS]),
    *[pytest.param(n, ("float32", "float32", "bfloat16"), id=f"{n}-f32+bf16",
                   marks=pytest.mark.exhaustive) for n in _OPTIMIZERS]])
def test_every_optimizer_gives_the_same_numbers_on_flat_and_tree(name, dtypes):
    """Each optimizer's case with the most options."""
    tree0 = _tree(2, dtypes)
    richest = {name: _richest()[name]}
    for table, case in richest.values():
        opt = make(table, case, "float64" if dtypes[0] == "float64" else "float32")

        def run(params, opt=opt):
            state = opt.init(params)
            for k in range(3):
                grads = jax.grad(lambda p, k=k: _loss(p.tree() if isinstance(p, Flat) else p)
                                 * (1.0 + k))(params)
                updates, state = opt.update(grads, state, params)
                params = optim.apply_updates(params, updates)
            return params, state

        p_tree, s_tree = jax.jit(run)(tree0)
        p_flat, s_flat = jax.jit(run)(Flat.of(tree0))
        for a, b in zip(jax.tree.leaves(p_flat.tree()), jax.tree.leaves(p_tree), strict=True):
            assert a.dtype == b.dtype, case.id
            _assert_roundoff(a, b, case.id)
        # state: the same values, parameter by parameter; every per-parameter buffer of an
        # elementwise optimizer is a Flat in the params' layout (Adafactor's factors are per
        # parameter, so it keeps one array per parameter)
        as_tree = jax.tree.map(lambda x: x.tree() if isinstance(x, Flat) else x, s_flat,
                               is_leaf=_is_flat)
        assert jax.tree.structure(as_tree) == jax.tree.structure(s_tree), case.id
        for x, y in zip(jax.tree.leaves(as_tree), jax.tree.leaves(s_tree), strict=True):
            _assert_roundoff(x, y, case.id)
        if case.name != "adafactor":
            assert all(_is_flat(x) or jnp.ndim(x) == 0
                       for x in jax.tree.leaves(s_flat, is_leaf=_is_flat)), case.id


def test_donated_jitted_step_with_optax_and_clipping():
    tree = _tree(3)
    tx = optax.chain(optim.clip_grad_norm_transform(1.0), optax.sgd(1e-2, momentum=0.9))
    ref_tx = optax.chain(optim.clip_grad_norm_transform(1.0), optax.sgd(1e-2, momentum=0.9))

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state):
        grads = jax.grad(lambda f: _loss(f.tree()))(params)
        updates, state = tx.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    @jax.jit  # the tree's step, one compile
    def ref_step(ref, ref_state):
        u, ref_state = ref_tx.update(jax.grad(_loss)(ref), ref_state, ref)
        return optim.apply_updates(ref, u), ref_state

    params = Flat.of(tree)
    state = tx.init(params)
    ref, ref_state = tree, ref_tx.init(tree)
    for _ in range(3):
        params, state = step(params, state)
        ref, ref_state = ref_step(ref, ref_state)
    for a, b in zip(jax.tree.leaves(params.tree()), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                   rtol=1e-6, atol=1e-6)


def test_train_step_on_flat_params_matches_the_tree():
    from fnlearn import losses, train

    rng = np.random.default_rng(4)
    params = {"w": jnp.asarray(rng.standard_normal((4, 3)), jnp.float32),
              "b": jnp.zeros(3, jnp.float32), "s": jnp.full((3,), 0.5, jnp.float32)}
    x = jnp.asarray(rng.standard_normal((6, 4)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, 6))

    def loss_fn(p, batch):
        return losses.cross_entropy((batch[0] @ p["w"] + p["b"][None]) * p["s"][None], batch[1])

    opt = optim.adamw(1e-2)
    step = train.make_train_step(loss_fn, opt, accumulate_steps=2, skip_nonfinite=True)
    states = {flat: train.TrainState.create(params, opt, flat=flat)
              for flat in (False, True)}
    assert isinstance(states[True].params, Flat)
    for _ in range(3):
        states = {k: step(s, (x, y))[0] for k, s in states.items()}
    for a, b in zip(jax.tree.leaves(states[True].params.tree()),
                    jax.tree.leaves(states[False].params), strict=True):
        _assert_roundoff(a, b, "train step")
    assert int(states[True].step) == 3 and int(states[True].skipped) == 0
    ev = train.make_eval_step(loss_fn)
    np.testing.assert_allclose(float(ev(states[True].params, (x, y))["loss"]),
                               float(ev(states[False].params, (x, y))["loss"]), rtol=1e-6)


def test_padding_is_zeros_that_no_view_reads():
    tree = _tree(5, ("float64", "float32", "float64"))  # float32: 3 elements, float64: 26
    flat = Flat.of(tree, multiple=4)
    assert [b.shape[0] for b in flat.buffers] == [4, 28] and flat.layout.multiple == 4
    assert flat.size == Flat.of(tree).size == 29
    assert all(not np.any(np.asarray(b)[u:]) for b, u in
               zip(flat.buffers, (3, 26), strict=True))
    for a, b in zip(jax.tree.leaves(flat.tree()), jax.tree.leaves(tree), strict=True):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert flat.like(tree).layout == flat.layout
    plain = unpadded({"p": flat, "n": 3})
    assert plain["p"].layout == Flat.of(tree).layout and plain["n"] == 3
    assert [b.shape[0] for b in plain["p"].buffers] == [3, 26]
    assert plain["p"].padded(4).layout == flat.layout and flat.padded(4) is flat
    g = _flat_grad(flat)
    assert not np.any(np.asarray(g.buffers[0])[3:]) and not np.any(np.asarray(g.buffers[1])[26:])
    with pytest.raises(ValueError, match="multiple must be a positive integer"):
        Flat.of(tree, multiple=0)


def _richest() -> dict:
    """Each optimizer's case with the most options."""
    richest = {}
    for table, case in all_cases():
        if case.name not in richest or len(case.kwargs) > len(richest[case.name][1].kwargs):
            richest[case.name] = (table, case)
    return richest


#: the default run's risks of a padded tail: a nonzero initial state in it (adagrad's
#: accumulator; also rprop's step sizes, adamax's eps floor), a division by a zero second
#: moment (adam; also rmsprop), an average of the params (asgd), a rule on whole parameters
#: (adafactor)
PADDING_DEFAULT = ("adagrad", "adam", "asgd", "adafactor")


@pytest.mark.parametrize("name", [  # the others in the exhaustive tier
    pytest.param(n, marks=() if n in PADDING_DEFAULT else pytest.mark.exhaustive)
    for n in _OPTIMIZERS])
def test_padding_changes_no_number_of_any_optimizer_or_norm(name):
    """Optimizers on a padded Flat: the same numbers as unpadded, the tail still zero."""
    tree0 = _tree(6, ("float64",) * 3)  # 29 elements: 3 of padding to a multiple of 4
    richest = {name: _richest()[name]}

    def run(opt, params):
        state = opt.init(params)
        for k in range(3):
            grads = jax.grad(lambda p, k=k: _loss(p.tree()) * (1.0 + k))(params)
            updates, state = opt.update(grads, state, params)
            params = optim.apply_updates(params, updates)
        return params, state

    for table, case in richest.values():
        opt = make(table, case, "float64")
        p_pad, s_pad = jax.jit(partial(run, opt))(Flat.of(tree0, multiple=4))
        p_ref, s_ref = jax.jit(partial(run, opt))(Flat.of(tree0))
        assert not np.any(np.asarray(p_pad.buffers[0])[29:]), case.id
        for x, y in zip(jax.tree.leaves(unpadded((p_pad, s_pad))),
                        jax.tree.leaves((p_ref, s_ref)), strict=True):
            _assert_roundoff(x, y, case.id)
    g = _flat_grad(Flat.of(tree0, multiple=4))
    leaves = {k: v for k, v in g.tree().items() if v.size}  # min of an empty leaf: undefined
    # p = 0 counts the nonzero per-buffer norms (torch's norm of norms), not per parameter
    for of_flat, of_leaves in _norms(g, leaves):
        np.testing.assert_allclose(of_flat, of_leaves, rtol=1e-14)


def test_padding_is_never_saved_nor_converted(tmp_path):
    from fnlearn import checkpoint, train
    from fnlearn.interop.torch import OptimizerSpec, optimizer_to_torch

    tree = _tree(7, ("float64",) * 3)
    opt = optim.adam(1e-2)
    padded = train.TrainState.create(Flat.of(tree, multiple=4), opt)
    checkpoint.save(tmp_path, padded, key=None, epoch=1)
    plain = train.TrainState.create(tree, opt, flat=True)
    for like in (plain, padded):  # restores onto either padding (any number of devices)
        state = checkpoint.restore(tmp_path, like).state
        assert jax.tree.structure(state) == jax.tree.structure(like)
        assert [b.shape for b in state.params.buffers] == [b.shape for b in like.params.buffers]
    sd = optimizer_to_torch(OptimizerSpec("Adam", ({"lr": 1e-2},)), padded.opt_state,
                            padded.params, numpy=True)
    assert sd["state"] == {}  # step 0: torch keeps no state yet; names match the tree's
