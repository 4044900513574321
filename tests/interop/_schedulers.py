"""Schedulers handed over mid-schedule: torch runs K steps (optimizer.step(), then
scheduler.step()), its optimizer and scheduler state dicts are handed over, and torch's next N
steps (params and the lr each used) are the oracle for fnlearn's (tests/interop)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests._reference import seed_of

SHAPES = ((2, 3), (3,))


def decay(e):
    """LambdaLR's factor (arithmetic only: torch gives an int, fnlearn an array)."""
    return 0.9**e


def halve(e):
    """MultiplicativeLR's per-epoch factor."""
    return 0.5 + 0 * e


@dataclass(frozen=True)
class SchedCase:
    id: str
    optimizer: str
    opt_kwargs: dict
    build: Callable[[Any, Any], Any]  # (torch.optim.lr_scheduler, optimizer) -> scheduler
    k: int = 7
    n: int = 8
    groups: bool = False  # two param groups with different lrs
    lr_lambdas: tuple | None = None
    name: str | None = None  # scheduler class, where its keys do not tell it
    metrics: tuple[float, ...] = field(default_factory=tuple)  # ReduceLROnPlateau's


PLATEAU_METRICS = (1.0, 0.9, 0.95, 0.96, 0.97, 0.8, 0.85, 0.86, 0.87, 0.88, 0.89, 0.9, 0.91,
                   0.92, 0.93, 0.7, 0.71, 0.72, 0.73, 0.74)

CASES = [
    SchedCase("steplr-sgd-momentum", "SGD", dict(lr=0.1, momentum=0.9),
              lambda L, o: L.StepLR(o, 3, 0.5)),
    SchedCase("steplr-groups", "SGD", dict(lr=0.1, momentum=0.9),
              lambda L, o: L.StepLR(o, 2, 0.7), groups=True),
    SchedCase("multisteplr", "RMSprop", dict(lr=0.01),
              lambda L, o: L.MultiStepLR(o, [2, 9, 9], 0.5)),
    SchedCase("constantlr", "Adam", dict(lr=0.01), lambda L, o: L.ConstantLR(o, 0.25, 9)),
    SchedCase("linearlr", "Adam", dict(lr=0.01), lambda L, o: L.LinearLR(o, 0.1, 1.0, 10)),
    SchedCase("exponentiallr", "Adagrad", dict(lr=0.1), lambda L, o: L.ExponentialLR(o, 0.8)),
    SchedCase("polynomiallr", "AdamW", dict(lr=0.01), lambda L, o: L.PolynomialLR(o, 12, 2.0)),
    SchedCase("cosineannealinglr", "Adam", dict(lr=0.01),
              lambda L, o: L.CosineAnnealingLR(o, 10, 1e-3)),
    SchedCase("warmrestarts", "SGD", dict(lr=0.1, momentum=0.9),
              lambda L, o: L.CosineAnnealingWarmRestarts(o, 3, 2, 1e-3)),
    SchedCase("warmrestarts-groups", "Adam", dict(lr=0.01),
              lambda L, o: L.CosineAnnealingWarmRestarts(o, 4), groups=True),
    SchedCase("cycliclr-momentum", "SGD", dict(lr=0.1, momentum=0.9),
              lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=3, step_size_down=2)),
    SchedCase("cycliclr-exp_range", "SGD", dict(lr=0.1, momentum=0.9),
              lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=4, mode="exp_range",
                                      gamma=0.9, cycle_momentum=False)),
    SchedCase("onecyclelr-sgd", "SGD", dict(lr=0.1, momentum=0.9),
              lambda L, o: L.OneCycleLR(o, 0.5, total_steps=20)),
    SchedCase("onecyclelr-adam-beta1-linear", "Adam", dict(lr=0.01),
              lambda L, o: L.OneCycleLR(o, 0.05, total_steps=20, anneal_strategy="linear")),
    SchedCase("onecyclelr-three-phase-groups", "SGD", dict(lr=0.1, momentum=0.9),
              lambda L, o: L.OneCycleLR(o, [0.5, 0.2], total_steps=20, three_phase=True),
              groups=True),
    SchedCase("lambdalr", "SGD", dict(lr=0.1), lambda L, o: L.LambdaLR(o, decay),
              lr_lambdas=(decay,), name="LambdaLR"),
    SchedCase("multiplicativelr", "SGD", dict(lr=0.1), lambda L, o: L.MultiplicativeLR(o, halve),
              lr_lambdas=(halve,), name="MultiplicativeLR"),
    SchedCase("sequentiallr", "SGD", dict(lr=0.1),
              lambda L, o: L.SequentialLR(o, [L.LinearLR(o, 0.2, total_iters=3),
                                              L.ExponentialLR(o, 0.9)], [4])),
    SchedCase("chainedscheduler", "Adam", dict(lr=0.01),
              lambda L, o: L.ChainedScheduler([L.ConstantLR(o, 0.5, total_iters=9),
                                               L.ExponentialLR(o, 0.9)])),
    SchedCase("reducelronplateau-mid-patience", "Adam", dict(lr=0.01),
              lambda L, o: L.ReduceLROnPlateau(o, patience=2, factor=0.5), k=8,
              metrics=PLATEAU_METRICS),
    SchedCase("reducelronplateau-cooldown-groups", "SGD", dict(lr=0.1, momentum=0.9),
              lambda L, o: L.ReduceLROnPlateau(o, "max", 0.5, patience=1, cooldown=2,
                                               min_lr=[0.02, 0.001]), k=5,
              metrics=tuple(-m for m in PLATEAU_METRICS), groups=True),
]


