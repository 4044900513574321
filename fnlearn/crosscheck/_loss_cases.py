"""The catalogue's loss rows: every loss configuration with an optax counterpart or a torch one,
grouped by loss family."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._optim_cases import options_text


@dataclass(frozen=True)
class LossCase:
    """One loss configuration. ``make(rng)`` returns the positional inputs followed by the
    array keyword arguments named in ``array_kwargs``; ``options`` are the static ones."""

    fn: str
    make: Callable[[np.random.Generator], tuple[Any, ...]]
    n_positional: int = 2
    options: dict[str, Any] = field(default_factory=dict)
    array_kwargs: tuple[str, ...] = ()
    wrt: tuple[int, ...] = (0,)
    optax: Callable[..., Any] | None = None
    optax_text: str = ""
    expected: str = "match"
    reason: str = ""
    label: str = ""

    def call(self, module: Any) -> Callable[..., Any]:
        fn = getattr(module, self.fn)
        n, names, options = self.n_positional, self.array_kwargs, self.options

        def loss(*xs: Any) -> Any:
            return fn(*xs[:n], **options, **dict(zip(names, xs[n:], strict=True)))

        return loss

    def describe(self) -> str:
        return self.label or options_text(self.options)


def _triplet(r: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Anchor, positive and negative embeddings, (6, 4) each."""
    return tuple(r.standard_normal((6, 4)) for _ in range(3))


def _rng_logits(r: np.random.Generator) -> np.ndarray:
    return r.standard_normal((6, 5))


def _rng_labels(r: np.random.Generator) -> np.ndarray:
    return r.integers(0, 5, 6)


def _probs(r: np.random.Generator, shape: tuple[int, ...] = (6, 5)) -> np.ndarray:
    e = np.exp(r.standard_normal(shape))
    return e / e.sum(-1, keepdims=True)


def _log_softmax(x: Any) -> Any:
    return jax.nn.log_softmax(x, axis=-1)


def _regression_cases() -> list[LossCase]:
    """Elementwise regression losses: MSE, L1, smooth L1, Huber."""
    L = optax.losses
    xy = lambda r: (r.standard_normal((6, 4)), r.standard_normal((6, 4)))  # noqa: E731
    return [
        LossCase("mse_loss", xy, optax=lambda x, y: L.squared_error(x, y).mean(),
                 optax_text="optax.losses.squared_error(x, y).mean()"),
        LossCase("mse_loss", xy, options=dict(reduction="none"),
                 optax=lambda x, y: L.squared_error(x, y),
                 optax_text="optax.losses.squared_error(x, y)"),
        LossCase("l1_loss", xy),
        LossCase("l1_loss", lambda r: (*xy(r), r.uniform(0.1, 1, (6, 4))),
                 array_kwargs=("weight",), label="weight=(6, 4)"),
        LossCase("smooth_l1_loss", xy, options=dict(beta=0.5),
                 optax=lambda x, y: (L.huber_loss(x, y, delta=0.5) / 0.5).mean(),
                 optax_text="(optax.losses.huber_loss(x, y, delta=0.5) / 0.5).mean()"),
        LossCase("huber_loss", xy, options=dict(delta=1.5),
                 optax=lambda x, y: L.huber_loss(x, y, delta=1.5).mean(),
                 optax_text="optax.losses.huber_loss(x, y, delta=1.5).mean()"),
    ]


