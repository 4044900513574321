r"""lr schedulers: torch's ``scheduler.state_dict()`` <-> fnlearn schedules (and
:func:`~fnlearn.optim.reduce_lr_on_plateau`'s state).

A torch scheduler's state dict is its attributes; it does not name its class, so the class is
recognised from a key only it has (or named by the caller):

===========================  ==========================  ===================================
torch.optim.lr_scheduler     recognised by               fnlearn
===========================  ==========================  ===================================
StepLR                       ``step_size``               :func:`~fnlearn.schedules.step_lr`
MultiStepLR                  ``milestones``              ``multi_step_lr``
ConstantLR                   ``factor``, ``total_iters``  ``constant_lr``
LinearLR                     ``start_factor``            ``linear_lr``
ExponentialLR                ``gamma`` alone             ``exponential_lr``
PolynomialLR                 ``power``                   ``polynomial_lr``
CosineAnnealingLR            ``T_max``                   ``cosine_annealing_lr``
CosineAnnealingWarmRestarts  ``T_0``                     ``cosine_annealing_warm_restarts``
CyclicLR                     ``max_lrs``                 ``cyclic_lr`` (+ ``cyclic_momentum``)
OneCycleLR                   ``_schedule_phases``        ``one_cycle_lr`` (+ momentum); its
                                                         lrs live in the optimizer's groups
LambdaLR / MultiplicativeLR  ``lr_lambdas``              ``lambda_lr`` / ``multiplicative_lr``
                                                         with the caller's ``lr_lambdas``
                                                         (torch saves no function)
SequentialLR                 ``_milestones``             ``sequential_lr`` over the parts
ChainedScheduler             ``_schedulers``             ``chained_scheduler`` over the parts
ReduceLROnPlateau            ``patience``                ``reduce_lr_on_plateau`` + its state
===========================  ==========================  ===================================

Each fnlearn schedule is the closed form of torch's recursion (equal to rounding) at torch's
epoch count ``last_epoch``; :func:`optimizer_from_torch` shifts it onto the optimizer's step
count so that the next step uses torch's next lr.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from .. import optim, schedules
from .._typing import Schedule

#: (class, a key only its state dict has), tried in this order.
SIGNATURES: tuple[tuple[str, str], ...] = (
    ("ReduceLROnPlateau", "patience"),
    ("SequentialLR", "_milestones"),
    ("ChainedScheduler", "_schedulers"),
    ("OneCycleLR", "_schedule_phases"),
    ("CyclicLR", "max_lrs"),
    ("CosineAnnealingWarmRestarts", "T_0"),
    ("CosineAnnealingLR", "T_max"),
    ("StepLR", "step_size"),
    ("MultiStepLR", "milestones"),
    ("LinearLR", "start_factor"),
    ("ConstantLR", "factor"),
    ("PolynomialLR", "power"),
    ("LambdaLR", "lr_lambdas"),
    ("ExponentialLR", "gamma"),
)


class TorchSchedule(NamedTuple):
    """What :func:`schedule_from_torch` returns.

    Attributes:
        name: the torch class.
        lr: one schedule per param group, ``e -> lr`` of torch's epoch ``e`` (``None`` for
            ReduceLROnPlateau).
        momentum: per group, the cycled momentum (CyclicLR/OneCycleLR with
            ``cycle_momentum``), else ``None``.
        momentum_key: ``"momentum"``, or ``"betas"`` when torch cycles Adam's ``beta1``.
        last_epoch: torch's epoch count at the hand-over: the next optimizer step uses
            ``lr[i](last_epoch)``.
        plateau: ``(reduce_lr_on_plateau(...), its PlateauState)`` for ReduceLROnPlateau.
        state_dict: the torch state dict it came from (for :func:`schedule_to_torch`).
    """

    name: str
    lr: tuple[Schedule, ...] | None
    momentum: tuple[Schedule, ...] | None
    momentum_key: str
    last_epoch: int
    plateau: tuple[optim.ReduceLROnPlateau, optim.PlateauState] | None
    state_dict: Mapping[str, Any]


def guess_scheduler(sd: Mapping[str, Any]) -> str:
    """The torch scheduler class of a state dict (:data:`SIGNATURES`)."""
    for name, key in SIGNATURES:
        if key in sd:
            if name == "LambdaLR":
                raise ValueError("schedule_from_torch: LambdaLR and MultiplicativeLR save the "
                                 "same keys; pass name=... (and lr_lambdas=...)")
            return name
    raise ValueError(f"schedule_from_torch: no torch scheduler has the keys {sorted(sd)}; "
                     "pass name=...")


def _groups(optimizer_state_dict: Mapping[str, Any] | None, name: str) -> list[Mapping]:
    if optimizer_state_dict is None:
        raise ValueError(f"schedule_from_torch: {name} keeps its lrs in the optimizer's param "
                         "groups; pass optimizer_state_dict=optimizer.state_dict()")
    return list(optimizer_state_dict["param_groups"])


def _lr_schedules(name: str, sd: Mapping[str, Any], groups: Callable[[], list[Mapping]],
                  lr_lambdas: Sequence[Callable] | None) -> tuple[list[Schedule],
                                                               list[Schedule] | None]:
    """Per group ``(lr schedule, momentum schedule or None)`` of one (non-plateau) state."""
    base = [float(b) for b in sd.get("base_lrs", [])]
    s = schedules
    if name == "StepLR":
        return [s.step_lr(b, int(sd["step_size"]), sd["gamma"]) for b in base], None
    if name == "MultiStepLR":
        ms = [int(m) for m, n in dict(sd["milestones"]).items() for _ in range(n)]
        return [s.multi_step_lr(b, ms, sd["gamma"]) for b in base], None
    if name == "ConstantLR":
        return [s.constant_lr(b, sd["factor"], int(sd["total_iters"])) for b in base], None
    if name == "LinearLR":
        return [s.linear_lr(b, sd["start_factor"], sd["end_factor"], int(sd["total_iters"]))
                for b in base], None
    if name == "ExponentialLR":
        return [s.exponential_lr(b, sd["gamma"]) for b in base], None
    if name == "PolynomialLR":
        return [s.polynomial_lr(b, int(sd["total_iters"]), sd["power"]) for b in base], None
    if name == "CosineAnnealingLR":
        return [s.cosine_annealing_lr(b, int(sd["T_max"]), sd["eta_min"]) for b in base], None
    if name == "CosineAnnealingWarmRestarts":
        return [s.cosine_annealing_warm_restarts(b, int(sd["T_0"]), int(sd["T_mult"]),
                                                 sd["eta_min"]) for b in base], None
    if name in ("LambdaLR", "MultiplicativeLR"):
        fns = list(lr_lambdas or [])
        if len(fns) == 1 and len(base) > 1:
            fns = fns * len(base)
        if len(fns) != len(base):
            raise ValueError(f"schedule_from_torch: {name} saves no function: pass "
                             f"lr_lambdas=[...] (one per group, {len(base)} groups)")
        make = s.lambda_lr if name == "LambdaLR" else s.multiplicative_lr
        return [make(b, f) for b, f in zip(base, fns, strict=True)], None
    if name == "CyclicLR":
        if sd.get("_scale_fn_custom") is not None or sd.get("_scale_fn_ref") is not None:
            raise ValueError("schedule_from_torch: a CyclicLR with a custom scale_fn cannot be "
                             "rebuilt from its state dict")
        up = float(sd["total_size"]) * float(sd["step_ratio"])
        down = float(sd["total_size"]) - up
        opts = dict(step_size_up=up, step_size_down=down, mode=sd["mode"], gamma=sd["gamma"],
                    scale_mode=sd["scale_mode"])
        lrs = [s.cyclic_lr(b, float(m), **opts) for b, m in zip(base, sd["max_lrs"], strict=True)]
        moms = None
        if sd.get("cycle_momentum"):
            moms = [s.cyclic_momentum(float(lo), float(hi), **opts) for lo, hi in
                    zip(sd["base_momentums"], sd["max_momentums"], strict=True)]
        return lrs, moms
    if name == "OneCycleLR":
        phases = sd["_schedule_phases"]
        total = int(sd["total_steps"])
        pct = _pct_start(float(phases[0]["end_step"]), total)
        common = dict(total_steps=total, pct_start=pct, anneal_strategy=sd["_anneal_func_type"],
                      three_phase=len(phases) == 3)
        lrs, moms = [], []
        for g in groups():
            max_lr, initial, min_lr = float(g["max_lr"]), float(g["initial_lr"]), float(g["min_lr"])
            lrs.append(s.one_cycle_lr(max_lr, div_factor=max_lr / initial,
                                      final_div_factor=initial / min_lr, **common))
            if sd.get("cycle_momentum"):
                moms.append(s.one_cycle_momentum(base_momentum=float(g["base_momentum"]),
                                                 max_momentum=float(g["max_momentum"]), **common))
        return lrs, (moms if sd.get("cycle_momentum") else None)
    if name in ("SequentialLR", "ChainedScheduler"):
        parts = [_lr_schedules(guess_scheduler(sub), sub, groups, lr_lambdas)[0]
                 for sub in sd["_schedulers"]]
        n_groups = len(parts[0])
        if name == "SequentialLR":
            ms = [int(m) for m in sd["_milestones"]]
            return [s.sequential_lr([p[i] for p in parts], ms) for i in range(n_groups)], None
        base0 = [float(b) for b in sd["_schedulers"][0]["base_lrs"]]
        return [s.chained_scheduler(base0[i], [p[i] for p in parts])
                for i in range(n_groups)], None
    raise ValueError(f"schedule_from_torch: torch scheduler {name!r} has no fnlearn counterpart")


def _pct_start(end_step: float, total: int) -> float:
    """OneCycleLR's ``pct_start`` from its first phase end (``pct * total - 1``), exactly."""
    pct = (end_step + 1) / total
    for _ in range(4):
        got = float(pct * total) - 1
        if got == end_step:
            return pct
        pct = float(np.nextafter(pct, np.inf if got < end_step else -np.inf))
    raise ValueError(f"schedule_from_torch: OneCycleLR phase end {end_step} is not "
                     f"pct_start * {total} - 1 for any float pct_start")


