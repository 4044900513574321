"""fnlearn.crosscheck.compare / compare_losses: reports, gradient inputs, planted disagreements."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnlearn.crosscheck as cc
from fnlearn import losses, optim
from fnlearn.crosscheck import _compare

PARAMS = {"w": jnp.linspace(-0.5, 0.5, 6).reshape(2, 3), "b": jnp.zeros(3)}


def test_identical_optimizers_match_exactly():
    r = cc.compare(optax.adam(1e-2), optax.adam(1e-2), PARAMS, steps=12)
    assert r.verdict == "match" and r.agree and r.first_divergence is None
    assert r.max_abs == 0.0 and r.max_rel == 0.0
    assert r.abs_dev.shape == r.rel_dev.shape == (12, 2)
    assert r.leaves == ("['b']", "['w']") and r.steps == 12 and r.dtype == "float64"


def test_planted_rmsprop_eps_inside_sqrt_is_caught_at_the_first_update():
    """fnlearn's RMSprop (torch: eps outside the sqrt) against optax's default placement."""
    planted = optax.rmsprop(1e-2, decay=0.99, eps=1e-8)  # eps_in_sqrt=True
    r = cc.compare(optim.rmsprop(lr=1e-2), planted, PARAMS, steps=10)
    assert r.verdict == "differ" and r.first_divergence == 1
    assert r.max_rel > 1e-6
    fixed = optax.rmsprop(1e-2, decay=0.99, eps=1e-8, eps_in_sqrt=False)
    assert cc.compare(optim.rmsprop(lr=1e-2), fixed, PARAMS, steps=10).verdict == "match"


def test_planted_adagrad_eps_inside_sqrt_is_caught():
    planted = optax.adagrad(1e-2, initial_accumulator_value=0.0, eps=1e-10)
    r = cc.compare(optim.adagrad(lr=1e-2), planted, PARAMS, steps=10, scale=(1e-6, 1e-4))
    assert r.verdict == "differ" and r.first_divergence == 1 and r.max_rel > 1e-3


def test_tolerance_controls_the_verdict():
    a, b = optax.sgd(1.0), optax.sgd(1.0 + 1e-8)
    strict = cc.compare(a, b, PARAMS, steps=3)
    loose = cc.compare(a, b, PARAMS, steps=3, rtol=1e-6)
    assert strict.verdict == "differ" and loose.verdict == "match"
    np.testing.assert_allclose(strict.max_rel, 1e-8, rtol=1e-6)


def test_float64_runs_in_float64_even_with_x64_disabled():
    a, b = optax.sgd(1.0), optax.sgd(1.0 + 1e-9)  # indistinguishable in float32
    with jax.enable_x64(False):
        r64 = cc.compare(a, b, {"w": np.zeros(3)}, steps=2)
        r32 = cc.compare(a, b, {"w": np.zeros(3)}, steps=2, dtype="float32")
    assert r64.verdict == "differ" and r32.verdict == "match" and r32.dtype == "float32"


def test_gradient_sequence_forms_agree():
    """Generated, stacked and callable gradients give the same run."""
    steps = 6
    grads = cc.make_grads(PARAMS, steps, key=3)
    assert jax.tree.map(jnp.shape, grads) == {"w": (6, 2, 3), "b": (6, 3)}
    a, b = optax.sgd(0.1, momentum=0.9), optax.sgd(0.1)
    gen = cc.compare(a, b, PARAMS, steps=steps, key=3)
    stacked = cc.compare(a, b, PARAMS, grads=grads)
    call = cc.compare(a, b, PARAMS, steps=steps,
                      grads=lambda k: jax.tree.map(lambda g: g[k], grads))
    assert stacked.steps == steps
    np.testing.assert_array_equal(gen.abs_dev, stacked.abs_dev)
    np.testing.assert_array_equal(gen.abs_dev, call.abs_dev)
    head = cc.compare(a, b, PARAMS, grads=grads, steps=2)
    np.testing.assert_array_equal(head.abs_dev, gen.abs_dev[:2])


def test_seed_and_scale_change_the_gradients():
    g0, g1 = cc.make_grads(PARAMS, 50, key=0), cc.make_grads(PARAMS, 50, key=1)
    assert not np.array_equal(g0["w"], g1["w"])
    small = cc.make_grads(PARAMS, 50, key=0, scale=(1e-3, 1e-3))
    np.testing.assert_allclose(np.std(small["w"]), 1e-3, rtol=0.3)


@pytest.mark.parametrize(
    "grads, steps, match",
    [
        ({"w": np.zeros((4, 2, 3))}, None, "tree structure"),
        ({"w": np.zeros((4, 3, 2)), "b": np.zeros((4, 3))}, None, "expected"),
        ({"w": np.zeros((4, 2, 3)), "b": np.zeros((5, 3))}, None, "same number"),
        ({"w": np.zeros((4, 2, 3)), "b": np.zeros((4, 3))}, 5, "grads hold 4 steps"),
    ],
    ids=["missing-leaf", "wrong-shape", "ragged-steps", "too-many-steps"],
)
def test_bad_grads_raise(grads, steps, match):
    with pytest.raises(ValueError, match=match):
        cc.compare(optax.sgd(0.1), optax.sgd(0.1), PARAMS, grads=grads, steps=steps)


def test_bad_arguments_raise():
    with pytest.raises(TypeError, match="b must be an optax/fnlearn GradientTransformation"):
        cc.compare(optax.sgd(0.1), "adam", PARAMS)
    with pytest.raises(ValueError, match="dtype must be"):
        cc.compare(optax.sgd(0.1), optax.sgd(0.1), PARAMS, dtype="int32")
    with pytest.raises(TypeError, match="floating"):
        cc.compare(optax.sgd(0.1), optax.sgd(0.1), {"n": jnp.arange(3)})


def test_report_prints_and_serialises():
    r = cc.compare(optim.adam(amsgrad=True), optax.amsgrad(1e-3), PARAMS, steps=20,
                   names=("fnlearn adam(amsgrad)", "optax.amsgrad"))
    text = str(r)
    assert "a: fnlearn adam(amsgrad)" in text and "b: optax.amsgrad" in text
    assert f"differ from update {r.first_divergence}" in text and "['w']" in text
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["verdict"] == "differ" and d["first_divergence"] == r.first_divergence
    assert len(d["abs_dev"]) == 20 and len(d["abs_dev"][0]) == 2
    assert d["max_rel"] == pytest.approx(r.max_rel)


def test_deviation_treats_nan_at_the_same_place_as_agreement():
    a = np.array([np.nan, 1.0, np.inf, 2.0])
    b = np.array([np.nan, 1.5, np.inf, np.nan])
    np.testing.assert_array_equal(_compare._deviation(a, b), [0.0, 0.5, 0.0, np.inf])
    assert _compare._num(np.inf) == "inf" and _compare._num(1.5) == 1.5


# --------------------------------------------------------------------------------------------
# losses

X = np.random.default_rng(0).standard_normal((6, 5))
Y = np.array([0, -100, 2, 3, -100, 1])
W = np.array([0.5, 1.0, 2.0, 1.5, 0.7])


def _smoothed_ce_reference(x, y, weight, eps):
    """torch's weighted, ignoring, label-smoothed mean (torch-semantics 1.5), written out."""
    lp = jax.nn.log_softmax(x, axis=1)
    valid = y != -100
    yc = jnp.where(valid, y, 0)
    w_y = jnp.where(valid, weight[yc], 0.0)
    nll = -jnp.take_along_axis(lp, yc[:, None], axis=1)[:, 0]
    smooth = jnp.where(valid, -(lp * weight[None, :]).sum(1), 0.0)
    denom = w_y.sum()
    return (1 - eps) * (w_y * nll).sum() / denom + eps / x.shape[1] * smooth.sum() / denom