def _binary_cross_entropy_cases() -> list[LossCase]:
    """Binary cross-entropy on probabilities and on logits."""
    L = optax.losses
    return [
        LossCase("binary_cross_entropy",
                 lambda r: (r.uniform(0.05, 0.95, (6, 4)), r.uniform(0, 1, (6, 4))),
                 optax=lambda p, y: L.sigmoid_binary_cross_entropy(
                     jnp.log(p) - jnp.log1p(-p), y).mean(),
                 optax_text="optax.losses.sigmoid_binary_cross_entropy(logit(p), y).mean()",
                 label="p in (0.05, 0.95)"),
        LossCase("binary_cross_entropy",
                 lambda r: (np.array([0.0, 1.0, 0.3, 1.0]), np.array([1.0, 0.0, 1.0, 1.0])),
                 optax=lambda p, y: L.sigmoid_binary_cross_entropy(
                     jnp.log(p) - jnp.log1p(-p), y).mean(),
                 optax_text="optax.losses.sigmoid_binary_cross_entropy(logit(p), y).mean()",
                 expected="differ", label="p = 0 or 1 against the wrong label",
                 reason="torch clamps each log at -100 (a confident wrong prediction costs 100, "
                        "never inf); optax has no probability-space BCE and no clamp"),
        LossCase("binary_cross_entropy_with_logits",
                 lambda r: (r.standard_normal((6, 4)), r.uniform(0, 1, (6, 4))),
                 optax=lambda x, y: L.sigmoid_binary_cross_entropy(x, y).mean(),
                 optax_text="optax.losses.sigmoid_binary_cross_entropy(x, y).mean()"),
        LossCase("binary_cross_entropy_with_logits",
                 lambda r: (r.standard_normal((6, 4)), r.uniform(0, 1, (6, 4)),
                            r.uniform(0.5, 3, (4,))),
                 array_kwargs=("pos_weight",), label="pos_weight=(4,)"),
    ]


def _cross_entropy_cases() -> list[LossCase]:
    """Cross-entropy (class indices, probabilities, smoothing, ignore_index) and NLL."""
    L = optax.losses
    return [
        LossCase("cross_entropy", lambda r: (_rng_logits(r), _rng_labels(r)),
                 optax=lambda x, y: L.softmax_cross_entropy_with_integer_labels(x, y).mean(),
                 optax_text="optax.losses.softmax_cross_entropy_with_integer_labels(x, y)"
                            ".mean()"),
        LossCase("cross_entropy", lambda r: (_rng_logits(r), _probs(r)),
                 optax=lambda x, t: L.softmax_cross_entropy(x, t).mean(),
                 optax_text="optax.losses.softmax_cross_entropy(x, t).mean()",
                 label="probability targets"),
        LossCase("cross_entropy", lambda r: (_rng_logits(r), _rng_labels(r)),
                 options=dict(label_smoothing=0.1),
                 optax=lambda x, y: L.softmax_cross_entropy(
                     x, optax.smooth_labels(jax.nn.one_hot(y, 5, dtype=x.dtype), 0.1)).mean(),
                 optax_text="optax.losses.softmax_cross_entropy(x, optax.smooth_labels("
                            "one_hot(y, C), 0.1)).mean()"),
        LossCase("cross_entropy",
                 lambda r: (_rng_logits(r), np.array([0, -100, 2, 3, -100, 1])),
                 optax=lambda x, y: L.softmax_cross_entropy_with_integer_labels(x, y).mean(),
                 optax_text="optax.losses.softmax_cross_entropy_with_integer_labels(x, y)"
                            ".mean()",
                 expected="differ", label="targets with ignore_index=-100",
                 reason="optax has no ignore_index: a label -100 (or >= C) silently gives nan "
                        "(optax#1185); torch drops those targets from the sum and the count"),
        LossCase("cross_entropy",
                 lambda r: (_rng_logits(r), np.array([0, -100, 2, 3, -100, 1]),
                            r.uniform(0.5, 2, (5,))),
                 options=dict(label_smoothing=0.2), array_kwargs=("weight",),
                 label="weight, ignore_index, label_smoothing=0.2"),
        LossCase("cross_entropy",
                 lambda r: (_rng_logits(r), np.full(6, -100)),
                 label="every target ignored ('mean' is nan, gradient 0)"),
        LossCase("nll_loss",
                 lambda r: (np.asarray(_log_softmax(_rng_logits(r))), _rng_labels(r),
                            r.uniform(0.5, 2, (5,))),
                 array_kwargs=("weight",), label="weight=(5,)"),
    ]


