"""Regenerate the scheduler reference files with torch (pip install -e ".[torch]").

    python -m tests.generate_reference schedules

Writes, from the tables in ``tests/schedules/cases.py``:

* ``reference/schedules.npz``: for every ``SchedCase``, ``<id>|lr`` (and
  ``<id>|momentum``): ``param_groups[0]['lr']`` (and ``momentum`` / ``betas[0]``) during the
  k-th ``optimizer.step()``, k = 0..steps-1, with ``scheduler.step()`` after each step; for
  every ``TrajCase``, ``traj/<id>|grad<i>`` (the gradient sequence of parameter i) and
  ``traj/<id>|param<i>`` (the parameter after each step), float64.
* ``reference/plateau.npz``: for every ``PlateauCase``, ``<id>|metrics`` and, after each
  ``scheduler.step(metric)``, ``<id>|lr`` (one column per param group), ``<id>|best``,
  ``<id>|num_bad_epochs``, ``<id>|cooldown_counter``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.optim import lr_scheduler as S

from tests._reference import TESTS, seed_of
from tests.schedules.cases import LR, PLATEAU_CASES, SCHED_CASES, TRAJ_CASES

OUT = TESTS / "schedules" / "reference"


def _momentum(group: dict, optimizer: str) -> float:
    return group["betas"][0] if optimizer == "adam" else group["momentum"]


def run_sched(case) -> dict[str, np.ndarray]:
    p = torch.zeros(2, requires_grad=True)
    opt = (torch.optim.Adam if case.optimizer == "adam" else torch.optim.SGD)([p], lr=LR)
    sched = case.torch(opt, S)
    lrs, moms = [], []
    for k in range(case.steps):
        group = opt.param_groups[0]
        lrs.append(float(group["lr"]))
        moms.append(float(_momentum(group, case.optimizer)))
        p.grad = torch.zeros_like(p)
        opt.step()
        if k < case.steps - 1:  # OneCycleLR raises when stepped past total_steps
            sched.step()
    out = {f"{case.id}|lr": np.array(lrs)}
    if case.momentum is not None:
        out[f"{case.id}|momentum"] = np.array(moms)
    return out


def run_traj(case) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed_of(case.id))
    params = [torch.tensor(rng.standard_normal(s), requires_grad=True) for s in case.shapes]
    grads = [rng.standard_normal((case.steps, *s)) for s in case.shapes]
    name, kwargs = case.torch_opt
    opt = getattr(torch.optim, name)(params, **kwargs)
    sched = case.torch_sched(opt, S)
    out: dict[str, np.ndarray] = {}
    for i, p in enumerate(params):
        out[f"traj/{case.id}|init{i}"] = p.detach().numpy().copy()
        out[f"traj/{case.id}|grad{i}"] = grads[i]
    traj = [[] for _ in params]
    for k in range(case.steps):
        for i, p in enumerate(params):
            p.grad = torch.tensor(grads[i][k])
        opt.step()
        sched.step()
        for i, p in enumerate(params):
            traj[i].append(p.detach().numpy().copy())
    for i in range(len(params)):
        out[f"traj/{case.id}|param{i}"] = np.stack(traj[i])
    return out


def run_plateau(case) -> dict[str, np.ndarray]:
    metrics = case.metrics(np.random.default_rng(seed_of(case.id)))
    lrs = case.lr if isinstance(case.lr, tuple) else (case.lr,)
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs]
    opt = torch.optim.SGD(groups, lr=LR)
    kwargs = dict(case.kwargs)
    if isinstance(kwargs.get("min_lr"), tuple):
        kwargs["min_lr"] = list(kwargs["min_lr"])
    sched = S.ReduceLROnPlateau(opt, **kwargs)
    rows: dict[str, list] = {"lr": [], "best": [], "num_bad_epochs": [], "cooldown_counter": []}
    for m in metrics:
        opt.step()
        sched.step(float(m))
        rows["lr"].append([float(g["lr"]) for g in opt.param_groups])
        rows["best"].append(sched.best)
        rows["num_bad_epochs"].append(sched.num_bad_epochs)
        rows["cooldown_counter"].append(sched.cooldown_counter)
    out = {f"{case.id}|metrics": metrics}
    for what, values in rows.items():
        out[f"{case.id}|{what}"] = np.array(values)
    return out


def generate() -> None:
    torch.set_default_dtype(torch.float64)
    OUT.mkdir(parents=True, exist_ok=True)
    for table in (SCHED_CASES, PLATEAU_CASES, TRAJ_CASES):
        ids = [c.id for c in table]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate case ids: {ids}")
    with warnings.catch_warnings():
        # SequentialLR / ChainedScheduler construction steps the inner schedulers
        warnings.simplefilter("ignore", UserWarning)
        data: dict[str, np.ndarray] = {}
        for case in SCHED_CASES:
            data.update(run_sched(case))
        for case in TRAJ_CASES:
            data.update(run_traj(case))
        np.savez_compressed(OUT / "schedules.npz", **data)
        print(f"schedules: {len(SCHED_CASES)} schedules, {len(TRAJ_CASES)} trajectories")
        plateau: dict[str, np.ndarray] = {}
        for case in PLATEAU_CASES:
            plateau.update(run_plateau(case))
        np.savez_compressed(OUT / "plateau.npz", **plateau)
        print(f"plateau: {len(PLATEAU_CASES)} cases")

