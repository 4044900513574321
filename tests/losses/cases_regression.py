"""Reference cases for the regression, probabilistic and embedding losses (12 losses) and
``pairwise_distance`` (the default distance of ``triplet_margin_with_distance_loss``).

Each ``Case`` is one configuration run through ``torch.nn.functional.<fn>`` by
``python -m tests.generate_reference regression`` (stored in
``reference/regression.npz``) and through ``fnlearn.losses.<fn>`` by ``test_reference.py``.
Ids read ``<fn>-<what is special>``.
"""

from __future__ import annotations

import math

import numpy as np

from tests._reference import Case


def arrays(**specs):
    """``make(rng)`` drawing each named array from its spec (a function of the rng), in order."""
    return lambda rng: {name: spec(rng) for name, spec in specs.items()}


def normal(*shape):
    return lambda rng: rng.standard_normal(shape)


def uniform(*shape, lo=0.0, hi=1.0):
    return lambda rng: rng.uniform(lo, hi, shape)


def signs(*shape, values=(-1, 1)):
    """Integer labels drawn from ``values`` (int64 for torch)."""
    return lambda rng: rng.choice(np.array(values, dtype=np.int64), shape)


def counts(*shape, lam=2.0):
    """Poisson counts as floats: zeros, ones and values > 1 (the Stirling mask)."""
    return lambda rng: rng.poisson(lam, shape).astype(np.float64)


def probs(*shape):
    """Rows of probabilities along the last axis (strictly positive)."""

    def draw(rng):
        p = rng.uniform(0.1, 1.0, shape)
        return p / p.sum(axis=-1, keepdims=True)

    return draw


def with_ties(value, *shape, every=3):
    """Normal draws with every ``every``-th element set exactly to ``value`` (hinge corners)."""

    def draw(rng):
        x = rng.standard_normal(shape).reshape(-1)
        x[::every] = value
        return x.reshape(shape)

    return draw


def _identical_positive(rng, *shape):
    """A triplet whose positive equals its anchor: a zero distance (with eps=0)."""
    anchor = rng.standard_normal(shape)
    return {"anchor": anchor, "positive": anchor.copy(), "negative": rng.standard_normal(shape)}


def _pointwise(fn, extra=None, weighted=True):
    """The shared cases of an elementwise regression loss: reductions, ranks, broadcasting."""
    extra = extra or {}
    out = [
        Case(f"{fn}-mean", fn, arrays(input=normal(3, 4), target=normal(3, 4)), kwargs=extra,
             grad=("input", "target")),
        Case(f"{fn}-sum", fn, arrays(input=normal(3, 4), target=normal(3, 4)),
             kwargs={**extra, "reduction": "sum"}),
        Case(f"{fn}-none", fn, arrays(input=normal(3, 4), target=normal(3, 4)),
             kwargs={**extra, "reduction": "none"}, grad=("input", "target")),
        Case(f"{fn}-0d", fn, arrays(input=normal(), target=normal()), kwargs=extra),
        Case(f"{fn}-3d-none", fn, arrays(input=normal(2, 3, 4), target=normal(2, 3, 4)),
             kwargs={**extra, "reduction": "none"}),
        Case(f"{fn}-broadcast-target-column", fn, arrays(input=normal(4, 5), target=normal(4, 1)),
             kwargs=extra, grad=("input", "target")),
        Case(f"{fn}-broadcast-input-row-none", fn, arrays(input=normal(5), target=normal(3, 5)),
             kwargs={**extra, "reduction": "none"}, grad=("input", "target")),
    ]
    if weighted:
        for red in ("mean", "sum", "none"):
            out.append(
                Case(f"{fn}-weight-{red}", fn,
                     arrays(input=normal(3, 4), target=normal(3, 4), weight=uniform(3, 4)),
                     kwargs={**extra, "reduction": red}, grad=("input", "target", "weight"))
            )
        out.append(
            Case(f"{fn}-weight-broadcast-target-mean", fn,
                 arrays(input=normal(3, 4), target=normal(4), weight=uniform(3, 4)),
                 kwargs=extra, grad=("input", "weight"))
        )
    return out


