"""Muon's reference cases (torch.optim.Muon takes matrices only, so it has its own shapes and
file: ``python -m tests.generate_reference muon`` writes reference/muon.npz).

Two torch runs per case and dtype: torch's Muon as it is (Newton-Schulz in bfloat16), the
reference for fnlearn's default ``ns_dtype``; and the same with its Newton-Schulz function
run in float64 (:func:`ns_float64`, the only change), the reference for ``ns_dtype=float64``
at the usual tolerances.
"""

from __future__ import annotations

import numpy as np

SHAPES = ((4, 6), (7, 3))  # a wide and a tall matrix (torch transposes the tall one)
STEPS = 30
CASES = {
    "default": {},
    "no-nesterov-momentum": dict(nesterov=False, momentum=0.8),
    "wd-lr": dict(lr=0.02, weight_decay=0.3),
    "match_rms_adamw": dict(adjust_lr_fn="match_rms_adamw", weight_decay=0.0),
    "coefficients-steps-eps": dict(ns_coefficients=(2.0, -1.5, 0.5), ns_steps=3, eps=1e-3),
}


def inputs(name: str) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """The case's start point and gradient sequence (float64; cast per dtype)."""
    rng = np.random.default_rng(sorted(CASES).index(name))
    p0 = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) * np.exp(rng.uniform(-2, 2)) for s in SHAPES]
             for _ in range(STEPS)]
    return p0, grads


def ns_float64(grad, ns_coefficients, ns_steps, eps):
    """torch's ``_zeropower_via_newtonschulz`` with ``.double()`` for ``.bfloat16()``."""
    import torch

    a, b, c = ns_coefficients
    x = grad.double()
    tall = grad.size(0) > grad.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        m = x @ x.T
        m2 = torch.addmm(m, m, m, beta=b, alpha=c)
        x = torch.addmm(x, m2, x, beta=a)
    return x.T if tall else x
