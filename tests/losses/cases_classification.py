"""Classification loss configurations checked against torch (reference file classification.npz).

Regenerate with ``python -m tests.generate_reference classification`` (needs torch).
Every option of section 1.3-1.5, 1.8 and 1.11 of the torch reference appears at least once:
reductions, weights, pos_weight broadcasting, ignore_index (also a real class, also all
ignored), label smoothing with weight and ignore_index, spatial and unbatched shapes,
probability targets, BCE at exactly 0 and 1, logits of +-1e4.
"""

from __future__ import annotations

import numpy as np

from tests._reference import Case

IGN = -100


def _logits(*shape, scale=2.0):
    return lambda rng: rng.standard_normal(shape) * scale


def _probs(*shape, low=0.02, high=0.98):
    return lambda rng: rng.uniform(low, high, shape)


def _soft(*shape):
    """Class probabilities along axis 1 (axis 0 when 1-D)."""

    def make(rng):
        p = rng.uniform(0.0, 1.0, shape)
        return p / p.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)

    return make


def _classes(C, *shape, ignore=(), ignore_index=IGN):
    """Class indices in [0, C); the flat positions in ``ignore`` get ``ignore_index``."""

    def make(rng):
        t = rng.integers(0, C, shape)
        t.reshape(-1)[list(ignore)] = ignore_index
        return t

    return make


def _weight(C):
    return lambda rng: rng.uniform(0.2, 2.0, C)


def _args(**makers):
    return lambda rng: {name: make(rng) for name, make in makers.items()}


def _fixed(**arrays):
    return lambda rng: {name: np.asarray(value) for name, value in arrays.items()}


# ---- binary_cross_entropy -------------------------------------------------------------------
BCE = [
    Case("bce-mean", "binary_cross_entropy", _args(input=_probs(4, 5), target=_probs(4, 5, low=0)),
         grad=("input", "target")),
    Case("bce-none-weight-per-column", "binary_cross_entropy",
         _args(input=_probs(4, 5), target=_probs(4, 5), weight=_weight(5)),
         kwargs=dict(reduction="none"), grad=("input", "target")),
    Case("bce-sum-weight-full", "binary_cross_entropy",
         _args(input=_probs(4, 5), target=_probs(4, 5), weight=_weight((4, 5))),
         kwargs=dict(reduction="sum")),
    Case("bce-mean-weight-per-row-not-divided-by-weight", "binary_cross_entropy",
         _args(input=_probs(4, 5), target=_probs(4, 5), weight=_weight((4, 1)))),
    Case("bce-3d-sum", "binary_cross_entropy", _args(input=_probs(2, 3, 4), target=_probs(2, 3, 4)),
         kwargs=dict(reduction="sum")),
    Case("bce-exactly-0-and-1-none-log-clamp", "binary_cross_entropy",
         _fixed(input=[0.0, 1.0, 0.0, 1.0, 1e-50, 1.0 - 1e-9, 0.5, 0.25],
                target=[1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.75]),
         kwargs=dict(reduction="none")),
    Case("bce-exactly-0-and-1-mean-weight", "binary_cross_entropy",
         _fixed(input=[[0.0, 1.0, 0.3], [1.0, 0.0, 0.9]], target=[[1.0, 0.0, 0.5], [1.0, 0.0, 0.0]],
                weight=[0.5, 2.0, 1.5])),
]

