"""linear_cross_entropy configurations checked against torch (reference file
linear_cross_entropy.npz; torch's reference path, options=None).

Regenerate with ``python -m tests.losses.generate_reference linear_cross_entropy``. Bias,
class weights with label smoothing and an ignored target, a K-dimensional weight, probability
targets with unbatched input; gradients of input, linear weight and bias.
"""

from __future__ import annotations

from tests._reference import Case

ARGS = ("input", "linear_weight", "target")


def _make(n, d, C, out=(), *, bias=False, weight=False, ignore=(), probs=False):
    def make(rng):
        batch = () if n is None else (n,)
        arrays = {"input": rng.standard_normal((*batch, d)),
                  "linear_weight": rng.standard_normal((C, *out, d)) / d ** 0.5}
        if probs:
            p = rng.uniform(size=(*batch, C, *out))
            arrays["target"] = p / p.sum(axis=len(batch), keepdims=True)
        else:
            t = rng.integers(0, C, (*batch, *out))
            t.reshape(-1)[list(ignore)] = -100
            arrays["target"] = t
        if bias:
            arrays["linear_bias"] = rng.standard_normal((C, *out))
        if weight:
            arrays["weight"] = rng.uniform(0.2, 2.0, C)
        return arrays

    return make


def _case(id, make, grad=("input", "linear_weight"), dtypes=("float64",), **kwargs):
    return Case(id, "linear_cross_entropy", make, args=ARGS, kwargs=kwargs, grad=grad,
                dtypes=dtypes)


CASES = [
    _case("lce-bias-mean", _make(9, 5, 13, bias=True), grad=("input", "linear_weight",
                                                            "linear_bias"),
          dtypes=("float64", "float32")),
    _case("lce-weight-smoothing-ignore-sum", _make(7, 4, 6, weight=True, ignore=(2,)),
          reduction="sum", label_smoothing=0.1),
    _case("lce-kdim-none", _make(3, 4, 5, out=(2,), bias=True), reduction="none"),
    _case("lce-probabilities-unbatched", _make(None, 6, 8, probs=True), reduction="mean"),
]