def _planted_ce(x, y, weight, eps):
    """A plausible bug: the smoothing term averaged over every row, ignored ones included."""
    lp = jax.nn.log_softmax(x, axis=1)
    nll = losses.cross_entropy(x, y, weight=weight)
    return (1 - eps) * nll + eps / x.shape[1] * (-(lp * weight[None, :]).sum(1)).mean()


def test_label_smoothing_mean_over_ignored_targets_is_caught():
    def fl_ce(x, y, w):
        return losses.cross_entropy(x, y, weight=w, label_smoothing=0.2)

    good = cc.compare_losses(fl_ce, lambda x, y, w: _smoothed_ce_reference(x, y, w, 0.2), X, Y, W)
    bad = cc.compare_losses(fl_ce, lambda x, y, w: _planted_ce(x, y, w, 0.2), X, Y, W)
    assert good.verdict == "match" and good.quantities == ("value", "grad[0]")
    assert bad.verdict == "differ" and not bad.ok[0] and not bad.ok[1]
    # without ignored targets the planted version is right: the check needs them
    y_all = np.array([0, 4, 2, 3, 1, 1])
    ones = np.ones(5)
    same = cc.compare_losses(lambda x, y, w: losses.cross_entropy(x, y, label_smoothing=0.2),
                             lambda x, y, w: _planted_ce(x, y, w, 0.2), X, y_all, ones)
    assert same.verdict == "match"


