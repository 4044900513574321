"""sparse_adam against a live torch.optim.SparseAdam on random configurations: shapes, rows
or entries, repeated indices, options; gradients as BCOO and as IndexedRows."""

from __future__ import annotations

import numpy as np
import pytest

from tests.optim.sparse_adam_cases import SparseCase, inputs, run_torch
from tests.optim.test_sparse_adam import RTOL, run

pytest.importorskip("torch")
pytestmark = pytest.mark.torch


@pytest.mark.parametrize("seed", range(4))
def test_random_sparse_adam_matches_torch(seed):
    rng = np.random.default_rng(seed)
    kind = "rows" if seed % 2 == 0 else "entries"
    shape = (int(rng.integers(2, 9)), *rng.integers(1, 4, size=int(rng.integers(1, 3))).tolist())
    options = {"lr": float(np.exp(rng.uniform(np.log(1e-3), np.log(0.3)))),
               "betas": (float(rng.uniform(0.0, 0.99)), float(rng.uniform(0.5, 0.9999))),
               "eps": float(np.exp(rng.uniform(np.log(1e-10), np.log(1e-2)))),
               "maximize": bool(rng.random() < 0.5)}
    case = SparseCase(f"live-{seed}", tuple(shape), kind, options, steps=8,
                      nnz=int(rng.integers(1, 2 * shape[0])), empty=(int(rng.integers(0, 8)),))
    p0, steps = inputs(case, seed=seed)
    forms = ("bcoo", "rows") if kind == "rows" else ("bcoo",)
    for dtype in ("float64", "float32"):
        params, m, v = run_torch(case, dtype, p0, steps)
        for form in forms:
            trajectory, state = run(case, dtype, form, steps, p0)
            rtol = RTOL[dtype]
            np.testing.assert_allclose(trajectory, params, rtol=rtol, atol=rtol * 1e-3)
            np.testing.assert_allclose(state.exp_avg, m, rtol=rtol, atol=rtol * 1e-3)
            np.testing.assert_allclose(state.exp_avg_sq, v, rtol=rtol, atol=rtol * 1e-6)
