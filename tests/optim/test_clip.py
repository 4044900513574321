"""Gradient clipping with torch.nn.utils semantics: a numpy oracle of torch's formulas
(torch itself: test_clip_live_torch.py), edge values, the transformations, and the
documented differences with optax.clip_by_global_norm / optax.clip."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn import optim
from fnlearn.optim import (
    clip_grad_norm,
    clip_grad_norm_transform,
    clip_grad_value,
    clip_grad_value_transform,
    clip_grads_with_norm,
    get_total_norm,
)


def _tree(rng, dtype=np.float64, scale=1.0):
    return {
        "a": jnp.asarray(rng.standard_normal((3, 4)) * scale, dtype),
        "b": [jnp.asarray(rng.standard_normal(5) * scale, dtype),
              jnp.asarray(rng.standard_normal(()) * scale, dtype)],
    }


def _np_norm(x, p):
    x = np.abs(np.ravel(x))
    if p == np.inf:
        return x.max()
    if p == -np.inf:
        return x.min()
    if p == 0:
        return float(np.count_nonzero(x))
    return np.sum(x**p) ** (1 / p)


def _torch_formula(tree, max_norm, p):
    """torch's clip_grad_norm_ in numpy: norm of the per-tensor norms, then every grad times
    min(max_norm / (norm + 1e-6), 1)."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(tree)]
    total = _np_norm(np.array([_np_norm(x, p) for x in leaves]), p)
    coef = min(max_norm / (total + 1e-6), 1.0)
    return [x * coef for x in leaves], total


NORM_TYPES = [2.0, 1.0, float("inf"), "inf", 3.5, 0.5, 0.0, -1.0, float("-inf")]


@pytest.mark.parametrize("norm_type", NORM_TYPES, ids=[str(p) for p in NORM_TYPES])
def test_clip_grad_norm_matches_torch_formula(norm_type):
    rng = np.random.default_rng(0)
    p = float(norm_type)
    for scale, max_norm in ((1.0, 0.5), (0.01, 100.0), (3.0, 2.0)):
        tree = _tree(rng, scale=scale)
        clipped, total = clip_grad_norm(tree, max_norm, norm_type)
        want, want_total = _torch_formula(tree, max_norm, p)
        assert total.dtype == jnp.float64 and total.shape == ()
        np.testing.assert_allclose(float(total), want_total, rtol=1e-12)
        for got, w in zip(jax.tree.leaves(clipped), want, strict=True):
            np.testing.assert_allclose(np.asarray(got), w, rtol=1e-12, atol=1e-300)
        assert jax.tree.structure(clipped) == jax.tree.structure(tree)


def test_total_norm_is_before_clipping_and_clipped_norm_is_slightly_below_max():
    tree = {"w": jnp.array([3.0, 4.0], jnp.float64)}
    clipped, total = clip_grad_norm(tree, 1.0)
    assert float(total) == 5.0
    assert float(get_total_norm(clipped)) == pytest.approx(5.0 / (5.0 + 1e-6), rel=1e-14)


def test_clipping_is_active_just_below_max_norm():
    """No branch: the coefficient max_norm / (norm + 1e-6) < 1 already when the norm is up to
    1e-6 below max_norm."""
    tree = {"w": jnp.array([3.0, 4.0], jnp.float64)}
    clipped, _ = clip_grad_norm(tree, 5.0 + 1e-7)
    coef = float(clipped["w"][0]) / 3.0
    assert coef == pytest.approx((5.0 + 1e-7) / (5.0 + 1e-6), rel=1e-14)
    assert coef < 1.0
    unclipped, _ = clip_grad_norm(tree, 5.1)
    assert float(unclipped["w"][0]) == 3.0


def test_nonfinite_grads_without_error():
    g = {"a": jnp.array([1.0, jnp.nan]), "b": jnp.array([2.0])}
    clipped, total = clip_grad_norm(g, 1.0)
    assert np.isnan(float(total)) and np.all(np.isnan(np.asarray(clipped["b"])))
    g = {"a": jnp.array([1.0, jnp.inf]), "b": jnp.array([2.0])}
    clipped, total = clip_grad_norm(g, 1.0)
    assert float(total) == np.inf
    assert float(clipped["b"][0]) == 0.0 and float(clipped["a"][0]) == 0.0
    assert np.isnan(float(clipped["a"][1]))


TORCH_MESSAGE = (
    "The total norm of order 2.0 for gradients from `parameters` is non-finite, so it cannot be "
    "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
    "`error_if_nonfinite=False`"
)