def _probabilistic_cases() -> list[LossCase]:
    """KL divergence and the Poisson and Gaussian NLLs."""
    L = optax.losses
    return [
        LossCase("kl_div", lambda r: (np.log(_probs(r)), _probs(r)),
                 options=dict(reduction="batchmean"),
                 optax=lambda x, t: L.kl_divergence(x, t).mean(),
                 optax_text="optax.losses.kl_divergence(x, t).mean()"),
        LossCase("kl_div", lambda r: (np.log(_probs(r)), np.log(_probs(r))),
                 options=dict(reduction="batchmean", log_target=True),
                 optax=lambda x, t: L.kl_divergence_with_log_targets(x, t).mean(),
                 optax_text="optax.losses.kl_divergence_with_log_targets(x, t).mean()"),
        LossCase("poisson_nll_loss", lambda r: (r.standard_normal((6, 4)),
                                                r.poisson(2.0, (6, 4)).astype(float)),
                 options=dict(full=True)),
        LossCase("gaussian_nll_loss",
                 lambda r: (r.standard_normal((6, 4)), r.standard_normal((6, 4)),
                            np.concatenate([r.uniform(0.1, 2, (5, 4)), np.full((1, 4), 1e-8)])),
                 n_positional=3, wrt=(0, 2), label="var below eps in one row"),
    ]


def _soft_margin_cases() -> list[LossCase]:
    """The logistic margin losses (optax's sigmoid BCE in disguise)."""
    L = optax.losses
    return [
        LossCase("soft_margin_loss",
                 lambda r: (r.standard_normal((6, 4)), r.choice([-1.0, 1.0], (6, 4))),
                 optax=lambda x, y: L.sigmoid_binary_cross_entropy(y * x, jnp.ones_like(x))
                 .mean(),
                 optax_text="optax.losses.sigmoid_binary_cross_entropy(y * x, 1).mean()"),
        LossCase("multilabel_soft_margin_loss",
                 lambda r: (r.standard_normal((6, 4)), r.integers(0, 2, (6, 4)).astype(float)),
                 optax=lambda x, y: L.sigmoid_binary_cross_entropy(x, y).mean(-1).mean(),
                 optax_text="optax.losses.sigmoid_binary_cross_entropy(x, y).mean(-1).mean()"),
    ]


def _embedding_cases() -> list[LossCase]:
    """Embedding losses: hinge, ranking, cosine and triplet."""
    L = optax.losses
    return [
        LossCase("hinge_embedding_loss",
                 lambda r: (r.standard_normal((6, 4)), r.choice([-1.0, 1.0], (6, 4))),
                 optax=lambda x, y: L.hinge_loss(x, y).mean(),
                 optax_text="optax.losses.hinge_loss(x, y).mean()", expected="differ",
                 reason="a different loss: torch's is x for y=1 and max(0, margin - x) for "
                        "y=-1, optax's hinge_loss is max(0, 1 - y x)"),
        LossCase("margin_ranking_loss",
                 lambda r: (r.standard_normal(6), r.standard_normal(6),
                            r.choice([-1.0, 1.0], 6)),
                 n_positional=3, wrt=(0, 1), options=dict(margin=0.2)),
        LossCase("cosine_embedding_loss",
                 lambda r: (r.standard_normal((6, 4)), r.standard_normal((6, 4)), np.ones(6)),
                 n_positional=3, wrt=(0, 1),
                 optax=lambda a, b, y: L.cosine_distance(a, b).mean(),
                 optax_text="optax.losses.cosine_distance(x1, x2).mean()", label="y = 1"),
        LossCase("cosine_embedding_loss",
                 lambda r: (np.concatenate([np.zeros((1, 4)), r.standard_normal((5, 4))]),
                            r.standard_normal((6, 4)), np.ones(6)),
                 n_positional=3, wrt=(0, 1),
                 optax=lambda a, b, y: L.cosine_distance(a, b).mean(),
                 optax_text="optax.losses.cosine_distance(x1, x2).mean()", expected="differ",
                 label="y = 1, a zero vector",
                 reason="torch adds 1e-12 to each squared norm (a zero vector gives cos 0, loss "
                        "1); optax clips the norms with epsilon=0 (0/0 = nan); elsewhere they "
                        "agree to ~1e-12"),
        LossCase("triplet_margin_loss",
                 _triplet,
                 n_positional=3, wrt=(0, 1, 2),
                 optax=lambda a, p, n: L.triplet_margin_loss(a, p, n).mean(),
                 optax_text="optax.losses.triplet_margin_loss(a, p, n).mean()",
                 expected="differ",
                 reason="torch's distance is ||a - b + eps||_p, optax's (sum((a - b)^p) + eps)"
                        "^(1/p) without abs: p=2 differs by ~1e-6, p=1 by O(1), odd p gives nan"),
        LossCase("triplet_margin_loss",
                 _triplet,
                 n_positional=3, wrt=(0, 1, 2), options=dict(p=1.0, swap=True)),
        LossCase("triplet_margin_with_distance_loss",
                 _triplet,
                 n_positional=3, wrt=(0, 1, 2), options=dict(margin=1.5, swap=True),
                 label="default distance, margin=1.5, swap=True"),
    ]


