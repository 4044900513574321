"""SparseAdam configurations and their sparse gradient sequences (shared by the reference
generator, the reference test and the live torch test).

A case draws, per step, the entries present (with repeats, as an embedding lookup repeats a
token) and their values: ``rows`` cases index the first axis of a table (torch's hybrid
sparse gradient of ``nn.Embedding(sparse=True)``); ``entries`` cases index every axis (a
fully sparse COO gradient). ``empty`` lists the steps whose gradient holds no entry (torch
counts the step and changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tests._reference import seed_of


@dataclass(frozen=True)
class SparseCase:
    id: str
    shape: tuple[int, ...]
    kind: str  # "rows" or "entries"
    options: dict = field(default_factory=dict)
    steps: int = 6
    nnz: int = 5
    empty: tuple[int, ...] = ()


CASES = [
    SparseCase("rows-default", (8, 3), "rows", empty=(3,)),
    SparseCase("rows-lr-betas-eps-maximize", (8, 3), "rows",
               dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, maximize=True)),
    SparseCase("entries-2d", (4, 5), "entries", dict(lr=0.02, betas=(0.5, 0.9)), nnz=7),
    SparseCase("rows-3d", (6, 2, 2), "rows", dict(lr=0.01), nnz=4),
]
BY_ID = {c.id: c for c in CASES}


def inputs(case: SparseCase, seed: int | None = None):
    """``(p0, [(indices, values)] per step)``: ``indices`` is ``(nnz, n_sparse)`` (rows:
    ``n_sparse = 1``), ``values`` ``(nnz, *shape[n_sparse:])``, in float64."""
    rng = np.random.default_rng(seed_of(case.id) if seed is None else seed)
    p0 = rng.standard_normal(case.shape)
    n_sparse = 1 if case.kind == "rows" else len(case.shape)
    steps = []
    for k in range(case.steps):
        nnz = 0 if k in case.empty else case.nnz
        indices = np.stack([rng.integers(0, n, size=nnz) for n in case.shape[:n_sparse]], -1)
        values = rng.standard_normal((nnz, *case.shape[n_sparse:])) * np.exp(rng.uniform(-2, 2))
        steps.append((indices.reshape(nnz, n_sparse), values))
    return p0, steps


def run_torch(case: SparseCase, dtype: str, p0, steps, options=None):
    """torch's SparseAdam on ``steps``: the parameter after every step and the final
    ``(exp_avg, exp_avg_sq)``."""
    import torch

    tdt = getattr(torch, dtype)
    param = torch.tensor(p0, dtype=tdt, requires_grad=True)
    opt = torch.optim.SparseAdam([param], **(case.options if options is None else options))
    trajectory = []
    for indices, values in steps:
        param.grad = torch.sparse_coo_tensor(torch.tensor(indices.T, dtype=torch.int64),
                                             torch.tensor(values, dtype=tdt), case.shape,
                                             check_invariants=True)
        opt.step()
        trajectory.append(param.detach().numpy().copy())
    state = opt.state[param]
    return (np.stack(trajectory), state["exp_avg"].numpy().copy(),
            state["exp_avg_sq"].numpy().copy())
