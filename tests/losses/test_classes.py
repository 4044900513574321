"""The torch.nn-style loss classes: class form equals function form, options validated at
construction, immutability, attribute access, jit closure. (Signatures against torch:
test_live_torch.py.)"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit, log_softmax, softmax

from fnlearn import losses as L
from tests._tiers import one_in

# numpy first, then device arrays: module-level jnp work would compile programs at collection
rng = np.random.default_rng(3)
_x, _y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
X, Y = jnp.asarray(_x), jnp.asarray(_y)
Z = jnp.asarray(rng.standard_normal((4, 3)))
PROB = jnp.asarray(expit(_x))
BINARY = jnp.asarray(rng.integers(0, 2, (4, 3)).astype(np.float64))
_signs = rng.choice([-1.0, 1.0], (4, 3))
SIGNS, SIGN4 = jnp.asarray(_signs), jnp.asarray(_signs[:, 0])
LABELS = jnp.asarray([0, 2, 1, 2])
W3, W3X2 = jnp.asarray([0.5, 1.0, 2.0]), jnp.asarray([1.0, 2.0, 4.0])
_var = rng.uniform(0.2, 2.0, (4, 3))
VAR = jnp.asarray(_var)
MULTI = jnp.asarray([[0, 2, -1], [1, -1, 0], [2, 1, 0], [-1, 0, 0]])


# class, constructor options, function, function options, call arguments
CASES = [
    (L.MSELoss, {"reduction": "sum"}, L.mse_loss, {}, (X, Y)),
    (L.L1Loss, {"reduction": "none"}, L.l1_loss, {}, (X, Y)),
    (L.SmoothL1Loss, {"beta": 0.5}, L.smooth_l1_loss, {}, (X, Y)),
    (L.HuberLoss, {"reduction": "sum", "delta": 0.3}, L.huber_loss, {}, (X, Y)),
    (L.BCELoss, {"weight": W3}, L.binary_cross_entropy, {}, (PROB, BINARY)),
    (L.BCEWithLogitsLoss, {"weight": W3, "pos_weight": W3X2},
     L.binary_cross_entropy_with_logits, {}, (X, BINARY)),
    (L.CrossEntropyLoss, {"weight": W3, "ignore_index": 1, "label_smoothing": 0.2},
     L.cross_entropy, {}, (X, LABELS)),
    (L.NLLLoss, {"weight": W3, "reduction": "sum"}, L.nll_loss, {},
     (jnp.asarray(log_softmax(_x, axis=1)), LABELS)),
    (L.KLDivLoss, {"reduction": "batchmean", "log_target": True}, L.kl_div, {},
     (jnp.asarray(log_softmax(_x, axis=1)), jnp.asarray(log_softmax(_y, axis=1)))),
    (L.PoissonNLLLoss, {"log_input": False, "full": True, "eps": 1e-3}, L.poisson_nll_loss, {},
     (VAR, jnp.asarray(np.floor(3 * _var)))),
    (L.GaussianNLLLoss, {"full": True, "eps": 0.3}, L.gaussian_nll_loss, {}, (X, Y, VAR)),
    (L.SoftMarginLoss, {"reduction": "none"}, L.soft_margin_loss, {}, (X, SIGNS)),
    (L.MultiLabelSoftMarginLoss, {"weight": W3}, L.multilabel_soft_margin_loss, {}, (X, BINARY)),
    (L.HingeEmbeddingLoss, {"margin": 0.5}, L.hinge_embedding_loss, {}, (X, SIGNS)),
    (L.MarginRankingLoss, {"margin": 0.2}, L.margin_ranking_loss, {},
     (jnp.asarray(_x[:, 0]), jnp.asarray(_y[:, 0]), SIGN4)),
    (L.CosineEmbeddingLoss, {"margin": 0.1, "reduction": "none"}, L.cosine_embedding_loss, {},
     (X, Y, SIGN4)),
    (L.TripletMarginLoss, {"margin": 2.0, "p": 1, "swap": True}, L.triplet_margin_loss, {},
     (X, Y, Z)),
    (L.TripletMarginWithDistanceLoss, {"margin": 2.0, "swap": True},
     L.triplet_margin_with_distance_loss, {}, (X, Y, Z)),
    (L.MultiMarginLoss, {"p": 2, "margin": 0.7, "weight": W3}, L.multi_margin_loss, {},
     (X, LABELS)),
    (L.MultiLabelMarginLoss, {"reduction": "sum"}, L.multilabel_margin_loss, {}, (X, MULTI)),
    (L.CTCLoss, {"blank": 2, "zero_infinity": True}, L.ctc_loss, {},
     (jnp.asarray(np.log(np.full((4, 2, 3), 1 / 3))), jnp.array([[0, 1], [1, 1]]),
      jnp.array([4, 3]), jnp.array([2, 2]))),
]
IDS = [c[0].__name__ for c in CASES]


def test_every_loss_has_a_class():
    # torch's LinearCrossEntropyLoss owns a Linear layer's parameters: no pure class here
    classes = {name for name in L.__all__ if name.endswith("Loss")}
    assert classes == set(IDS) and len(classes) == 21


# every class against its function runs in tests/losses/test_properties.py (a third of the
# catalogue by default, all of it in the exhaustive tier); this eager + jit + gradient check
# takes every third class by default, all in the exhaustive tier
@pytest.mark.parametrize(("cls", "options", "fn", "fn_options", "args"),
                         one_in(3, 0, [pytest.param(*c, id=i)
                                       for c, i in zip(CASES, IDS, strict=True)]))
def test_class_equals_function_eager_and_under_jit(cls, options, fn, fn_options, args):
    loss = cls(**options)
    expected = fn(*args, **options, **fn_options)
    np.testing.assert_array_equal(loss(*args), expected)
    np.testing.assert_allclose(jax.jit(lambda *a: loss(*a))(*args), expected, rtol=1e-14)
    g = jax.jit(jax.grad(lambda x: jnp.sum(loss(x, *args[1:]))))(args[0])
    assert np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("cls", [c[0] for c in CASES], ids=IDS)
def test_invalid_reduction_raises_at_construction(cls):
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        cls(reduction="avg")


@pytest.mark.parametrize("cls", [c[0] for c in CASES], ids=IDS)
def test_immutable_with_readable_options(cls):
    loss = cls(reduction="sum")
    assert loss.reduction == "sum"
    with pytest.raises(AttributeError, match="immutable"):
        loss.reduction = "mean"
    with pytest.raises(AttributeError, match="immutable"):
        del loss.reduction
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        loss.nope  # noqa: B018
    assert repr(loss).startswith(f"{cls.__name__}(") and "reduction='sum'" in repr(loss)


BAD = [
    (L.SmoothL1Loss, {"beta": -1.0}, ValueError, "negative values for beta"),
    (L.HuberLoss, {"delta": 0.0}, ValueError, "non-positive values for delta"),
    (L.TripletMarginLoss, {"margin": 0.0}, ValueError, "margin must be greater than 0"),
    (L.TripletMarginLoss, {"p": jnp.asarray(2.0)}, TypeError, "p must be a Python number"),
    (L.CrossEntropyLoss, {"label_smoothing": 1.5}, ValueError, "label_smoothing must be between"),
    (L.CrossEntropyLoss, {"label_smoothing": -0.1}, ValueError, "label_smoothing must be between"),
    (L.CrossEntropyLoss, {"ignore_index": 1.5}, TypeError, "ignore_index must be a Python int"),
    (L.NLLLoss, {"ignore_index": "x"}, TypeError, "ignore_index must be a Python int"),
    (L.CrossEntropyLoss, {"weight": jnp.asarray(np.ones((2, 3)))}, ValueError,
     "weight must be one-dimensional"),
    (L.NLLLoss, {"weight": jnp.asarray(np.ones((2, 3)))}, ValueError,
     "weight must be one-dimensional"),
    (L.MultiMarginLoss, {"p": 3}, ValueError, "only p == 1 and p == 2 supported"),
    (L.MultiMarginLoss, {"weight": jnp.asarray(np.ones((1, 3)))}, ValueError,
     "weight must be one-dimensional"),
    (L.BCELoss, {"weight": jnp.asarray(np.ones(3, np.int32))}, TypeError,
     "weight must be a floating"),
    (L.BCEWithLogitsLoss, {"pos_weight": jnp.asarray(np.ones(3, np.int32))}, TypeError,
     "pos_weight must be a floating"),
    (L.MSELoss, {"reduction": "batchmean"}, ValueError, "batchmean is not a valid value"),
]


@pytest.mark.parametrize(("cls", "options", "exc", "match"), BAD,
                         ids=[f"{b[0].__name__}-{next(iter(b[1]))}" for b in BAD])
def test_bad_options_raise_at_construction(cls, options, exc, match):
    with pytest.raises(exc, match=match):
        cls(**options)


def test_kl_batchmean_accepted_and_mean_warns_at_call_as_torch():
    assert L.KLDivLoss(reduction="batchmean").reduction == "batchmean"
    loss = L.KLDivLoss()  # no warning at construction (warnings are errors here)
    with pytest.warns(UserWarning, match="reduction: 'mean' divides the total loss"):
        loss(X, jnp.asarray(softmax(_y, axis=1)))


def test_legacy_size_average_reduce_fold_into_reduction():
    with pytest.warns(UserWarning, match=re.escape("please use reduction='none' instead")):
        loss = L.MSELoss(reduce=False)
    assert loss.reduction == "none" and not hasattr(loss, "reduce")
    np.testing.assert_array_equal(loss(X, Y), L.mse_loss(X, Y, reduction="none"))


def test_weights_are_stored_as_jax_arrays_and_positional_order_is_torchs():
    loss = L.CrossEntropyLoss([0.5, 1.0, 2.0], None, 1)  # weight, size_average, ignore_index
    assert isinstance(loss.weight, jax.Array) and loss.ignore_index == 1
    np.testing.assert_allclose(loss(X, LABELS), L.cross_entropy(X, LABELS, weight=W3,
                                                                 ignore_index=1), rtol=1e-6)
    assert L.GaussianNLLLoss(full=True).full is True
    with pytest.raises(TypeError):
        L.GaussianNLLLoss(True)  # keyword-only, as torch


def test_one_instance_serves_many_jitted_calls_without_retracing():
    loss = L.CrossEntropyLoss(weight=W3, label_smoothing=0.1)
    traces = []

    @jax.jit
    def step(x, y):
        traces.append(1)
        return loss(x, y)

    step(X, LABELS)
    step(X + 1, LABELS)
    assert len(traces) == 1
