"""ctc_loss configurations checked against torch (reference file ctc.npz).

Regenerate with ``python -m tests.losses.generate_reference ctc`` (needs torch). Padded and
concatenated targets, unbatched input, every reduction, a blank other than 0, repeated labels
(which need a blank between them), an input length of 0, impossible alignments with and
without ``zero_infinity``, unnormalized log-probabilities and a longer float32 sequence.
"""

from __future__ import annotations

import numpy as np

from tests._reference import Case

ARGS = ("log_probs", "targets", "input_lengths", "target_lengths")


def _log_softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def _problem(T, N, C, S, *, il, tl, blank=0, concat=False, normalized=True, targets=None):
    """Random log-probs ``(T, N, C)`` and labels in ``[0, C)`` other than ``blank``."""

    def make(rng):
        x = rng.standard_normal((T, N, C)) * 2
        lp = _log_softmax(x) if normalized else x
        labels = [c for c in range(C) if c != blank]
        t = np.asarray(targets) if targets is not None else rng.choice(labels, (N, S))
        lengths = np.asarray(tl)
        if concat:
            t = np.concatenate([t[n, :lengths[n]] for n in range(N)])
        return {"log_probs": lp, "targets": t, "input_lengths": np.asarray(il),
                "target_lengths": lengths}

    return make


def _unbatched(T, C, S, il, tl, padded=False):
    """Unbatched ``(T, C)``; targets ``(S,)`` (torch: concatenated, so S == target length) or
    padded ``(1, S)``."""

    def make(rng):
        lp = _log_softmax(rng.standard_normal((T, C)))
        return {"log_probs": lp, "targets": rng.integers(1, C, (1, S) if padded else S),
                "input_lengths": np.asarray(il), "target_lengths": np.asarray(tl)}

    return make


def _case(id, make, **kwargs):
    return Case(id, "ctc_loss", make, args=ARGS, kwargs=kwargs, grad=("log_probs",))


CASES = [
    _case("ctc-padded-mean", _problem(10, 3, 5, 4, il=[10, 8, 6], tl=[4, 2, 3])),
    _case("ctc-padded-none", _problem(10, 3, 5, 4, il=[10, 9, 7], tl=[3, 4, 1]),
          reduction="none"),
    _case("ctc-padded-sum", _problem(8, 2, 4, 3, il=[8, 8], tl=[3, 3]), reduction="sum"),
    _case("ctc-repeated-labels", _problem(9, 2, 4, 4, il=[9, 7], tl=[4, 3],
                                          targets=[[2, 2, 3, 3], [1, 1, 1, 0]]),
          reduction="none"),
    _case("ctc-concatenated", _problem(10, 3, 6, 4, il=[10, 7, 9], tl=[4, 1, 3], concat=True),
          reduction="none"),
    _case("ctc-concatenated-mean", _problem(7, 2, 3, 3, il=[7, 6], tl=[2, 3], concat=True)),
    _case("ctc-blank-last", _problem(8, 2, 5, 3, il=[8, 6], tl=[3, 2], blank=4), blank=4,
          reduction="none"),
    _case("ctc-unbatched", _unbatched(9, 4, 3, 9, 3), reduction="none"),
    _case("ctc-unbatched-padded-mean", _unbatched(9, 4, 3, [7], [2], padded=True)),
    _case("ctc-input-length-0", _problem(6, 3, 4, 2, il=[0, 6, 0], tl=[0, 2, 0]),
          reduction="none"),
    _case("ctc-target-length-0-mean", _problem(6, 2, 4, 2, il=[6, 5], tl=[0, 2])),
    _case("ctc-impossible", _problem(4, 2, 4, 3, il=[2, 4], tl=[3, 2],
                                     targets=[[1, 1, 2], [1, 2, 0]]), reduction="none"),
    _case("ctc-impossible-zero-infinity", _problem(4, 2, 4, 3, il=[3, 4], tl=[3, 2],
                                                   targets=[[1, 1, 2], [1, 2, 0]]),
          reduction="mean", zero_infinity=True),
    _case("ctc-unnormalized", _problem(8, 2, 5, 3, il=[8, 5], tl=[3, 2], normalized=False),
          reduction="sum"),
    _case("ctc-long", _problem(60, 2, 7, 20, il=[60, 45], tl=[20, 12])),
]

#: The cases of the default run (one compile each, and a CTC compile is slow); the rest run
#: in the exhaustive tier.
DEFAULT_RUN = {"ctc-padded-mean", "ctc-concatenated", "ctc-impossible"}