def test_error_if_nonfinite_raises_eagerly_with_torchs_message():
    g = {"a": jnp.array([1.0, jnp.nan])}
    with pytest.raises(RuntimeError) as info:
        clip_grad_norm(g, 1.0, error_if_nonfinite=True)
    assert str(info.value) == TORCH_MESSAGE
    with pytest.raises(RuntimeError, match="order inf"):
        clip_grad_norm({"a": jnp.array([jnp.inf])}, 1.0, "inf", error_if_nonfinite=True)
    clipped, _ = clip_grad_norm({"a": jnp.array([3.0])}, 1.0, error_if_nonfinite=True)
    assert float(clipped["a"][0]) == pytest.approx(1.0, rel=1e-6)


def test_error_if_nonfinite_under_jit_is_a_clean_error_at_trace_time():
    """Compiled code cannot raise: under jit the request is refused when traced, with a
    TypeError that says what to do (never XLA's CpuCallback error with torch's message
    buried), and the check after the jitted call works as the message says."""
    f = jax.jit(lambda g: clip_grad_norm(g, 1.0, error_if_nonfinite=True))
    with pytest.raises(TypeError, match="error_if_nonfinite=False and check the returned"):
        f({"a": jnp.array([3.0, 4.0])})
    with pytest.raises(TypeError, match="traced"):
        jax.vmap(lambda g: clip_grad_norm(g, 1.0, error_if_nonfinite=True))(jnp.ones((2, 3)))
    g = jax.jit(lambda g: clip_grad_norm(g, 1.0))
    _, total = g({"a": jnp.array([3.0, jnp.nan])})
    assert not bool(jnp.isfinite(total))


def test_empty_tree_and_none_leaves():
    clipped, total = clip_grad_norm({}, 1.0)
    assert clipped == {} and float(total) == 0.0 and total.dtype == jnp.float32
    # None leaves (params without a gradient) are skipped, as torch skips .grad is None
    clipped, total = clip_grad_norm({"a": jnp.array([3.0, 4.0]), "b": None}, 10.0)
    assert float(total) == 5.0 and clipped["b"] is None


def test_dtypes():
    rng = np.random.default_rng(1)
    # one program per tree (dtypes are the same under jit), not one per op and leaf shape
    both = jax.jit(lambda tree: (clip_grad_norm(tree, 1.0), clip_grad_value(tree, 0.5)))
    for dtype in (jnp.bfloat16, jnp.float32):
        tree = _tree(rng, dtype, scale=5.0)
        (clipped, total), by_value = both(tree)
        assert total.dtype == jnp.float32  # never below float32
        assert all(x.dtype == dtype for x in jax.tree.leaves(clipped))
        assert by_value["a"].dtype == dtype
    mixed = {"f32": jnp.ones(3, jnp.float32), "f64": jnp.ones(4, jnp.float64)}
    clipped, total = jax.jit(clip_grad_norm, static_argnums=1)(mixed, 1.0)
    assert total.dtype == jnp.float64 and float(total) == pytest.approx(np.sqrt(7.0))
    assert clipped["f32"].dtype == jnp.float32 and clipped["f64"].dtype == jnp.float64