def _last_epoch(name: str, sd: Mapping[str, Any]) -> int:
    if name == "ChainedScheduler":
        return int(sd["_schedulers"][0]["last_epoch"])
    return int(sd["last_epoch"])


def schedule_from_torch(
    state_dict: Mapping[str, Any],
    name: str | None = None,
    *,
    optimizer_state_dict: Mapping[str, Any] | None = None,
    lr_lambdas: Sequence[Callable] | None = None,
) -> TorchSchedule:
    r"""fnlearn schedules continuing a torch lr scheduler.

    Args:
        state_dict: ``scheduler.state_dict()``.
        name: the torch class (recognised from the keys when ``None``: see the table above).
        optimizer_state_dict: the optimizer's state dict; needed by OneCycleLR, whose lrs and
            momenta live in the optimizer's groups.
        lr_lambdas: LambdaLR / MultiplicativeLR's functions (torch saves ``None`` for them).

    Returns:
        A :class:`TorchSchedule`; pass it to :func:`optimizer_from_torch` (``schedule=``),
        which gives each group's ``lr`` (and momentum) the schedule shifted onto the
        optimizer's step count.

    Example::

        >>> import torch
        >>> from fnlearn.interop.torch import schedule_from_torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
        >>> sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        >>> for _ in range(3):
        ...     opt.step(); sched.step()
        >>> ts = schedule_from_torch(sched.state_dict())
        >>> ts.name, ts.last_epoch, round(float(ts.lr[0](ts.last_epoch)), 6), sched.get_last_lr()
        ('StepLR', 3, 0.05, [0.05])
    """
    name = name or guess_scheduler(state_dict)
    last = _last_epoch(name, state_dict)

    def groups() -> list[Mapping]:
        return _groups(optimizer_state_dict, name)

    if name == "ReduceLROnPlateau":
        sd = state_dict
        lrs = [float(x) for x in sd["_last_lr"]]
        grouped = len(lrs) > 1
        min_lrs = [float(x) for x in sd["min_lrs"]]
        pair = optim.reduce_lr_on_plateau(
            lrs if grouped else lrs[0], mode=sd["mode"], factor=sd["factor"],
            patience=int(sd["patience"]), threshold=sd["threshold"],
            threshold_mode=sd["threshold_mode"], cooldown=int(sd["cooldown"]),
            min_lr=min_lrs if grouped else min_lrs[0], eps=sd["eps"])
        init = pair.init()
        best = float(sd["best"]) if sd["best"] is not None else float(sd["mode_worse"])
        state = init._replace(
            best=jnp.asarray(best, init.best.dtype),
            num_bad_epochs=jnp.asarray(int(sd["num_bad_epochs"]), jnp.int32),
            cooldown_counter=jnp.asarray(int(sd["cooldown_counter"]), jnp.int32),
            last_epoch=jnp.asarray(last, jnp.int32))
        return TorchSchedule(name, None, None, "momentum", last, (pair, state),
                             copy.deepcopy(dict(state_dict)))
    lrs, moms = _lr_schedules(name, state_dict, groups, lr_lambdas)
    key = "betas" if state_dict.get("use_beta1") else "momentum"
    return TorchSchedule(name, tuple(lrs), None if moms is None else tuple(moms), key, last,
                         None, copy.deepcopy(dict(state_dict)))


