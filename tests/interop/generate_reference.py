"""tests/interop/reference/*.npz (needs torch): ``python -m tests.generate_reference
handover schedulers digits``.

handover.npz: for every optimizer case of tests/optim's tables and both dtypes, the torch state
dict after K steps and the params and state dict after K + N (tests/interop/_handover.py).
schedulers.npz: scheduler state dicts handed over mid-schedule and torch's next lrs.
digits.npz: a torch MLP trained one epoch on scikit-learn's digits (float64, Adam + StepLR),
its checkpoint as arrays, the next epoch's batch order and torch's per-step losses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tests.interop import _digits, _schedulers
from tests.interop._handover import cases, encode_state_dict, inputs, text, torch_run

OUT = Path(__file__).parent / "reference"


def handover() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for table, case in cases():
        for dtype in case.dtypes:
            run = torch_run(table, case, dtype)
            tag = f"{case.id}|{dtype}"
            p_k, sd_k, sched_k = run["handover"]
            out.update(encode_state_dict(sd_k, f"{tag}|k"))
            out.update(encode_state_dict(run["end"][1], f"{tag}|end"))
            out[f"{tag}|params"] = np.concatenate([p.astype(np.float64).ravel()
                                                   for p in [*p_k, *run["end"][0]]])
            if sched_k is not None:
                out[f"{tag}|sched"] = text(json.dumps(sched_k))
    # the inputs are recomputed from the case id; store one as a check of that
    out["check|p0"] = inputs(cases()[0][1])[0][0]
    return out


def generate(argv: list[str]) -> None:
    torch.set_default_dtype(torch.float64)
    OUT.mkdir(parents=True, exist_ok=True)
    which = set(argv) or {"handover", "schedulers", "digits"}
    if "handover" in which:
        np.savez_compressed(OUT / "handover.npz", **handover())
    if "schedulers" in which:
        np.savez_compressed(OUT / "schedulers.npz", **_schedulers.generate())
    if "digits" in which:
        np.savez_compressed(OUT / "digits.npz", **_digits.generate())
    for f in sorted(OUT.glob("*.npz")):
        print(f, f.stat().st_size)

