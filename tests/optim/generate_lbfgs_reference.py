"""Regenerate tests/optim/reference/lbfgs.npz with torch (pip install -e ".[torch]").

    python -m tests.generate_reference lbfgs

For every problem and configuration of tests/optim/lbfgs_cases.py and dtype (torch's default
dtype set to it): ``STEPS`` calls of ``optimizer.step(closure)``; stored
``<problem>|<config>|<dtype>|<key>`` (each parameter after every step), ``...|loss`` (what
every step returned), ``...|func_evals`` and ``...|n_iter`` (torch's state after every step).
"""

from __future__ import annotations

import numpy as np
import torch

from tests._reference import TESTS
from tests.optim.lbfgs_cases import CONFIGS, PROBLEMS, STEPS, loss

OUT = TESTS / "optim" / "reference" / "lbfgs.npz"


def run_torch(problem: str, config: str, dtype: str) -> dict[str, np.ndarray]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        params = {k: torch.tensor(v, dtype=getattr(torch, dtype), requires_grad=True)
                  for k, v in PROBLEMS[problem].items()}
        opt = torch.optim.LBFGS([params[k] for k in sorted(params)], **CONFIGS[config])

        def closure():
            opt.zero_grad()
            value = loss(problem, params, torch)
            value.backward()
            return value

        rows: dict[str, list] = {k: [] for k in [*params, "loss", "func_evals", "n_iter"]}
        for _ in range(STEPS):
            rows["loss"].append(float(opt.step(closure)))
            for k, p in params.items():
                rows[k].append(p.detach().numpy().copy())
            state = opt.state[params[sorted(params)[0]]]
            rows["func_evals"].append(state["func_evals"])
            rows["n_iter"].append(state["n_iter"])
        return {k: np.asarray(v) for k, v in rows.items()}
    finally:
        torch.set_default_dtype(old)


def generate() -> None:
    data = {}
    for problem in PROBLEMS:
        for config in CONFIGS:
            for dtype in ("float64", "float32"):
                for k, v in run_torch(problem, config, dtype).items():
                    data[f"{problem}|{config}|{dtype}|{k}"] = v
    np.savez_compressed(OUT, **data)
    print(f"lbfgs: {len(PROBLEMS)} problems x {len(CONFIGS)} configurations -> {OUT}")

