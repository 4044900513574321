"""Regenerate tests/optim/reference/sparse_adam.npz with torch (pip install -e ".[torch]").

    python -m tests.optim.generate_sparse_adam_reference

Stored per case (tests/optim/sparse_adam_cases.py) and dtype: ``<case>|<dtype>|params``
(the parameter after every step), ``<case>|<dtype>|exp_avg``, ``<case>|<dtype>|exp_avg_sq``
(the final state). The inputs are regenerated from the case's seed by ``inputs``.
"""

from __future__ import annotations

import numpy as np

from tests._reference import TESTS
from tests.optim.sparse_adam_cases import CASES, inputs, run_torch

OUT = TESTS / "optim" / "reference" / "sparse_adam.npz"
DTYPES = ("float64", "float32")


def main() -> None:
    arrays = {}
    for case in CASES:
        p0, steps = inputs(case)
        arrays[f"{case.id}|p0"] = p0
        for dtype in DTYPES:
            params, m, v = run_torch(case, dtype, p0, steps)
            arrays[f"{case.id}|{dtype}|params"] = params
            arrays[f"{case.id}|{dtype}|exp_avg"] = m
            arrays[f"{case.id}|{dtype}|exp_avg_sq"] = v
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(arrays)} arrays)")


if __name__ == "__main__":
    main()