def schedule_to_torch(schedule: TorchSchedule, epoch: int,
                      plateau_state: optim.PlateauState | None = None) -> dict[str, Any]:
    """The scheduler ``state_dict`` at torch epoch ``epoch`` (``last_epoch``), for
    ``scheduler.load_state_dict`` on a scheduler built as the original one was.

    The counters (``last_epoch``, ``_step_count``, ``_last_lr``, CosineAnnealingWarmRestarts'
    ``T_cur``/``T_i``, the active part of a SequentialLR) are advanced from the state dict
    :func:`schedule_from_torch` read; for ReduceLROnPlateau, ``plateau_state`` gives them.
    """
    sd = copy.deepcopy(dict(schedule.state_dict))
    if schedule.name == "ReduceLROnPlateau":
        if plateau_state is None:
            raise ValueError("schedule_to_torch: ReduceLROnPlateau needs plateau_state")
        ps = plateau_state
        sd.update(best=float(ps.best), num_bad_epochs=int(ps.num_bad_epochs),
                  cooldown_counter=int(ps.cooldown_counter), last_epoch=int(ps.last_epoch),
                  _last_lr=[float(x) for x in np.ravel(np.asarray(ps.lr))])
        return sd
    return _advance(schedule.name, sd, epoch,
                    [float(f(epoch)) for f in schedule.lr] if schedule.lr else None)


