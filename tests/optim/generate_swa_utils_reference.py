"""Regenerate tests/optim/reference/swa_utils.npz with torch (pip install -e ".[torch]").

    python -m tests.generate_reference swa_utils

For every case of tests/optim/swa_utils_cases.py and dtype (torch's default dtype float64):
a module whose parameters take each snapshot in turn, ``AveragedModel.update_parameters``
after each; stored ``<case>|<dtype>|<name>``: the averaged parameter after every update,
``(updates, *shape)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.optim import swa_utils

from tests._reference import TESTS
from tests.optim.swa_utils_cases import CASES, SHAPES, snapshots

OUT = TESTS / "optim" / "reference" / "swa_utils.npz"


class _Model(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        for name, shape in SHAPES.items():
            self.register_parameter(name, torch.nn.Parameter(torch.zeros(shape, dtype=dtype)))


def run_torch(name: str, dtype: str) -> dict[str, np.ndarray]:
    tdt = getattr(torch, dtype)
    model = _Model(tdt)
    averaged = swa_utils.AveragedModel(model, **CASES[name][0](swa_utils))
    out: dict[str, list] = {k: [] for k in SHAPES}
    for snap in snapshots():
        with torch.no_grad():
            for k in SHAPES:
                getattr(model, k).copy_(torch.tensor(snap[k], dtype=tdt))
        averaged.update_parameters(model)
        for k in SHAPES:
            out[k].append(getattr(averaged.module, k).detach().numpy().copy())
    return {k: np.stack(v) for k, v in out.items()}


def generate() -> None:
    # torch's get_swa_multi_avg_fn weighs by 1 / (n_averaged + 1), a tensor of the default
    # dtype: float64 here, as a float64 torch script sets it
    torch.set_default_dtype(torch.float64)
    data = {}
    for name in CASES:
        for dtype in ("float64", "float32"):
            for k, v in run_torch(name, dtype).items():
                data[f"{name}|{dtype}|{k}"] = v
    np.savez_compressed(OUT, **data)
    print(f"swa_utils: {len(CASES)} cases -> {OUT}")