def _class_margin_cases() -> list[LossCase]:
    """The multi-class hinge losses."""
    L = optax.losses
    return [
        LossCase("multi_margin_loss", lambda r: (_rng_logits(r), _rng_labels(r)),
                 optax=lambda x, y: L.multiclass_hinge_loss(x, y).mean(),
                 optax_text="optax.losses.multiclass_hinge_loss(x, y).mean()",
                 expected="differ",
                 reason="torch sums the margin violations over the wrong classes and divides by "
                        "C; optax's multiclass_hinge_loss (Crammer-Singer) takes their maximum"),
        LossCase("multilabel_margin_loss",
                 lambda r: (_rng_logits(r), np.array([[3, 0, -1, 1, 1]] * 3
                                                     + [[1, 2, 4, -1, 0]] * 3))),
    ]


def _sequence_cases() -> list[LossCase]:
    """CTC and the chunked linear cross-entropy."""
    L = optax.losses
    return [
        LossCase("ctc_loss", _ctc_problem, n_positional=4, options=dict(reduction="none"),
                 optax=_optax_ctc, optax_text=_OPTAX_CTC),
        LossCase("ctc_loss", _ctc_problem, n_positional=4,
                 optax=lambda *a: _optax_ctc(*a).mean(), optax_text=_OPTAX_CTC + ".mean()",
                 expected="differ",
                 reason="torch's 'mean' divides each sequence's loss by its target length "
                        "before averaging; optax returns per-sequence losses (their plain mean "
                        "differs)"),
        LossCase("linear_cross_entropy",
                 lambda r: (r.standard_normal((6, 4)), r.standard_normal((9, 4)),
                            r.integers(0, 9, 6)),
                 n_positional=3, wrt=(0, 1),
                 optax=lambda x, w, y: L.softmax_cross_entropy_with_integer_labels(
                     x @ w.T, y).mean(),
                 optax_text="optax.losses.softmax_cross_entropy_with_integer_labels("
                            "x @ w.T, y).mean()"),
    ]


def loss_cases() -> list[LossCase]:
    """Every loss row, family by family."""
    return [
        *_regression_cases(),
        *_binary_cross_entropy_cases(),
        *_cross_entropy_cases(),
        *_probabilistic_cases(),
        *_soft_margin_cases(),
        *_embedding_cases(),
        *_class_margin_cases(),
        *_sequence_cases(),
    ]


_OPTAX_CTC = ("optax.losses.ctc_loss(log_probs.swapaxes(0, 1), logit_paddings, targets, "
              "label_paddings)")


def _ctc_problem(r: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(T=10, N=4, C=5) log-probabilities, padded targets, input and target lengths."""
    x = r.standard_normal((10, 4, 5))
    log_probs = x - np.log(np.exp(x).sum(-1, keepdims=True))
    return (log_probs, r.integers(1, 5, (4, 3)), np.array([10, 9, 7, 10]),
            np.array([3, 2, 3, 1]))


def _optax_ctc(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any) -> Any:
    """optax's conventions: batch-first logits (log-probs are their own log_softmax), 0/1
    paddings instead of lengths, blank_id 0, per-sequence losses."""
    T, S = log_probs.shape[0], targets.shape[1]
    logit_pad = (jnp.arange(T)[None, :] >= input_lengths[:, None]).astype(log_probs.dtype)
    label_pad = (jnp.arange(S)[None, :] >= target_lengths[:, None]).astype(log_probs.dtype)
    return optax.losses.ctc_loss(jnp.swapaxes(log_probs, 0, 1), logit_pad, targets, label_pad,
                                 blank_id=0)