def _advance(name: str, sd: dict[str, Any], epoch: int, last_lr: list[float] | None) -> dict:
    """``sd`` with its counters at ``epoch``."""
    if name == "ChainedScheduler":
        sd["_schedulers"] = [_advance(guess_scheduler(sub), sub, epoch, None)
                             for sub in sd["_schedulers"]]
    elif name == "SequentialLR":
        ms = [int(m) for m in sd["_milestones"]]
        active = int(np.searchsorted(ms, epoch, side="right"))
        start = ms[active - 1] if active else 0
        sub = sd["_schedulers"][active]
        sd["_schedulers"][active] = _advance(guess_scheduler(sub), sub, epoch - start, None)
        sd["last_epoch"] = epoch
    else:
        sd["last_epoch"] = epoch
        if "_step_count" in sd and name != "CosineAnnealingWarmRestarts":
            sd["_step_count"] = epoch + 1
        if name == "CosineAnnealingWarmRestarts":
            t_i, t_cur = int(sd["T_0"]), epoch
            if int(sd["T_mult"]) == 1:
                t_cur %= t_i
            while t_cur >= t_i:  # torch's cycles: T_0, T_0 T_mult, T_0 T_mult^2, ...
                t_cur -= t_i
                t_i *= int(sd["T_mult"])
            sd["T_i"], sd["T_cur"] = t_i, t_cur
    if last_lr is not None:
        sd["_last_lr"] = last_lr
    return sd
