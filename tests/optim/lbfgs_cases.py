"""torch.optim.LBFGS cases: two problems (Rosenbrock in 4-D; a
least-squares fit with a quartic penalty, two parameter arrays) and the configurations run on
each. Written by
``python -m tests.generate_reference lbfgs`` into reference/lbfgs.npz. Each problem is
written twice, for torch and for JAX (this module needs no torch: ``xp`` is the array module).
"""

from __future__ import annotations

import numpy as np

STEPS = 6
CONFIGS = {
    "default": {},
    "strong_wolfe": dict(line_search_fn="strong_wolfe"),
    "lr-history-max_iter": dict(lr=0.5, max_iter=7, history_size=3),
    "wolfe-history-max_iter": dict(line_search_fn="strong_wolfe", history_size=2, max_iter=5),
    "tolerances-max_eval": dict(tolerance_grad=1e-3, tolerance_change=1e-4, max_eval=9,
                                line_search_fn="strong_wolfe"),
}
_rng = np.random.default_rng(5)
A, B = _rng.standard_normal((8, 5)), _rng.standard_normal(8)
PROBLEMS = {
    "rosenbrock": {"x": np.array([-1.2, 1.0, 0.5, -0.3])},
    "least-squares": {"b": np.array([0.1]), "w": _rng.standard_normal(5) * 0.1},
}


def loss(problem: str, p: dict, xp) -> object:
    """The problem's loss of the parameter dict ``p`` (keys in sorted order)."""
    if problem == "rosenbrock":
        x = p["x"]
        return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
    a, b = xp.asarray(A, dtype=p["w"].dtype), xp.asarray(B, dtype=p["w"].dtype)
    return ((a @ p["w"] + p["b"] - b) ** 2).sum() + 0.1 * (p["w"] ** 4).sum()
