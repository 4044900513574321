"""Regenerate the optimizer reference files with torch (pip install -e ".[torch]").

    python -m tests.generate_reference [TABLE ...]

For every case: a seeded start point and gradient sequence (one array per shape in
``cases.SHAPES``; per step and leaf a standard normal times a log-uniform scale in
[0.1, 10], truncated to bfloat16-representable values so that both dtypes see the same
numbers and the file compresses), then, per dtype, ``case.steps`` torch ``optimizer.step()``
calls (with ``LambdaLR`` stepped after each when the case has an lr schedule). Stored in
``tests/optim/reference/<table>.npz``, the parameters packed along the last axis
(``cases.pack``):

- ``<id>|inputs|p0``: the start point, shape ``(n,)``; ``<id>|inputs|grads``: the gradient
  sequence, ``(steps, n)``;
- ``<id>|<dtype>|params``: the parameters after every step, ``(steps, n)``;
- ``<id>|<dtype>|state:<key>``: torch's ``opt.state[p][key]`` of every parameter after each
  step of ``cases.state_steps(case)``, ``(len(state_steps), m)``.
"""

from __future__ import annotations

import numpy as np
import torch

from tests._reference import TESTS, OptCase, key, seed_of
from tests.optim.cases import SHAPES, pack, schedule, state_steps, tables

OUT = TESTS / "optim" / "reference"


def _bf16_values(x: np.ndarray) -> np.ndarray:
    """float32 values truncated to bfloat16's 8 mantissa bits."""
    return (x.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


def inputs(case: OptCase) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The case's start point and gradient sequence (float32 arrays), from its seed."""
    rng = np.random.default_rng(seed_of(case.id))
    p0 = [_bf16_values(rng.standard_normal(s)) for s in SHAPES]
    grads = []
    for s in SHAPES:
        scale = np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=(case.steps,) + (1,) * len(s)))
        grads.append(_bf16_values(rng.standard_normal((case.steps, *s)) * scale))
    return p0, grads


def run_torch(table: str, case: OptCase, dtype: str, p0, grads) -> dict[str, np.ndarray]:
    tdt = getattr(torch, dtype)
    params = [torch.tensor(p.astype(dtype), dtype=tdt, requires_grad=True) for p in p0]
    kwargs = case.kwargs if case.torch_kwargs is None else case.torch_kwargs
    opt = getattr(torch.optim, case.torch_name)(params, **kwargs)
    factor = schedule(table, case)
    sched = None if factor is None else torch.optim.lr_scheduler.LambdaLR(opt, factor)
    trajectory = []
    states: dict[str, list[np.ndarray]] = {}
    for k in range(case.steps):
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.tensor(g[k].astype(dtype), dtype=tdt)
        opt.step()
        if sched is not None:
            sched.step()
        trajectory.append(pack([p.detach().numpy() for p in params]))
        if k + 1 in state_steps(case):
            names = {name for p in params for name in opt.state[p]}
            for name in names:
                # the parameters that have the key (Adafactor: row_var only for matrices)
                values = [np.asarray(opt.state[p][name], dtype=np.float64) for p in params
                          if name in opt.state[p]]
                states.setdefault(name, []).append(pack(values))
    stored = {"params": np.stack(trajectory)}
    for name, rows in states.items():
        if len(rows) != len(state_steps(case)):
            raise ValueError(f"{case.id}: torch state key {name!r} missing at some steps")
        stored[f"state:{name}"] = np.stack(rows).astype(dtype)
    return stored


def generate(argv: list[str]) -> None:
    # torch keeps some per-parameter scalar state (NAdam's mu_product, ASGD's eta and mu) in
    # the default dtype: float64 here, so float64 runs are float64 throughout.
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
            p0, grads = inputs(case)
            data[key(case.id, "inputs", "p0")] = pack(p0)
            data[key(case.id, "inputs", "grads")] = pack(grads, lead=1)
            for dtype in case.dtypes:
                for what, arr in run_torch(table, case, dtype, p0, grads).items():
                    data[key(case.id, dtype, what)] = arr
        np.savez_compressed(OUT / f"{table}.npz", **data)
        print(f"{table}: {len(cases)} cases -> {OUT / (table + '.npz')}")