CASES: list[Case] = [
    # --- mse_loss / l1_loss ---------------------------------------------------------------
    *_pointwise("mse_loss"),
    Case("mse_loss-legacy-size_average-false", "mse_loss",
         arrays(input=normal(3, 4), target=normal(3, 4)), kwargs={"size_average": False}),
    Case("mse_loss-legacy-reduce-false", "mse_loss",
         arrays(input=normal(3, 4), target=normal(3, 4)), kwargs={"reduce": False}),
    *_pointwise("l1_loss"),
    Case("l1_loss-ties-zero-gradient", "l1_loss",
         arrays(input=with_ties(0.5, 3, 4), target=lambda rng: np.full((3, 4), 0.5)),
         kwargs={"reduction": "sum"}),
    # --- smooth_l1_loss: beta ------------------------------------------------------------
    *_pointwise("smooth_l1_loss", weighted=False),
    Case("smooth_l1_loss-beta0.5-none", "smooth_l1_loss",
         arrays(input=normal(4, 5), target=normal(4, 5)),
         kwargs={"beta": 0.5, "reduction": "none"}, grad=("input", "target")),
    Case("smooth_l1_loss-beta2-sum", "smooth_l1_loss",
         arrays(input=normal(4, 5), target=normal(4, 5)), kwargs={"beta": 2.0, "reduction": "sum"}),
    Case("smooth_l1_loss-beta0-is-l1", "smooth_l1_loss",
         arrays(input=normal(4, 5), target=normal(4, 5)), kwargs={"beta": 0.0}),
    Case("smooth_l1_loss-beta0-none", "smooth_l1_loss",
         arrays(input=normal(3, 4), target=normal(3, 4)),
         kwargs={"beta": 0.0, "reduction": "none"}),
    Case("smooth_l1_loss-beta0-ties-zero-gradient", "smooth_l1_loss",
         arrays(input=with_ties(0.5, 3, 4), target=lambda rng: np.full((3, 4), 0.5)),
         kwargs={"beta": 0.0, "reduction": "sum"}),
    # --- huber_loss: delta, weighted plain mean ------------------------------------------
    *_pointwise("huber_loss"),
    Case("huber_loss-delta0.3-none", "huber_loss",
         arrays(input=normal(4, 5), target=normal(4, 5)),
         kwargs={"delta": 0.3, "reduction": "none"}, grad=("input", "target")),
    Case("huber_loss-delta2.5-sum", "huber_loss",
         arrays(input=normal(4, 5), target=normal(4, 5)),
         kwargs={"delta": 2.5, "reduction": "sum"}),
    Case("huber_loss-delta0.5-weight-mean", "huber_loss",
         arrays(input=normal(4, 5), target=normal(4, 5), weight=uniform(4, 5)),
         kwargs={"delta": 0.5}, grad=("input", "weight")),
    # --- kl_div: reductions, batchmean, log_target ---------------------------------------
    *[
        Case(f"kl_div-{red}", "kl_div",
             arrays(input=lambda rng: np.log(probs(4, 5)(rng)), target=probs(4, 5)),
             kwargs={"reduction": red}, grad=("input", "target"))
        for red in ("none", "mean", "sum", "batchmean")
    ],
    Case("kl_div-batchmean-3d", "kl_div", arrays(input=normal(2, 3, 4), target=uniform(2, 3, 4)),
         kwargs={"reduction": "batchmean"}, grad=("input", "target")),
    Case("kl_div-batchmean-0d", "kl_div", arrays(input=normal(), target=uniform()),
         kwargs={"reduction": "batchmean"}, grad=("input", "target")),
    Case("kl_div-batchmean-1d", "kl_div", arrays(input=normal(5), target=uniform(5)),
         kwargs={"reduction": "batchmean"}),
    Case("kl_div-target-zeros-sum", "kl_div",
         arrays(input=normal(3, 4), target=lambda rng: rng.choice([0.0, 0.25, 0.5], (3, 4))),
         kwargs={"reduction": "sum"}),
    Case("kl_div-broadcast-target-row", "kl_div", arrays(input=normal(4, 5), target=probs(5)),
         kwargs={"reduction": "batchmean"}, grad=("input", "target")),
    *[
        Case(f"kl_div-log_target-{red}", "kl_div",
             arrays(input=normal(4, 5), target=lambda rng: np.log(probs(4, 5)(rng))),
             kwargs={"reduction": red, "log_target": True}, grad=("input", "target"))
        for red in ("none", "batchmean", "sum")
    ],
    # --- poisson_nll_loss: log_input x full, eps -----------------------------------------
    *[
        Case(f"poisson_nll_loss-log_input-{li}-full-{full}-{red}", "poisson_nll_loss",
             arrays(input=normal(4, 5) if li else uniform(4, 5, lo=0.1, hi=3.0),
                    target=counts(4, 5)),
             kwargs={"log_input": li, "full": full, "reduction": red})
        for li in (True, False)
        for full in (False, True)
        for red in ("mean", "none")
    ],
    Case("poisson_nll_loss-full-sum-target-grad", "poisson_nll_loss",
         arrays(input=normal(3, 4), target=uniform(3, 4, lo=0.5, hi=4.0)),
         kwargs={"full": True, "reduction": "sum"}, grad=("input", "target")),
    Case("poisson_nll_loss-rate-eps1e-2", "poisson_nll_loss",
         arrays(input=uniform(3, 4, lo=0.0, hi=2.0), target=counts(3, 4)),
         kwargs={"log_input": False, "eps": 1e-2}),
    Case("poisson_nll_loss-3d-broadcast-target", "poisson_nll_loss",
         arrays(input=normal(2, 3, 4), target=counts(3, 4)), kwargs={"reduction": "sum"}),
    # --- gaussian_nll_loss: var shapes, clamp, full --------------------------------------
    *[
        Case(f"gaussian_nll_loss-var-{name}", "gaussian_nll_loss",
             arrays(input=normal(4, 3), target=normal(4, 3), var=uniform(*shape, lo=0.2, hi=2.0)),
             args=("input", "target", "var"), grad=("input", "target", "var"))
        for name, shape in (("same", (4, 3)), ("per-sample", (4,)), ("column", (4, 1)),
                            ("row", (1, 3)))
    ],
    Case("gaussian_nll_loss-var-float", "gaussian_nll_loss",
         arrays(input=normal(4, 3), target=normal(4, 3)), kwargs={"var": 0.7},
         grad=("input", "target")),
    Case("gaussian_nll_loss-var-below-eps-straight-through", "gaussian_nll_loss",
         arrays(input=normal(4, 3), target=normal(4, 3),
                var=lambda rng: np.where(rng.random((4, 3)) < 0.5, 1e-9, 0.5)),
         args=("input", "target", "var"), kwargs={"reduction": "sum", "eps": 1e-3},
         grad=("input", "var")),
    Case("gaussian_nll_loss-var-zero-none", "gaussian_nll_loss",
         arrays(input=normal(2, 3), target=normal(2, 3), var=lambda rng: np.zeros((2, 3))),
         args=("input", "target", "var"), kwargs={"reduction": "none"}, grad=("input", "var")),
    Case("gaussian_nll_loss-full-sum", "gaussian_nll_loss",
         arrays(input=normal(4, 3), target=normal(4, 3), var=uniform(4, 3, lo=0.2, hi=2.0)),
         args=("input", "target", "var"), kwargs={"full": True, "reduction": "sum"},
         grad=("input", "var")),
    Case("gaussian_nll_loss-full-none-3d-per-sample", "gaussian_nll_loss",
         arrays(input=normal(2, 3, 4), target=normal(2, 3, 4), var=uniform(2, 3, lo=0.2, hi=2.0)),
         args=("input", "target", "var"), kwargs={"full": True, "reduction": "none"},
         grad=("input", "var")),
    Case("gaussian_nll_loss-3d-one-mismatched-dim", "gaussian_nll_loss",
         arrays(input=normal(2, 3, 4), target=normal(2, 3, 4), var=uniform(2, 1, 4, lo=0.2)),
         args=("input", "target", "var"), grad=("input", "var")),
    Case("gaussian_nll_loss-1d-input-0d-var", "gaussian_nll_loss",
         arrays(input=normal(5), target=normal(5), var=uniform(lo=0.2)),
         args=("input", "target", "var"), grad=("input", "var")),
    Case("gaussian_nll_loss-broadcast-target", "gaussian_nll_loss",
         arrays(input=normal(4, 3), target=normal(4, 1), var=uniform(4, 3, lo=0.2)),
         args=("input", "target", "var"), kwargs={"reduction": "none"},
         grad=("input", "target", "var")),
    # --- hinge_embedding_loss ------------------------------------------------------------
    Case("hinge_embedding_loss-mean", "hinge_embedding_loss",
         arrays(input=uniform(4, 5, hi=2.0), target=signs(4, 5))),
    Case("hinge_embedding_loss-margin0.5-none", "hinge_embedding_loss",
         arrays(input=normal(4, 5), target=signs(4, 5)),
         kwargs={"margin": 0.5, "reduction": "none"}),
    Case("hinge_embedding_loss-label-zero-both-terms-sum", "hinge_embedding_loss",
         arrays(input=normal(4, 5), target=signs(4, 5, values=(-1, 0, 1))),
         kwargs={"reduction": "sum"}),
    Case("hinge_embedding_loss-float-target-3d", "hinge_embedding_loss",
         arrays(input=normal(2, 3, 4), target=lambda rng: rng.choice([-1.0, 1.0], (2, 3, 4))),
         grad=("input",)),
    Case("hinge_embedding_loss-tie-at-margin-none", "hinge_embedding_loss",
         arrays(input=with_ties(1.0, 3, 4, every=2), target=signs(3, 4)),
         kwargs={"reduction": "none"}),
    Case("hinge_embedding_loss-broadcast-target-row", "hinge_embedding_loss",
         arrays(input=normal(3, 4), target=signs(4)), kwargs={"margin": 2.0, "reduction": "none"}),
    # --- margin_ranking_loss -------------------------------------------------------------
    Case("margin_ranking_loss-mean", "margin_ranking_loss",
         arrays(input1=normal(6), input2=normal(6), target=signs(6)),
         args=("input1", "input2", "target"), grad=("input1", "input2")),
    Case("margin_ranking_loss-margin0.5-none-float-target", "margin_ranking_loss",
         arrays(input1=normal(6), input2=normal(6),
                target=lambda rng: rng.choice([-1.0, 1.0], 6)),
         args=("input1", "input2", "target"), kwargs={"margin": 0.5, "reduction": "none"},
         grad=("input1", "input2", "target")),
    Case("margin_ranking_loss-ties-margin0-sum", "margin_ranking_loss",
         arrays(input1=with_ties(0.0, 6), input2=with_ties(0.0, 6), target=signs(6)),
         args=("input1", "input2", "target"), kwargs={"reduction": "sum"},
         grad=("input1", "input2")),
    Case("margin_ranking_loss-0d", "margin_ranking_loss",
         arrays(input1=normal(), input2=normal(), target=lambda rng: np.array(-1.0)),
         args=("input1", "input2", "target"), kwargs={"margin": 1.0},
         grad=("input1", "input2")),
    Case("margin_ranking_loss-broadcast-2d", "margin_ranking_loss",
         arrays(input1=normal(3, 4), input2=normal(1, 4), target=signs(3, 1)),
         args=("input1", "input2", "target"), kwargs={"margin": 0.2},
         grad=("input1", "input2")),
    # --- cosine_embedding_loss -----------------------------------------------------------
    *[
        Case(f"cosine_embedding_loss-{red}", "cosine_embedding_loss",
             arrays(input1=normal(5, 3), input2=normal(5, 3), target=signs(5)),
             args=("input1", "input2", "target"), kwargs={"reduction": red},
             grad=("input1", "input2"))
        for red in ("mean", "sum", "none")
    ],
    Case("cosine_embedding_loss-margin0.3-other-labels", "cosine_embedding_loss",
         arrays(input1=normal(6, 4), input2=normal(6, 4), target=signs(6, values=(-1, 0, 1, 2))),
         args=("input1", "input2", "target"), kwargs={"margin": 0.3, "reduction": "none"},
         grad=("input1", "input2")),
    Case("cosine_embedding_loss-negative-margin-float-target", "cosine_embedding_loss",
         arrays(input1=normal(4, 3), input2=normal(4, 3),
                target=lambda rng: np.array([-1.0, -1.0, 1.0, -1.0])),
         args=("input1", "input2", "target"), kwargs={"margin": -0.2},
         grad=("input1", "input2")),
    Case("cosine_embedding_loss-unbatched-0d-target", "cosine_embedding_loss",
         arrays(input1=normal(4), input2=normal(4), target=lambda rng: np.array(1, np.int64)),
         args=("input1", "input2", "target"), grad=("input1", "input2")),
    Case("cosine_embedding_loss-zero-vectors", "cosine_embedding_loss",
         arrays(input1=lambda rng: np.concatenate([np.zeros((2, 3)), rng.standard_normal((2, 3))]),
                input2=lambda rng: np.concatenate([rng.standard_normal((3, 3)), np.zeros((1, 3))]),
                target=lambda rng: np.array([1, -1, 1, 1], np.int64)),
         args=("input1", "input2", "target"), kwargs={"reduction": "none"},
         grad=("input1", "input2")),
    Case("cosine_embedding_loss-broadcast-input2-row", "cosine_embedding_loss",
         arrays(input1=normal(4, 3), input2=normal(1, 3), target=signs(4)),
         args=("input1", "input2", "target"), kwargs={"reduction": "none"},
         grad=("input1", "input2")),
    # --- triplet_margin_loss: p, swap, eps -----------------------------------------------
    *[
        Case(f"triplet_margin_loss-p{p}-swap-{swap}", "triplet_margin_loss",
             arrays(anchor=normal(5, 4), positive=normal(5, 4), negative=normal(5, 4)),
             args=("anchor", "positive", "negative"),
             kwargs={"p": p, "swap": swap, "margin": 2.0, "reduction": "none"},
             grad=("anchor", "positive", "negative"))
        for p in (1, 2, 3, 1.5, 0.5, math.inf)
        for swap in (False, True)
    ],
    Case("triplet_margin_loss-default-mean", "triplet_margin_loss",
         arrays(anchor=normal(6, 3), positive=normal(6, 3), negative=normal(6, 3)),
         args=("anchor", "positive", "negative"), grad=("anchor", "positive", "negative")),
    Case("triplet_margin_loss-p0-counts-nonzero", "triplet_margin_loss",
         arrays(anchor=normal(4, 3), positive=normal(4, 3), negative=normal(4, 3)),
         args=("anchor", "positive", "negative"), kwargs={"p": 0, "margin": 0.5}, grad=()),
    Case("triplet_margin_loss-margin0.5-sum", "triplet_margin_loss",
         arrays(anchor=normal(5, 4), positive=normal(5, 4), negative=normal(5, 4)),
         args=("anchor", "positive", "negative"), kwargs={"margin": 0.5, "reduction": "sum"},
         grad=("anchor", "positive", "negative")),
    Case("triplet_margin_loss-eps0-identical-positive", "triplet_margin_loss",
         lambda rng: _identical_positive(rng, 3, 4),
         args=("anchor", "positive", "negative"), kwargs={"eps": 0.0, "reduction": "none"},
         grad=("anchor", "positive", "negative")),
    Case("triplet_margin_loss-p1-eps0-identical-positive", "triplet_margin_loss",
         lambda rng: _identical_positive(rng, 3, 4),
         args=("anchor", "positive", "negative"), kwargs={"p": 1, "eps": 0.0, "margin": 4.0},
         grad=("anchor", "positive", "negative")),
    Case("triplet_margin_loss-unbatched", "triplet_margin_loss",
         arrays(anchor=normal(4), positive=normal(4), negative=normal(4)),
         args=("anchor", "positive", "negative"), kwargs={"margin": 3.0},
         grad=("anchor", "positive", "negative")),
    Case("triplet_margin_loss-broadcast-positive-row", "triplet_margin_loss",
         arrays(anchor=normal(4, 3), positive=normal(1, 3), negative=normal(4, 3)),
         args=("anchor", "positive", "negative"), kwargs={"swap": True, "reduction": "none"},
         grad=("anchor", "positive", "negative")),
    # --- triplet_margin_with_distance_loss (default distance), pairwise_distance -----------
    *[
        Case(f"triplet_margin_with_distance_loss-swap-{swap}-{r}",
             "triplet_margin_with_distance_loss",
             arrays(anchor=normal(5, 4), positive=normal(5, 4), negative=normal(5, 4)),
             args=("anchor", "positive", "negative"),
             kwargs={"swap": swap, "margin": 1.5, "reduction": r},
             grad=("anchor", "positive", "negative"))
        for swap in (False, True)
        for r in ("none", "mean", "sum")
    ],
    Case("triplet_margin_with_distance_loss-unbatched", "triplet_margin_with_distance_loss",
         arrays(anchor=normal(4), positive=normal(4), negative=normal(4)),
         args=("anchor", "positive", "negative"), kwargs={"margin": 3.0},
         grad=("anchor", "positive", "negative")),
    *[
        Case(f"pairwise_distance-p{p}", "pairwise_distance",
             arrays(x1=normal(5, 4), x2=normal(5, 4)), args=("x1", "x2"), kwargs={"p": p},
             grad=("x1", "x2"))
        for p in (1, 2, 3, 0.5, math.inf)
    ],
    Case("pairwise_distance-keepdim-eps0.1", "pairwise_distance",
         arrays(x1=normal(3, 4), x2=normal(3, 4)), args=("x1", "x2"),
         kwargs={"keepdim": True, "eps": 0.1}, grad=("x1", "x2")),
    Case("pairwise_distance-row-against-batch", "pairwise_distance",
         arrays(x1=normal(4, 3), x2=normal(3)), args=("x1", "x2"), grad=("x1", "x2")),
    Case("pairwise_distance-unbatched", "pairwise_distance",
         arrays(x1=normal(6), x2=normal(6)), args=("x1", "x2"), grad=("x1", "x2")),
]