# ---- binary_cross_entropy_with_logits -------------------------------------------------------
BCE_LOGITS = [
    Case("bcelogits-mean", "binary_cross_entropy_with_logits",
         _args(input=_logits(4, 5, scale=3.0), target=_probs(4, 5, low=0, high=1)),
         grad=("input", "target")),
    Case("bcelogits-none-pos-weight-per-class", "binary_cross_entropy_with_logits",
         _args(input=_logits(4, 5), target=_probs(4, 5), pos_weight=_weight(5)),
         kwargs=dict(reduction="none"), grad=("input", "target")),
    Case("bcelogits-mean-weight-per-row-and-pos-weight", "binary_cross_entropy_with_logits",
         _args(input=_logits(4, 5), target=_probs(4, 5), weight=_weight((4, 1)),
               pos_weight=_weight(5))),
    Case("bcelogits-3d-sum-pos-weight-last-dim-weight-middle", "binary_cross_entropy_with_logits",
         _args(input=_logits(2, 3, 4), target=_probs(2, 3, 4), weight=_weight((3, 1)),
               pos_weight=_weight(4)),
         kwargs=dict(reduction="sum")),
    Case("bcelogits-extreme-1e4-none", "binary_cross_entropy_with_logits",
         _fixed(input=[-1e4, 1e4, -1e4, 1e4, 0.0, 30.0, -30.0, 1e4],
                target=[0.0, 0.0, 1.0, 1.0, 0.5, 0.3, 0.7, 0.5]),
         kwargs=dict(reduction="none"), grad=("input", "target")),
    Case("bcelogits-extreme-1e4-mean-pos-weight", "binary_cross_entropy_with_logits",
         _fixed(input=[[-1e4, 1e4], [1e4, -1e4]], target=[[1.0, 0.0], [1.0, 0.0]],
                pos_weight=[3.0, 0.5])),
    Case("bcelogits-scalar-input", "binary_cross_entropy_with_logits",
         _fixed(input=0.7, target=0.2)),
]