def inputs(case: SchedCase) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed_of(case.id))
    p0 = [rng.standard_normal(s) for s in SHAPES]
    grads = [rng.standard_normal((case.k + case.n, *s)) for s in SHAPES]
    return p0, grads


def torch_groups(params: list, case: SchedCase) -> list:
    if case.groups:
        return [{"params": [params[0]]}, {"params": [params[1]], "lr": case.opt_kwargs["lr"] / 3}]
    return params


def run(case: SchedCase, stop: int | None = None, start: dict | None = None) -> dict[str, Any]:
    """torch (float64) over K + N steps; the hand-over after K. (imports torch)"""
    import torch
    from torch.optim import lr_scheduler as L

    p0, grads = inputs(case)
    if start is not None:
        p0 = start["params"]
    params = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in p0]
    opt = getattr(torch.optim, case.optimizer)(torch_groups(params, case), **case.opt_kwargs)
    sched = case.build(L, opt)
    if start is not None:
        opt.load_state_dict(start["optimizer"])
        sched.load_state_dict(start["scheduler"])
    out: dict[str, Any] = {"lrs": [], "momenta": []}
    for k in range(case.k if start is not None else 0, stop or case.k + case.n):
        if k == case.k and start is None:
            out["handover"] = {"params": [p.detach().numpy().copy() for p in params],
                               "optimizer": _copy(opt.state_dict()),
                               "scheduler": _copy(sched.state_dict())}
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.tensor(g[k])
        if k >= case.k:
            out["lrs"].append([g["lr"] for g in opt.param_groups])
            out["momenta"].append([g.get("momentum", g.get("betas", (0,))[0])
                                   for g in opt.param_groups])
        opt.step()
        if case.metrics:
            sched.step(case.metrics[k])
        else:
            sched.step()
    out["params"] = [p.detach().numpy().copy() for p in params]
    out["scheduler"] = _copy(sched.state_dict())
    return out


def _copy(x: Any) -> Any:
    import copy

    return copy.deepcopy(x)


def generate() -> dict[str, np.ndarray]:
    from tests.interop._handover import encode_state_dict, text

    out = {}
    for case in CASES:
        r = run(case)
        h = r["handover"]
        out.update(encode_state_dict(h["optimizer"], f"{case.id}|optimizer"))
        out[f"{case.id}|scheduler"] = text(json.dumps(h["scheduler"], default=_plain))
        out[f"{case.id}|scheduler-end"] = text(json.dumps(r["scheduler"], default=_plain))
        for i, p in enumerate(h["params"]):
            out[f"{case.id}|params-k|{i}"] = p
        for i, p in enumerate(r["params"]):
            out[f"{case.id}|params-end|{i}"] = p
        out[f"{case.id}|lrs"] = np.asarray(r["lrs"], np.float64)
        out[f"{case.id}|momenta"] = np.asarray(r["momenta"], np.float64)
    return out


def _plain(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON: {type(x).__name__}")
