"""Regenerate tests/optim/reference/muon.npz with torch (pip install -e ".[torch]").

    python -m tests.generate_reference muon

Stored per case (tests/optim/muon_cases.py): ``<case>|p0|<i>``, ``<case>|grads|<i>`` (steps,
*shape), and per dtype and Newton-Schulz precision (``bf16``: torch as it is; ``f64``: its
Newton-Schulz in float64) ``<case>|<dtype>|<ns>|<i>``, parameter ``i`` after every step.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import torch
import torch.optim._muon as torch_muon

from tests._reference import TESTS
from tests.optim.muon_cases import CASES, SHAPES, inputs, ns_float64

OUT = TESTS / "optim" / "reference" / "muon.npz"


def run_torch(name: str, dtype: str, ns: str) -> list[np.ndarray]:
    p0, grads = inputs(name)
    tdt = getattr(torch, dtype)
    params = [torch.tensor(p, dtype=tdt, requires_grad=True) for p in p0]
    opt = torch.optim.Muon(params, **CASES[name])
    trajectory = [[] for _ in SHAPES]
    patch = ns_float64 if ns == "f64" else torch_muon._zeropower_via_newtonschulz
    with mock.patch.object(torch_muon, "_zeropower_via_newtonschulz", patch):
        for step in grads:
            for p, g in zip(params, step, strict=True):
                p.grad = torch.tensor(g, dtype=tdt)
            opt.step()
            for i, p in enumerate(params):
                trajectory[i].append(p.detach().numpy().copy())
    return [np.stack(t) for t in trajectory]


def generate() -> None:
    torch.set_default_dtype(torch.float64)
    data = {}
    for name in CASES:
        p0, grads = inputs(name)
        for i in range(len(SHAPES)):
            data[f"{name}|p0|{i}"] = p0[i]
            data[f"{name}|grads|{i}"] = np.stack([g[i] for g in grads])
        for dtype in ("float64", "float32"):
            for ns in ("bf16", "f64"):
                for i, t in enumerate(run_torch(name, dtype, ns)):
                    data[f"{name}|{dtype}|{ns}|{i}"] = t
    np.savez_compressed(OUT, **data)
    print(f"muon: {len(CASES)} cases -> {OUT}")

