"""Regenerate the loss reference files with torch (pip install -e ".[torch]").

    python -m tests.generate_reference [TABLE ...]

For every case and dtype: build the inputs from the case's seed, run
``torch.nn.functional.<fn>``, and store inputs, loss value and input gradients in
``tests/losses/reference/<table>.npz``.
"""

from __future__ import annotations

import numpy as np
import torch

from tests._reference import TESTS, Case, key, seed_of
from tests.losses.cases import tables

OUT = TESTS / "losses" / "reference"


def run_case(case: Case, dtype: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed_of(case.id))
    arrays = case.make(rng)
    tdt = getattr(torch, dtype)
    stored: dict[str, np.ndarray] = {}
    tensors: dict[str, object] = {}
    for name, value in arrays.items():
        a = np.asarray(value)
        if np.issubdtype(a.dtype, np.floating):
            a = a.astype(dtype)
            t = torch.tensor(a, dtype=tdt, requires_grad=name in case.grad)
        elif np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
            a = a.astype(np.int64)
            t = torch.tensor(a)
        else:
            raise TypeError(f"{case.id}: unsupported array {name} of dtype {a.dtype}")
        stored[f"arg:{name}"] = a
        tensors[name] = t
    fn = getattr(torch.nn.functional, case.fn)
    positional = [tensors[n] for n in case.args]
    keywords = {n: t for n, t in tensors.items() if n not in case.args}
    loss = fn(*positional, **keywords, **case.kwargs)
    stored["loss"] = loss.detach().numpy()
    if case.grad:
        cot = rng.standard_normal(tuple(loss.shape)).astype(dtype)
        stored["cotangent"] = cot
        wrt = [tensors[n] for n in case.grad]
        grads = torch.autograd.grad((loss * torch.tensor(cot)).sum(), wrt)
        for n, g in zip(case.grad, grads, strict=True):
            stored[f"grad:{n}"] = g.numpy()
    return stored


def generate(argv: list[str]) -> None:
    torch.set_default_dtype(torch.float64)
    OUT.mkdir(parents=True, exist_ok=True)
    for table, cases in tables().items():
        if argv and table not in argv:
            continue
        ids = [c.id for c in cases]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate case ids in table {table}")
        data = {}
        for case in cases:
            for dtype in case.dtypes:
                for what, arr in run_case(case, dtype).items():
                    data[key(case.id, dtype, what)] = arr
        np.savez_compressed(OUT / f"{table}.npz", **data)
        print(f"{table}: {len(cases)} cases -> {OUT / (table + '.npz')}")

