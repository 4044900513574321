"""torch.optim.swa_utils.AveragedModel cases: which averaging function, as
``(name, torch_kwargs(swa_utils), fnlearn_kwargs(fnlearn swa_utils))``; the parameter
snapshots each case averages. Written by ``python -m tests.generate_reference swa_utils``
into reference/swa_utils.npz (so this module needs no torch)."""

from __future__ import annotations

import numpy as np

SHAPES = {"w": (2, 3), "b": (3,)}
UPDATES = 8

CASES = {
    "swa-default": (lambda u: {}, lambda f: {}),
    "ema-avg_fn": (lambda u: {"avg_fn": u.get_ema_avg_fn(0.9)},
                   lambda f: {"avg_fn": f.get_ema_avg_fn(0.9)}),
    "ema-multi_avg_fn": (lambda u: {"multi_avg_fn": u.get_ema_multi_avg_fn(0.95)},
                         lambda f: {"multi_avg_fn": f.get_ema_multi_avg_fn(0.95)}),
    "swa-multi_avg_fn": (lambda u: {"multi_avg_fn": u.get_swa_multi_avg_fn()},
                         lambda f: {"multi_avg_fn": f.get_swa_multi_avg_fn()}),
}


def snapshots() -> list[dict[str, np.ndarray]]:
    """The model's parameters at each ``update_parameters`` call (float64)."""
    rng = np.random.default_rng(11)
    return [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(UPDATES)]