def test_clip_grads_with_norm_and_get_total_norm_compose_to_clip_grad_norm():
    tree = _tree(np.random.default_rng(2), scale=2.0)
    total = get_total_norm(tree, 1.0)
    clipped = clip_grads_with_norm(tree, 0.3, total)
    expected, expected_total = clip_grad_norm(tree, 0.3, 1.0)
    assert float(total) == float(expected_total)
    for a, b in zip(jax.tree.leaves(clipped), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_clip_grad_value_equals_optax_clip():
    tree = _tree(np.random.default_rng(3), scale=2.0)
    tree["b"][0] = tree["b"][0].at[1].set(jnp.nan)
    ours = clip_grad_value(tree, 0.7)
    theirs, _ = optax.clip(0.7).update(tree, optax.clip(0.7).init(tree))
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.isnan(float(ours["b"][0][1]))
    assert float(jnp.max(jnp.abs(ours["a"]))) == pytest.approx(0.7)


def test_optax_clip_by_global_norm_differs_by_the_1e_6():
    """optax scales by max_norm / norm only when norm >= max_norm; torch by
    max_norm / (norm + 1e-6) always: relative difference 1e-6 / norm when clipping."""
    tree = _tree(np.random.default_rng(4), scale=0.5)
    tx = optax.clip_by_global_norm(0.1)
    theirs, _ = tx.update(tree, tx.init(tree))
    ours, total = clip_grad_norm(tree, 0.1)
    ratio = np.asarray(ours["a"]) / np.asarray(theirs["a"])
    np.testing.assert_allclose(ratio, float(total) / (float(total) + 1e-6), rtol=1e-12)
    assert np.all(ratio < 1.0)
    # no clipping (norm << max_norm): identical
    tx = optax.clip_by_global_norm(1e3)
    theirs, _ = tx.update(tree, tx.init(tree))
    ours, _ = clip_grad_norm(tree, 1e3)
    np.testing.assert_array_equal(np.asarray(ours["a"]), np.asarray(theirs["a"]))


def test_optax_clip_by_global_norm_max_norm_zero_is_nan_torch_is_zero():
    zeros = {"w": jnp.zeros(3)}
    tx = optax.clip_by_global_norm(0.0)
    theirs, _ = tx.update(zeros, tx.init(zeros))
    ours, total = clip_grad_norm(zeros, 0.0)
    assert np.all(np.isnan(np.asarray(theirs["w"])))
    assert float(total) == 0.0 and np.all(np.asarray(ours["w"]) == 0.0)


def test_clip_transform_in_a_chain_equals_clip_then_step():
    params = {"w": jnp.array([1.0, -1.0]), "b": jnp.array([0.5])}
    grads = {"w": jnp.array([3.0, 4.0]), "b": jnp.array([12.0])}
    opt = optax.chain(clip_grad_norm_transform(2.0, norm_type=1.0), optim.sgd(lr=0.1, momentum=0.9))
    state = opt.init(params)
    assert float(state[0].total_norm) == 0.0
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(None)
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    manual_opt = optim.sgd(lr=0.1, momentum=0.9)
    manual_params, manual_state = params, manual_opt.init(params)
    for _ in range(3):
        params, state = step(params, state)
        clipped, norm = clip_grad_norm(grads, 2.0, 1.0)
        updates, manual_state = manual_opt.update(clipped, manual_state, manual_params)
        manual_params = optim.apply_updates(manual_params, updates)
        assert float(state[0].total_norm) == pytest.approx(float(norm)) == pytest.approx(19.0)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(manual_params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    assert len(traces) == 1


def test_clip_transforms_under_inject_hyperparams():
    """max_norm / clip_value may be traced run-time hyperparameters."""
    grads = {"w": jnp.array([3.0, 4.0])}
    with pytest.raises(ValueError, match="static_args=\\('norm_type',\\)"):
        tx = optax.inject_hyperparams(clip_grad_norm_transform)(max_norm=1.0)
        jax.jit(tx.update)(grads, tx.init(grads))
    tx = optax.inject_hyperparams(clip_grad_norm_transform, static_args=("norm_type",))(
        max_norm=1.0)
    state = tx.init(grads)
    out, state = jax.jit(tx.update)(grads, state)
    np.testing.assert_allclose(np.asarray(out["w"]), [0.6, 0.8], rtol=1e-5)
    state.hyperparams["max_norm"] = jnp.asarray(2.5, state.hyperparams["max_norm"].dtype)
    out, state = jax.jit(tx.update)(grads, state)
    np.testing.assert_allclose(np.asarray(out["w"]), [1.5, 2.0], rtol=1e-5)
    tx = optax.inject_hyperparams(clip_grad_value_transform)(clip_value=3.5)
    out, _ = jax.jit(tx.update)(grads, tx.init(grads))
    np.testing.assert_array_equal(np.asarray(out["w"]), [3.0, 3.5])


BAD = [
    ("max_norm", lambda: clip_grad_norm({"w": jnp.ones(2)}, -1.0), ValueError, "max_norm"),
    ("max_norm-nan", lambda: clip_grad_norm_transform(float("nan")), ValueError, "max_norm"),
    ("norm_type-str", lambda: clip_grad_norm({"w": jnp.ones(2)}, 1.0, "fro"), ValueError,
     "norm_type"),
    ("norm_type-nan", lambda: clip_grad_norm_transform(1.0, float("nan")), ValueError,
     "norm_type"),
    ("clip_value", lambda: clip_grad_value({"w": jnp.ones(2)}, -0.5), ValueError, "clip_value"),
    ("clip_value-transform", lambda: clip_grad_value_transform(-1), ValueError, "clip_value"),
]


@pytest.mark.parametrize(("name", "build", "error", "match"), BAD, ids=[b[0] for b in BAD])
def test_bad_arguments_raise(name, build, error, match):
    with pytest.raises(error, match=match):
        build()