def test_nan_values_in_the_same_place_agree():
    """torch's 'mean' over all-ignored targets is nan (0/0) with zero gradients."""
    y = np.full(6, -100)
    r = cc.compare_losses(losses.cross_entropy, lambda x, y: jnp.nan + 0.0 * x.sum(), X, y)
    assert r.verdict == "match", str(r)
    # a naive masked mean gets the nan value right but a nan gradient (torch's is 0)
    naive = cc.compare_losses(losses.cross_entropy, _smoothed_ce_reference_unweighted, X, y)
    assert naive.ok == (True, False)


def _smoothed_ce_reference_unweighted(x, y):
    return _smoothed_ce_reference(x, y, jnp.ones(x.shape[1], x.dtype), 0.0)


def test_unreduced_losses_use_a_cotangent_and_every_wrt_input():
    x1, x2 = np.random.default_rng(1).standard_normal((2, 4, 3))

    def mine(a, b):
        return losses.mse_loss(a, b, reduction="none")

    r = cc.compare_losses(mine, optax.losses.squared_error, x1, x2, wrt=(0, 1))
    assert r.verdict == "match" and r.quantities == ("value", "grad[0]", "grad[1]")
    wrong = cc.compare_losses(mine, lambda a, b: optax.losses.l2_loss(a, b), x1, x2)
    assert wrong.verdict == "differ"
    scalar = cc.compare_losses(mine, lambda a, b: optax.losses.squared_error(a, b).mean(), x1, x2)
    assert scalar.verdict == "differ" and "shapes differ" in scalar.note


def test_loss_report_prints_and_serialises():
    r = cc.compare_losses(losses.huber_loss, lambda x, y: optax.losses.huber_loss(x, y).mean(),
                          X, X[::-1], dtype="float32", names=("fnlearn", "optax"))
    assert r.verdict == "match" and r.dtype == "float32" and r.grad_rtol == 2e-5
    assert "a: fnlearn" in str(r) and "grad[0]" in str(r)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["kind"] == "loss" and [q["name"] for q in d["quantities"]] == ["value", "grad[0]"]


def test_compare_losses_bad_arguments():
    with pytest.raises(ValueError, match="wrt index 3"):
        cc.compare_losses(losses.mse_loss, losses.mse_loss, X, X, wrt=(3,))
    with pytest.raises(TypeError, match="must index floating array inputs"):
        cc.compare_losses(losses.cross_entropy, losses.cross_entropy, X, Y, wrt=(1,))
    with pytest.raises(TypeError, match="fn_b must be callable"):
        cc.compare_losses(losses.mse_loss, None, X, X)
