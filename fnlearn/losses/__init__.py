"""torch.nn.functional's loss functions (and torch.nn's loss classes) for JAX.

Each loss computes torch's unreduced loss and hands it to :func:`reduce`; its docstring states
the denominator of its ``'mean'``. The result has the dtype torch returns; arithmetic runs in
float32 for bfloat16/float16 inputs, as torch's CPU kernels do.

**Values torch checks at run time** (a class index out of range, a probability outside
[0, 1]): on concrete arrays (eager calls) the losses raise torch's exception with torch's
message. Under ``jit`` there are no run-time errors, so the affected loss entries are ``nan``
instead, and so is the gradient of the affected sample: never a silently wrong finite number.
"""

from ._binary_cross_entropy import binary_cross_entropy, binary_cross_entropy_with_logits
from ._classes import (
    BCELoss,
    BCEWithLogitsLoss,
    CosineEmbeddingLoss,
    CrossEntropyLoss,
    CTCLoss,
    GaussianNLLLoss,
    HingeEmbeddingLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MarginRankingLoss,
    MSELoss,
    MultiLabelMarginLoss,
    MultiLabelSoftMarginLoss,
    MultiMarginLoss,
    NLLLoss,
    PoissonNLLLoss,
    SmoothL1Loss,
    SoftMarginLoss,
    TripletMarginLoss,
    TripletMarginWithDistanceLoss,
)
from ._cross_entropy import check_targets, cross_entropy, nll_loss
from ._ctc import ctc_loss
from ._embedding import (
    cosine_embedding_loss,
    hinge_embedding_loss,
    margin_ranking_loss,
    pairwise_distance,
    triplet_margin_loss,
    triplet_margin_with_distance_loss,
)
from ._linear_cross_entropy import LinearCrossEntropyOptions, linear_cross_entropy
from ._margin import (
    multi_margin_loss,
    multilabel_margin_loss,
    multilabel_soft_margin_loss,
    soft_margin_loss,
)
from ._probabilistic import gaussian_nll_loss, kl_div, poisson_nll_loss
from ._reduction import reduce
from ._regression import huber_loss, l1_loss, mse_loss, smooth_l1_loss

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CosineEmbeddingLoss",
    "CTCLoss",
    "CrossEntropyLoss",
    "GaussianNLLLoss",
    "HingeEmbeddingLoss",
    "HuberLoss",
    "LinearCrossEntropyOptions",
    "KLDivLoss",
    "L1Loss",
    "MarginRankingLoss",
    "MSELoss",
    "MultiLabelMarginLoss",
    "MultiLabelSoftMarginLoss",
    "MultiMarginLoss",
    "NLLLoss",
    "PoissonNLLLoss",
    "SmoothL1Loss",
    "SoftMarginLoss",
    "TripletMarginLoss",
    "TripletMarginWithDistanceLoss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "check_targets",
    "cross_entropy",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "soft_margin_loss",
    "cosine_embedding_loss",
    "ctc_loss",
    "gaussian_nll_loss",
    "hinge_embedding_loss",
    "kl_div",
    "linear_cross_entropy",
    "margin_ranking_loss",
    "poisson_nll_loss",
    "pairwise_distance",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
    "huber_loss",
    "l1_loss",
    "mse_loss",
    "smooth_l1_loss",
    "reduce",
]