# ---- cross_entropy with class indices -------------------------------------------------------
CE = [
    Case("ce-mean", "cross_entropy", _args(input=_logits(4, 5), target=_classes(5, 4))),
    Case("ce-none", "cross_entropy", _args(input=_logits(4, 5), target=_classes(5, 4)),
         kwargs=dict(reduction="none")),
    Case("ce-sum", "cross_entropy", _args(input=_logits(4, 5), target=_classes(5, 4)),
         kwargs=dict(reduction="sum")),
    Case("ce-weight-mean-divides-by-target-weights", "cross_entropy",
         _args(input=_logits(6, 5), target=_classes(5, 6), weight=_weight(5))),
    Case("ce-weight-none", "cross_entropy",
         _args(input=_logits(6, 5), target=_classes(5, 6), weight=_weight(5)),
         kwargs=dict(reduction="none")),
    Case("ce-ignore-mean", "cross_entropy",
         _args(input=_logits(6, 5), target=_classes(5, 6, ignore=(1, 4)))),
    Case("ce-ignore-weight-mean", "cross_entropy",
         _args(input=_logits(6, 5), target=_classes(5, 6, ignore=(0, 3)), weight=_weight(5))),
    Case("ce-ignore-none-zero-entries", "cross_entropy",
         _args(input=_logits(6, 5), target=_classes(5, 6, ignore=(2,)), weight=_weight(5)),
         kwargs=dict(reduction="none")),
    Case("ce-ignore-index-is-a-real-class", "cross_entropy",
         _fixed(input=np.linspace(-2, 2, 30).reshape(6, 5), target=[2, 0, 2, 4, 1, 3],
                weight=[0.5, 1.0, 1.5, 2.0, 0.7]),
         kwargs=dict(ignore_index=2)),
    Case("ce-all-ignored-mean-nan-zero-grad", "cross_entropy",
         _args(input=_logits(4, 5), target=_classes(5, 4, ignore=(0, 1, 2, 3)))),
    Case("ce-all-ignored-weight-smoothing-mean-nan", "cross_entropy",
         _args(input=_logits(4, 5), target=_classes(5, 4, ignore=(0, 1, 2, 3)),
               weight=_weight(5)),
         kwargs=dict(label_smoothing=0.2)),
    Case("ce-all-ignored-sum-zero", "cross_entropy",
         _args(input=_logits(4, 5), target=_classes(5, 4, ignore=(0, 1, 2, 3))),
         kwargs=dict(reduction="sum", label_smoothing=0.1)),
    Case("ce-all-ignored-none", "cross_entropy",
         _args(input=_logits(3, 5), target=_classes(5, 3, ignore=(0, 1, 2))),
         kwargs=dict(reduction="none")),
    Case("ce-smoothing-mean", "cross_entropy", _args(input=_logits(4, 5), target=_classes(5, 4)),
         kwargs=dict(label_smoothing=0.1)),
    Case("ce-smoothing-one", "cross_entropy", _args(input=_logits(4, 5), target=_classes(5, 4)),
         kwargs=dict(label_smoothing=1.0, reduction="sum")),
    Case("ce-weight-ignore-smoothing-mean", "cross_entropy",
         _args(input=_logits(6, 5), target=_classes(5, 6, ignore=(1, 5)), weight=_weight(5)),
         kwargs=dict(label_smoothing=0.3)),
    Case("ce-weight-ignore-smoothing-sum", "cross_entropy",
         _args(input=_logits(6, 5), target=_classes(5, 6, ignore=(1, 5)), weight=_weight(5)),
         kwargs=dict(label_smoothing=0.3, reduction="sum")),
    Case("ce-weight-ignore-smoothing-none", "cross_entropy",
         _args(input=_logits(6, 5), target=_classes(5, 6, ignore=(1, 5)), weight=_weight(5)),
         kwargs=dict(label_smoothing=0.3, reduction="none")),
    Case("ce-3d-spatial-weight-ignore-mean", "cross_entropy",
         _args(input=_logits(2, 4, 3), target=_classes(4, 2, 3, ignore=(4,)), weight=_weight(4))),
    Case("ce-4d-spatial-smoothing-none", "cross_entropy",
         _args(input=_logits(2, 3, 2, 2), target=_classes(3, 2, 2, 2, ignore=(0,))),
         kwargs=dict(label_smoothing=0.2, reduction="none")),
    Case("ce-4d-spatial-weight-ignore-smoothing-mean", "cross_entropy",
         _args(input=_logits(2, 3, 2, 2), target=_classes(3, 2, 2, 2, ignore=(0, 5)),
               weight=_weight(3)),
         kwargs=dict(label_smoothing=0.15)),
    Case("ce-unbatched-weight-mean", "cross_entropy",
         _args(input=_logits(5), target=lambda rng: np.int64(3), weight=_weight(5))),
    Case("ce-unbatched-none-scalar", "cross_entropy",
         _args(input=_logits(5), target=lambda rng: np.int64(1)),
         kwargs=dict(reduction="none", label_smoothing=0.1)),
    Case("ce-unbatched-target-of-shape-1", "cross_entropy",
         _fixed(input=[0.3, -1.0, 2.0], target=[2]), kwargs=dict(reduction="none"),
         grad=()),  # torch's backward fails here ("size mismatch"); its forward is checked
    Case("ce-logits-1e4-mean-finite", "cross_entropy",
         _fixed(input=[[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], target=[1, 0]),
         kwargs=dict(label_smoothing=0.1)),
    Case("ce-empty-batch-mean-nan", "cross_entropy",
         _fixed(input=np.zeros((0, 3)), target=np.zeros(0, dtype=np.int64))),
]

# ---- cross_entropy with class probabilities -------------------------------------------------
CE_PROBS = [
    Case("ce-probs-mean", "cross_entropy", _args(input=_logits(4, 5), target=_soft(4, 5)),
         grad=("input", "target")),
    Case("ce-probs-none", "cross_entropy", _args(input=_logits(4, 5), target=_soft(4, 5)),
         kwargs=dict(reduction="none"), grad=("input", "target")),
    Case("ce-probs-weight-mean-is-plain-mean-over-n", "cross_entropy",
         _args(input=_logits(4, 5), target=_soft(4, 5), weight=_weight(5))),
    Case("ce-probs-weight-smoothing-mean", "cross_entropy",
         _args(input=_logits(4, 5), target=_soft(4, 5), weight=_weight(5)),
         kwargs=dict(label_smoothing=0.25), grad=("input", "target")),
    Case("ce-probs-weight-smoothing-sum", "cross_entropy",
         _args(input=_logits(4, 5), target=_soft(4, 5), weight=_weight(5)),
         kwargs=dict(label_smoothing=0.25, reduction="sum")),
    Case("ce-probs-3d-weight-mean", "cross_entropy",
         _args(input=_logits(2, 4, 3), target=_soft(2, 4, 3), weight=_weight(4))),
    Case("ce-probs-unbatched-none", "cross_entropy",
         _args(input=_logits(5), target=_soft(5)), kwargs=dict(reduction="none")),
    Case("ce-probs-negative-ignore-index-accepted", "cross_entropy",
         _args(input=_logits(3, 4), target=_soft(3, 4)), kwargs=dict(ignore_index=-1)),
]

# ---- nll_loss --------------------------------------------------------------------------------
NLL = [
    Case("nll-mean", "nll_loss", _args(input=_logits(4, 5), target=_classes(5, 4))),
    Case("nll-none-weight", "nll_loss",
         _args(input=_logits(4, 5), target=_classes(5, 4), weight=_weight(5)),
         kwargs=dict(reduction="none")),
    Case("nll-sum-ignore", "nll_loss",
         _args(input=_logits(5, 3), target=_classes(3, 5, ignore=(2,))),
         kwargs=dict(reduction="sum")),
    Case("nll-weight-ignore-mean", "nll_loss",
         _args(input=_logits(6, 4), target=_classes(4, 6, ignore=(0, 2)), weight=_weight(4))),
    Case("nll-ignore-index-is-a-real-class", "nll_loss",
         _fixed(input=np.linspace(-3, 0, 12).reshape(4, 3), target=[0, 1, 1, 2]),
         kwargs=dict(ignore_index=1)),
    Case("nll-all-ignored-weight-mean-nan-zero-grad", "nll_loss",
         _args(input=_logits(3, 4), target=_classes(4, 3, ignore=(0, 1, 2)), weight=_weight(4))),
    Case("nll-3d-spatial-none", "nll_loss",
         _args(input=_logits(2, 3, 4), target=_classes(3, 2, 4, ignore=(1,))),
         kwargs=dict(reduction="none")),
    Case("nll-4d-spatial-weight-mean", "nll_loss",
         _args(input=_logits(2, 3, 2, 3), target=_classes(3, 2, 2, 3), weight=_weight(3))),
    Case("nll-unbatched-mean", "nll_loss", _args(input=_logits(4), target=lambda rng: np.int64(2))),
]

# ---- soft margins ---------------------------------------------------------------------------
SOFT = [
    Case("softmargin-mean", "soft_margin_loss",
         _args(input=_logits(4, 5), target=lambda rng: rng.choice([-1.0, 1.0], (4, 5)))),
    Case("softmargin-none-3d", "soft_margin_loss",
         _args(input=_logits(2, 3, 4), target=lambda rng: rng.choice([-1.0, 1.0], (2, 3, 4))),
         kwargs=dict(reduction="none")),
    Case("softmargin-sum-target-broadcast", "soft_margin_loss",
         _args(input=_logits(4, 5), target=lambda rng: rng.choice([-1.0, 1.0], 5)),
         kwargs=dict(reduction="sum")),
    Case("softmargin-integer-target", "soft_margin_loss",
         _args(input=_logits(6), target=lambda rng: rng.choice([-1, 1], 6))),
    Case("multilabelsoftmargin-mean", "multilabel_soft_margin_loss",
         _args(input=_logits(4, 5), target=lambda rng: rng.integers(0, 2, (4, 5)).astype(float)),
         grad=("input", "target")),
    Case("multilabelsoftmargin-none-weight", "multilabel_soft_margin_loss",
         _args(input=_logits(4, 5), target=lambda rng: rng.integers(0, 2, (4, 5)).astype(float),
               weight=_weight(5)),
         kwargs=dict(reduction="none")),
    Case("multilabelsoftmargin-sum-weight-per-row", "multilabel_soft_margin_loss",
         _args(input=_logits(4, 5), target=_probs(4, 5), weight=_weight((4, 1))),
         kwargs=dict(reduction="sum")),
    Case("multilabelsoftmargin-3d-class-dim-last-none", "multilabel_soft_margin_loss",
         _args(input=_logits(2, 3, 4), target=lambda rng: rng.integers(0, 2, (2, 3, 4))),
         kwargs=dict(reduction="none")),
    Case("multilabelsoftmargin-unbatched-none", "multilabel_soft_margin_loss",
         _args(input=_logits(5), target=lambda rng: rng.integers(0, 2, 5).astype(float)),
         kwargs=dict(reduction="none")),
]

# ---- multi_margin_loss / multilabel_margin_loss ---------------------------------------------
MARGIN = [
    Case("multimargin-p1-mean", "multi_margin_loss",
         _args(input=_logits(5, 4, scale=0.7), target=_classes(4, 5))),
    Case("multimargin-p2-none", "multi_margin_loss",
         _args(input=_logits(5, 4, scale=0.7), target=_classes(4, 5)),
         kwargs=dict(p=2, reduction="none")),
    Case("multimargin-p1-margin-sum", "multi_margin_loss",
         _args(input=_logits(5, 4, scale=0.7), target=_classes(4, 5)),
         kwargs=dict(margin=0.5, reduction="sum")),
    Case("multimargin-p1-weight-mean-plain-mean-over-n", "multi_margin_loss",
         _args(input=_logits(5, 4, scale=0.7), target=_classes(4, 5), weight=_weight(4))),
    Case("multimargin-p2-weight-margin-none", "multi_margin_loss",
         _args(input=_logits(5, 4, scale=0.7), target=_classes(4, 5), weight=_weight(4)),
         kwargs=dict(p=2, margin=2.0, reduction="none")),
    Case("multimargin-negative-margin-mean", "multi_margin_loss",
         _args(input=_logits(5, 4), target=_classes(4, 5)), kwargs=dict(margin=-0.5)),
    Case("multimargin-unbatched-none", "multi_margin_loss",
         _args(input=_logits(4, scale=0.7), target=lambda rng: np.int64(1)),
         kwargs=dict(reduction="none")),
    Case("multimargin-unbatched-target-of-shape-1", "multi_margin_loss",
         _args(input=_logits(4, scale=0.7), target=lambda rng: np.array([3])),
         kwargs=dict(p=2, reduction="none")),
    Case("multilabelmargin-mean", "multilabel_margin_loss",
         _fixed(input=np.linspace(-1, 1, 20).reshape(4, 5) ** 3,
                target=[[3, 0, -1, 1, 2], [1, 2, 3, 4, 0], [-1, 1, 2, 3, 4], [4, 4, -1, 0, 0]])),
    Case("multilabelmargin-none-random", "multilabel_margin_loss",
         _args(input=_logits(4, 6, scale=0.5),
               target=lambda rng: np.array([[2, 5, -1, 0, 0, 0], [0, -1, 3, 3, 3, 3],
                                            [1, 2, 3, 4, 5, 0], [5, 4, 1, -1, -1, -1]])),
         kwargs=dict(reduction="none")),
    Case("multilabelmargin-sum", "multilabel_margin_loss",
         _args(input=_logits(3, 4, scale=0.5),
               target=lambda rng: np.array([[1, -1, 0, 0], [3, 2, -1, 2], [0, 1, 2, -1]])),
         kwargs=dict(reduction="sum")),
    Case("multilabelmargin-unbatched-none", "multilabel_margin_loss",
         _args(input=_logits(5, scale=0.5), target=lambda rng: np.array([4, 0, -1, 2, 2])),
         kwargs=dict(reduction="none")),
]

CASES = BCE + BCE_LOGITS + CE + CE_PROBS + NLL + SOFT + MARGIN
