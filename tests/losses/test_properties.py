"""Property tests (hypothesis) over the whole loss catalogue: 'sum' is the sum of 'none', an
unweighted 'mean' is the mean of 'none', gradients stay finite on extreme inputs (logits of
+-1e4, probabilities of exactly 0 and 1, zero vectors, zero variances), and the class form
equals the function form."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis.extra.numpy as hnp
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax

from fnlearn import losses as L
from tests._tiers import one_in

SETTINGS = settings(max_examples=10, deadline=None, derandomize=True)


def reals(draw, shape, extreme, big=1e4):
    """Moderate floats, or a mix of +-``big``, 0 and +-1 when ``extreme``."""
    elements = (st.sampled_from([-big, -1.0, 0.0, 1.0, big]) if extreme
                else st.floats(-3.0, 3.0, allow_nan=False, width=64))
    return draw(hnp.arrays(np.float64, shape, elements=elements))


def unit(draw, shape, extreme):
    """Values in [0, 1]; exactly 0 and 1 when ``extreme``."""
    elements = (st.sampled_from([0.0, 1e-30, 0.5, 1.0]) if extreme
                else st.floats(0.01, 0.99, width=64))
    return draw(hnp.arrays(np.float64, shape, elements=elements))


def ints(draw, shape, lo, hi):
    return draw(hnp.arrays(np.int64, shape, elements=st.integers(lo, hi)))


def binary(draw, shape):
    return ints(draw, shape, 0, 1).astype(np.float64)


def signs(draw, shape):
    return draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 1.0])))


def log_probs(draw, shape, extreme):
    """Log-probabilities (rows over the last axis), down to -1e4 when ``extreme``."""
    return log_softmax(reals(draw, shape, extreme), axis=-1)  # no XLA program per shape


def multilabel_targets(draw, n, c):
    """Class indices padded with -1 (torch reads each row up to its first -1)."""
    rows = [draw(st.permutations(range(c))) for _ in range(n)]
    lengths = [draw(st.integers(0, c)) for _ in range(n)]
    return np.array([r[:k] + [-1] * (c - k) for r, k in zip(rows, lengths, strict=True)],
                    dtype=np.int64)


@dataclass(frozen=True)
class Entry:
    """One loss of the catalogue: how to draw its arrays (``make(draw, n, c, extreme)``), the
    options used for both forms, and which reductions equal a plain mean/sum of 'none'."""

    fn: Callable[..., Any]
    cls: type
    make: Callable[..., tuple]
    options: dict[str, Any] = field(default_factory=dict)
    class_options: dict[str, Any] | None = None
    mean: str = "mean"  # the reduction that is the plain mean of 'none'


CATALOGUE = {
    "mse_loss": Entry(L.mse_loss, L.MSELoss,
                      lambda d, n, c, e: (reals(d, (n, c), e), reals(d, (n, c), e))),
    "l1_loss": Entry(L.l1_loss, L.L1Loss,
                     lambda d, n, c, e: (reals(d, (n, c), e), reals(d, (n, c), e))),
    "smooth_l1_loss": Entry(L.smooth_l1_loss, L.SmoothL1Loss,
                            lambda d, n, c, e: (reals(d, (n, c), e), reals(d, (n, c), e)),
                            {"beta": 0.5}),
    "huber_loss": Entry(L.huber_loss, L.HuberLoss,
                        lambda d, n, c, e: (reals(d, (n, c), e), reals(d, (n, c), e)),
                        {"delta": 2.0}),
    "binary_cross_entropy": Entry(L.binary_cross_entropy, L.BCELoss,
                                  lambda d, n, c, e: (unit(d, (n, c), e), binary(d, (n, c)))),
    "binary_cross_entropy_with_logits": Entry(
        L.binary_cross_entropy_with_logits, L.BCEWithLogitsLoss,
        lambda d, n, c, e: (reals(d, (n, c), e), unit(d, (n, c), False))),
    "cross_entropy": Entry(L.cross_entropy, L.CrossEntropyLoss,
                           lambda d, n, c, e: (reals(d, (n, c), e), ints(d, (n,), 0, c - 1)),
                           {"label_smoothing": 0.1}),
    "cross_entropy-probabilities": Entry(
        L.cross_entropy, L.CrossEntropyLoss,
        lambda d, n, c, e: (reals(d, (n, c), e), np.exp(log_probs(d, (n, c), False)))),
    "nll_loss": Entry(L.nll_loss, L.NLLLoss,
                      lambda d, n, c, e: (log_probs(d, (n, c), e), ints(d, (n,), 0, c - 1))),
    "kl_div": Entry(L.kl_div, L.KLDivLoss,
                    lambda d, n, c, e: (log_probs(d, (n, c), e), unit(d, (n, c), e)),
                    {"reduction": "batchmean"}, mean="batchmean"),
    "kl_div-log_target": Entry(
        L.kl_div, L.KLDivLoss,
        lambda d, n, c, e: (log_probs(d, (n, c), e), log_probs(d, (n, c), e)),
        {"log_target": True, "reduction": "batchmean"}, mean="batchmean"),
    "poisson_nll_loss": Entry(
        L.poisson_nll_loss, L.PoissonNLLLoss,
        lambda d, n, c, e: (reals(d, (n, c), e, big=30.0), ints(d, (n, c), 0, 5).astype(float)),
        {"full": True}),
    "poisson_nll_loss-rate": Entry(
        L.poisson_nll_loss, L.PoissonNLLLoss,
        lambda d, n, c, e: (unit(d, (n, c), e), ints(d, (n, c), 0, 5).astype(float)),
        {"log_input": False}),
    "gaussian_nll_loss": Entry(
        L.gaussian_nll_loss, L.GaussianNLLLoss,
        lambda d, n, c, e: (reals(d, (n, c), e), reals(d, (n, c), e), unit(d, (n, c), e)),
        {"full": True}),
    "soft_margin_loss": Entry(L.soft_margin_loss, L.SoftMarginLoss,
                              lambda d, n, c, e: (reals(d, (n, c), e), signs(d, (n, c)))),
    "multilabel_soft_margin_loss": Entry(
        L.multilabel_soft_margin_loss, L.MultiLabelSoftMarginLoss,
        lambda d, n, c, e: (reals(d, (n, c), e), binary(d, (n, c)))),
    "hinge_embedding_loss": Entry(L.hinge_embedding_loss, L.HingeEmbeddingLoss,
                                  lambda d, n, c, e: (reals(d, (n, c), e), signs(d, (n, c))),
                                  {"margin": 0.5}),
    "margin_ranking_loss": Entry(
        L.margin_ranking_loss, L.MarginRankingLoss,
        lambda d, n, c, e: (reals(d, (n,), e), reals(d, (n,), e), signs(d, (n,))),
        {"margin": 0.1}),
    "cosine_embedding_loss": Entry(
        L.cosine_embedding_loss, L.CosineEmbeddingLoss,
        lambda d, n, c, e: (reals(d, (n, c), e), reals(d, (n, c), e), signs(d, (n,))),
        {"margin": 0.2}),
    "triplet_margin_loss": Entry(
        L.triplet_margin_loss, L.TripletMarginLoss,
        lambda d, n, c, e: (reals(d, (n, c), e), reals(d, (n, c), e), reals(d, (n, c), e)),
        {"swap": True}),
    "triplet_margin_loss-p1": Entry(
        L.triplet_margin_loss, L.TripletMarginLoss,
        lambda d, n, c, e: (reals(d, (n, c), e), reals(d, (n, c), e), reals(d, (n, c), e)),
        {"p": 1, "eps": 0.0}),
    "triplet_margin_with_distance_loss": Entry(
        L.triplet_margin_with_distance_loss, L.TripletMarginWithDistanceLoss,
        lambda d, n, c, e: (reals(d, (n, c), e), reals(d, (n, c), e), reals(d, (n, c), e)),
        {"swap": True, "margin": 0.5}),
    "triplet_margin_with_distance_loss-l1": Entry(
        L.triplet_margin_with_distance_loss, L.TripletMarginWithDistanceLoss,
        lambda d, n, c, e: (reals(d, (n, c), e), reals(d, (n, c), e), reals(d, (n, c), e)),
        {"distance_function": functools.partial(L.pairwise_distance, p=1, eps=0.0)}),
    "multi_margin_loss": Entry(
        L.multi_margin_loss, L.MultiMarginLoss,
        lambda d, n, c, e: (reals(d, (n, c), e), ints(d, (n,), 0, c - 1)), {"p": 2}),
    "multilabel_margin_loss": Entry(
        L.multilabel_margin_loss, L.MultiLabelMarginLoss,
        lambda d, n, c, e: (reals(d, (n, c), e), multilabel_targets(d, n, c))),
    # one label per sequence of 3 steps (always alignable), so 'mean' (over target lengths
    # of 1) is the plain mean of 'none'
    "ctc_loss": Entry(
        L.ctc_loss, L.CTCLoss,
        lambda d, n, c, e: (log_probs(d, (3, n, c + 1), e), ints(d, (n, 1), 1, c),
                            np.full(n, 3), np.ones(n, np.int64))),
}
SIZES = st.sampled_from([(1, 2), (3, 4)])  # few shapes: one compile of each op per shape


def test_catalogue_covers_every_loss():
    # linear_cross_entropy is cross_entropy on chunks (test_linear_cross_entropy.py), and has
    # no pure class (torch's LinearCrossEntropyLoss owns a Linear layer's parameters)
    names = {name.split("-")[0] for name in CATALOGUE}
    assert names == {n for n in L.__all__ if n.endswith("_loss") or n in (
        "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "kl_div")}
    assert {e.cls.__name__ for e in CATALOGUE.values()} == {
        n for n in L.__all__ if n.endswith("Loss")}


# One jitted function per loss and test, so that the examples reuse a few compilations
# (two shapes, two dtypes) instead of dispatching every op eagerly.
_JIT: dict = {}


def _jitted(kind: str, name: str) -> Callable:
    if (kind, name) not in _JIT:
        entry = CATALOGUE[name]
        fn = lambda *a, reduction: entry.fn(*a, **{**entry.options, "reduction": reduction})  # noqa: E731
        if kind == "reductions":
            f = lambda *a: tuple(fn(*a, reduction=r) for r in ("none", "sum", entry.mean))  # noqa: E731
        elif kind == "gradient":
            f = jax.value_and_grad(lambda x, *a: fn(x, *a, reduction=entry.mean))
        else:
            f = lambda *a: (fn(*a, reduction="none"),  # noqa: E731
                            entry.cls(**{**entry.options, "reduction": "none"})(*a))
        _JIT[kind, name] = jax.jit(f)
    return _JIT[kind, name]


def _arrays(args, dtype="float64"):
    """numpy arrays (the jitted functions take them as they are: no eager cast program)."""
    return [np.asarray(a).astype(dtype) if np.issubdtype(np.asarray(a).dtype, np.floating)
            else np.asarray(a) for a in args]


# by default each loss meets one of these three properties (in turn), every loss all three in
# the exhaustive tier
@pytest.mark.parametrize("name", one_in(3, 0, CATALOGUE))
@SETTINGS
@given(data=st.data(), size=SIZES)
def test_reductions_agree_with_none(name, data, size):
    entry = CATALOGUE[name]
    args = _arrays(entry.make(data.draw, *size, False))
    none, total, mean = map(np.asarray, _jitted("reductions", name)(*args))
    np.testing.assert_allclose(total, np.sum(none), rtol=1e-12, atol=1e-12)
    divisor = args[0].shape[0] if entry.mean == "batchmean" else none.size
    np.testing.assert_allclose(mean, np.sum(none) / divisor, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", one_in(3, 1, CATALOGUE))
@SETTINGS
@given(data=st.data(), size=SIZES, dtype=st.sampled_from(["float32", "float64"]))
def test_gradients_finite_on_extreme_inputs(name, data, size, dtype):
    args = _arrays(CATALOGUE[name].make(data.draw, *size, True), dtype)
    value, grad = _jitted("gradient", name)(*args)
    assert np.isfinite(np.asarray(value, np.float64)), value
    assert np.isfinite(np.asarray(grad, np.float64)).all(), grad


@pytest.mark.parametrize("name", one_in(3, 2, CATALOGUE))
@SETTINGS
@given(data=st.data(), size=SIZES)
def test_class_form_equals_function_form(name, data, size):
    args = _arrays(CATALOGUE[name].make(data.draw, *size, False))
    by_function, by_class = _jitted("class", name)(*args)
    np.testing.assert_array_equal(by_class, by_function)
