"""Case tables for the scheduler tests: torch.optim.lr_scheduler configurations and their
fnlearn equivalents.

``tests/schedules/generate_reference.py`` (needs torch) runs the torch side of every case and
writes ``reference/schedules.npz`` and ``reference/plateau.npz`` beside it; the default test
run compares the fnlearn side against those files. Torch-side builders receive the optimizer
and the module ``torch.optim.lr_scheduler`` (so this module needs no torch); lambdas are
written twice where torch's (Python ints) and ours (jnp arrays) need different code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np

from fnlearn import optim, schedules

LR = 0.1  # the optimizer's lr: the base lr of every scheduler that takes it from there


@dataclass(frozen=True)
class SchedCase:
    """One scheduler configuration, stepped ``steps`` times (lr of steps k = 0..steps-1).

    ``torch(opt, S)`` builds torch's scheduler on ``opt`` (``S`` is torch.optim.lr_scheduler);
    ``fn()`` builds the fnlearn schedule. ``momentum()`` builds the momentum schedule that
    torch's CyclicLR / OneCycleLR write into the optimizer (SGD's ``momentum`` or, with
    ``optimizer='adam'``, Adam's ``betas[0]``).
    """

    id: str
    torch: Callable[[Any, Any], Any]
    fn: Callable[[], Callable]
    steps: int
    momentum: Callable[[], Callable] | None = None
    optimizer: str = "sgd"


def _cases() -> list[SchedCase]:
    s = schedules
    c = SchedCase
    return [
        # StepLR / MultiStepLR
        c("step_lr-3-0.5", lambda o, S: S.StepLR(o, 3, gamma=0.5),
          lambda: s.step_lr(LR, 3, 0.5), 20),
        c("step_lr-1-default", lambda o, S: S.StepLR(o, 1), lambda: s.step_lr(LR, 1), 8),
        c("multi_step_lr-repeat", lambda o, S: S.MultiStepLR(o, [2, 5, 5, 9], gamma=0.5),
          lambda: s.multi_step_lr(LR, [2, 5, 5, 9], gamma=0.5), 14),
        c("multi_step_lr-zero-unsorted", lambda o, S: S.MultiStepLR(o, [7, 0, 3]),
          lambda: s.multi_step_lr(LR, [7, 0, 3]), 10),
        # ConstantLR / LinearLR
        c("constant_lr-default", lambda o, S: S.ConstantLR(o), lambda: s.constant_lr(LR), 10),
        c("constant_lr-0.5-3", lambda o, S: S.ConstantLR(o, factor=0.5, total_iters=3),
          lambda: s.constant_lr(LR, factor=0.5, total_iters=3), 8),
        c("constant_lr-1.0", lambda o, S: S.ConstantLR(o, factor=1.0),
          lambda: s.constant_lr(LR, factor=1.0), 8),
        c("linear_lr-default", lambda o, S: S.LinearLR(o), lambda: s.linear_lr(LR), 10),
        c("linear_lr-decay", lambda o, S: S.LinearLR(o, 1.0, 0.1, 10),
          lambda: s.linear_lr(LR, 1.0, 0.1, 10), 15),
        c("linear_lr-0.1-0.5-7", lambda o, S: S.LinearLR(o, 0.1, 0.5, 7),
          lambda: s.linear_lr(LR, 0.1, 0.5, 7), 12),
        c("linear_lr-end0", lambda o, S: S.LinearLR(o, 0.5, 0.0, 4),
          lambda: s.linear_lr(LR, 0.5, 0.0, 4), 8),
        # ExponentialLR / PolynomialLR
        c("exponential_lr-0.9", lambda o, S: S.ExponentialLR(o, 0.9),
          lambda: s.exponential_lr(LR, 0.9), 30),
        c("exponential_lr-1.0", lambda o, S: S.ExponentialLR(o, 1.0),
          lambda: s.exponential_lr(LR, 1.0), 5),
        c("polynomial_lr-default", lambda o, S: S.PolynomialLR(o), lambda: s.polynomial_lr(LR), 9),
        c("polynomial_lr-8-2", lambda o, S: S.PolynomialLR(o, total_iters=8, power=2.0),
          lambda: s.polynomial_lr(LR, total_iters=8, power=2.0), 12),
        c("polynomial_lr-6-0.5", lambda o, S: S.PolynomialLR(o, total_iters=6, power=0.5),
          lambda: s.polynomial_lr(LR, total_iters=6, power=0.5), 10),
        # CosineAnnealingLR, past T_max (periodic: 2+ periods)
        c("cosine_annealing_lr-10", lambda o, S: S.CosineAnnealingLR(o, 10),
          lambda: s.cosine_annealing_lr(LR, 10), 45),
        c("cosine_annealing_lr-7-eta", lambda o, S: S.CosineAnnealingLR(o, 7, eta_min=0.01),
          lambda: s.cosine_annealing_lr(LR, 7, eta_min=0.01), 40),
        c("cosine_annealing_lr-1", lambda o, S: S.CosineAnnealingLR(o, 1),
          lambda: s.cosine_annealing_lr(LR, 1), 6),
        # CosineAnnealingWarmRestarts: >= 3 cycles
        c("warm_restarts-5", lambda o, S: S.CosineAnnealingWarmRestarts(o, 5),
          lambda: s.cosine_annealing_warm_restarts(LR, 5), 20),
        c("warm_restarts-3-x2-eta", lambda o, S: S.CosineAnnealingWarmRestarts(o, 3, 2, 1e-3),
          lambda: s.cosine_annealing_warm_restarts(LR, 3, 2, 1e-3), 50),
        c("warm_restarts-1-x3", lambda o, S: S.CosineAnnealingWarmRestarts(o, 1, T_mult=3),
          lambda: s.cosine_annealing_warm_restarts(LR, 1, T_mult=3), 45),
        # CyclicLR (>= 3 cycles), momentum cycled as torch does by default
        c("cyclic_lr-triangular", lambda o, S: S.CyclicLR(o, 0.01, 0.1, step_size_up=4),
          lambda: s.cyclic_lr(0.01, 0.1, step_size_up=4), 30,
          momentum=lambda: s.cyclic_momentum(step_size_up=4)),
        c("cyclic_lr-triangular2-4-2",
          lambda o, S: S.CyclicLR(o, 0.01, 0.1, 4, 2, mode="triangular2",
                                  base_momentum=0.7, max_momentum=0.95),
          lambda: s.cyclic_lr(0.01, 0.1, 4, 2, mode="triangular2"), 30,
          momentum=lambda: s.cyclic_momentum(0.7, 0.95, 4, 2, mode="triangular2")),
        c("cyclic_lr-exp_range-3-5",
          lambda o, S: S.CyclicLR(o, 0.001, 0.1, 3, 5, mode="exp_range", gamma=0.95),
          lambda: s.cyclic_lr(0.001, 0.1, 3, 5, mode="exp_range", gamma=0.95), 30,
          momentum=lambda: s.cyclic_momentum(step_size_up=3, step_size_down=5,
                                             mode="exp_range", gamma=0.95)),
        c("cyclic_lr-scale_fn-cycle",
          lambda o, S: S.CyclicLR(o, 0.01, 0.1, 3, scale_fn=lambda x: 1.0 / x),
          lambda: s.cyclic_lr(0.01, 0.1, 3, scale_fn=lambda x: 1.0 / x), 24,
          momentum=lambda: s.cyclic_momentum(step_size_up=3, scale_fn=lambda x: 1.0 / x)),
        c("cyclic_lr-scale_fn-iterations",
          lambda o, S: S.CyclicLR(o, 0.01, 0.1, 2, 4, scale_fn=lambda x: 0.9**x,
                                  scale_mode="iterations"),
          lambda: s.cyclic_lr(0.01, 0.1, 2, 4, scale_fn=lambda x: 0.9**x,
                              scale_mode="iterations"), 24,
          momentum=lambda: s.cyclic_momentum(step_size_up=2, step_size_down=4,
                                             scale_fn=lambda x: 0.9**x, scale_mode="iterations")),
        c("cyclic_lr-down0", lambda o, S: S.CyclicLR(o, 0.01, 0.1, 3, 0),
          lambda: s.cyclic_lr(0.01, 0.1, 3, 0), 12,
          momentum=lambda: s.cyclic_momentum(step_size_up=3, step_size_down=0)),
        c("cyclic_lr-adam-beta1", lambda o, S: S.CyclicLR(o, 0.01, 0.1, step_size_up=3),
          lambda: s.cyclic_lr(0.01, 0.1, step_size_up=3), 20,
          momentum=lambda: s.cyclic_momentum(step_size_up=3), optimizer="adam"),
        # OneCycleLR: torch allows total_steps + 1 steps (k = 0..T)
        c("one_cycle_lr-cos-50", lambda o, S: S.OneCycleLR(o, 1.0, total_steps=50),
          lambda: s.one_cycle_lr(1.0, total_steps=50), 51,
          momentum=lambda: s.one_cycle_momentum(total_steps=50)),
        c("one_cycle_lr-linear-37-0.25",
          lambda o, S: S.OneCycleLR(o, 0.5, total_steps=37, pct_start=0.25,
                                    anneal_strategy="linear"),
          lambda: s.one_cycle_lr(0.5, total_steps=37, pct_start=0.25, anneal_strategy="linear"),
          38, momentum=lambda: s.one_cycle_momentum(total_steps=37, pct_start=0.25,
                                                    anneal_strategy="linear")),
        c("one_cycle_lr-three_phase-cos",
          lambda o, S: S.OneCycleLR(o, 0.2, total_steps=40, three_phase=True, div_factor=10.0,
                                    final_div_factor=100.0, base_momentum=0.8,
                                    max_momentum=0.9),
          lambda: s.one_cycle_lr(0.2, total_steps=40, three_phase=True, div_factor=10.0,
                                 final_div_factor=100.0), 41,
          momentum=lambda: s.one_cycle_momentum(total_steps=40, three_phase=True,
                                                base_momentum=0.8, max_momentum=0.9)),
        c("one_cycle_lr-three_phase-linear",
          lambda o, S: S.OneCycleLR(o, 1.0, total_steps=50, three_phase=True,
                                    anneal_strategy="linear"),
          lambda: s.one_cycle_lr(1.0, total_steps=50, three_phase=True,
                                 anneal_strategy="linear"), 51,
          momentum=lambda: s.one_cycle_momentum(total_steps=50, three_phase=True,
                                                anneal_strategy="linear")),
        c("one_cycle_lr-epochs-adam",
          lambda o, S: S.OneCycleLR(o, 0.01, epochs=4, steps_per_epoch=7, pct_start=0.4),
          lambda: s.one_cycle_lr(0.01, epochs=4, steps_per_epoch=7, pct_start=0.4), 29,
          momentum=lambda: s.one_cycle_momentum(epochs=4, steps_per_epoch=7, pct_start=0.4),
          optimizer="adam"),
        c("one_cycle_lr-pct1-warmup-only",
          lambda o, S: S.OneCycleLR(o, 1.0, total_steps=12, pct_start=1.0),
          lambda: s.one_cycle_lr(1.0, total_steps=12, pct_start=1.0), 12,
          momentum=lambda: s.one_cycle_momentum(total_steps=12, pct_start=1.0)),
        # LambdaLR / MultiplicativeLR
        c("lambda_lr-pow", lambda o, S: S.LambdaLR(o, lambda k: 0.95**k),
          lambda: s.lambda_lr(LR, lambda k: 0.95**k), 20),
        c("lambda_lr-warmup",
          lambda o, S: S.LambdaLR(o, lambda k: min(1.0, (k + 1) / 6)),
          lambda: s.lambda_lr(LR, lambda k: jnp.minimum(1.0, (k + 1) / 6)), 10),
        c("multiplicative_lr-0.9", lambda o, S: S.MultiplicativeLR(o, lambda k: 0.9),
          lambda: s.multiplicative_lr(LR, lambda k: 0.9), 20),
        c("multiplicative_lr-varying",
          lambda o, S: S.MultiplicativeLR(o, lambda k: 1.0 / (1.0 + 0.05 * k)),
          lambda: s.multiplicative_lr(LR, lambda k: 1.0 / (1.0 + 0.05 * k)), 20),
        # SequentialLR
        c("sequential_lr-warmup-cosine",
          lambda o, S: S.SequentialLR(o, [S.LinearLR(o, 0.1, 1.0, 5), S.CosineAnnealingLR(o, 20)],
                                      milestones=[5]),
          lambda: s.sequential_lr([s.linear_lr(LR, 0.1, 1.0, 5), s.cosine_annealing_lr(LR, 20)],
                                  milestones=[5]), 30),
        c("sequential_lr-constant-exponential",
          lambda o, S: S.SequentialLR(o, [S.ConstantLR(o, 0.1, 2), S.ExponentialLR(o, 0.9)],
                                      milestones=[2]),
          lambda: s.sequential_lr([s.constant_lr(LR, 0.1, 2), s.exponential_lr(LR, 0.9)],
                                  milestones=[2]), 12),
        c("sequential_lr-three",
          lambda o, S: S.SequentialLR(
              o, [S.LinearLR(o, 0.5, 1.0, 3), S.StepLR(o, 2, 0.5), S.ExponentialLR(o, 0.8)],
              milestones=[3, 10]),
          lambda: s.sequential_lr(
              [s.linear_lr(LR, 0.5, 1.0, 3), s.step_lr(LR, 2, 0.5), s.exponential_lr(LR, 0.8)],
              milestones=[3, 10]), 16),
        c("sequential_lr-cosine-restarts",
          lambda o, S: S.SequentialLR(
              o, [S.CosineAnnealingLR(o, 4), S.CosineAnnealingLR(o, 6, eta_min=0.01)],
              milestones=[4]),
          lambda: s.sequential_lr(
              [s.cosine_annealing_lr(LR, 4), s.cosine_annealing_lr(LR, 6, eta_min=0.01)],
              milestones=[4]), 20),
        c("sequential_lr-polynomial-lambda",
          lambda o, S: S.SequentialLR(
              o, [S.LambdaLR(o, lambda k: (k + 1) / 4), S.PolynomialLR(o, 6, 2.0)],
              milestones=[3]),
          lambda: s.sequential_lr(
              [s.lambda_lr(LR, lambda k: (k + 1) / 4), s.polynomial_lr(LR, 6, 2.0)],
              milestones=[3]), 12),
        # ChainedScheduler: multiplicative schedulers
        c("chained-constant-exponential",
          lambda o, S: S.ChainedScheduler([S.ConstantLR(o, 0.1, 2), S.ExponentialLR(o, 0.9)]),
          lambda: s.chained_scheduler(LR, [s.constant_lr(LR, 0.1, 2), s.exponential_lr(LR, 0.9)]),
          12),
        c("chained-linear-multistep",
          lambda o, S: S.ChainedScheduler([S.LinearLR(o, 0.2, 1.0, 4),
                                           S.MultiStepLR(o, [3, 6], 0.5)]),
          lambda: s.chained_scheduler(LR, [s.linear_lr(LR, 0.2, 1.0, 4),
                                           s.multi_step_lr(LR, [3, 6], 0.5)]), 10),
        c("chained-cosine-exponential-step",
          lambda o, S: S.ChainedScheduler([S.CosineAnnealingLR(o, 20), S.ExponentialLR(o, 0.95),
                                           S.StepLR(o, 5, 0.5)]),
          lambda: s.chained_scheduler(LR, [s.cosine_annealing_lr(LR, 20),
                                           s.exponential_lr(LR, 0.95), s.step_lr(LR, 5, 0.5)]),
          20),
        c("chained-polynomial-multiplicative",
          lambda o, S: S.ChainedScheduler([S.PolynomialLR(o, 10, 1.5),
                                           S.MultiplicativeLR(o, lambda k: 0.97)]),
          lambda: s.chained_scheduler(LR, [s.polynomial_lr(LR, 10, 1.5),
                                           s.multiplicative_lr(LR, lambda k: 0.97)]), 14),
        # SWALR (torch.optim.swa_utils): cos and linear annealing, E = 0 and 1 edge cases
        *[c(f"swa_lr-{e}-{strategy}", lambda o, S, e=e, strategy=strategy: _swalr(
            o, swa_lr=0.013, anneal_epochs=e, anneal_strategy=strategy),
            lambda e=e, strategy=strategy: s.swa_lr(LR, 0.013, e, strategy), 15)
          for e in (0, 1, 5) for strategy in ("cos", "linear")],
    ]


def _swalr(opt, **kwargs):
    """torch.optim.swa_utils.SWALR (imported here: this module needs no torch)."""
    from torch.optim.swa_utils import SWALR

    return SWALR(opt, **kwargs)


SCHED_CASES: list[SchedCase] = _cases()


@dataclass(frozen=True)
class PlateauCase:
    """One ReduceLROnPlateau configuration fed ``metrics(rng)`` (one value per epoch)."""

    id: str
    kwargs: dict[str, Any]
    metrics: Callable[[np.random.Generator], np.ndarray]
    lr: float | tuple[float, ...] = LR


def _walk(n: int, plateau_every: int = 7) -> Callable[[np.random.Generator], np.ndarray]:
    """A decreasing noisy loss with flat stretches and exact repeats (ties)."""

    def make(rng: np.random.Generator) -> np.ndarray:
        x = np.empty(n)
        v = 1.0
        for i in range(n):
            if (i // plateau_every) % 2 == 1:
                v = v if rng.random() < 0.5 else v * (1 + 0.02 * rng.standard_normal())
            else:
                v = v * (1 - 0.05 * rng.random())
            x[i] = round(v, 3)
        return x

    return make


def _quantized(n: int, step: float) -> Callable[[np.random.Generator], np.ndarray]:
    """Metrics on a grid of ``step``: improvements equal to an abs threshold exactly."""

    def make(rng: np.random.Generator) -> np.ndarray:
        return np.round(np.cumsum(rng.choice([-2, -1, 0, 0, 1], n)) * step + 5.0, 6)

    return make


PLATEAU_CASES: list[PlateauCase] = [
    PlateauCase("default", {}, _walk(60, 15)),
    PlateauCase("patience2", {"patience": 2}, _walk(40)),
    PlateauCase("patience0", {"patience": 0, "factor": 0.5}, _walk(30)),
    PlateauCase("min-abs", {"patience": 1, "threshold": 0.01, "threshold_mode": "abs"},
                _quantized(40, 0.01)),
    PlateauCase("max-rel", {"mode": "max", "patience": 2, "threshold": 0.01},
                lambda rng: -_walk(50)(rng)),
    PlateauCase("max-abs", {"mode": "max", "patience": 1, "threshold": 0.01,
                            "threshold_mode": "abs"}, _quantized(40, 0.01)),
    PlateauCase("cooldown", {"patience": 1, "cooldown": 3, "factor": 0.5}, _walk(50, 4)),
    PlateauCase("min_lr", {"patience": 1, "factor": 0.3, "min_lr": 0.004}, _walk(50, 3)),
    PlateauCase("eps-blocks", {"patience": 0, "factor": 0.5, "eps": 0.02}, _walk(30, 2)),
    PlateauCase("big-threshold-rel", {"patience": 1, "threshold": 0.2}, _walk(30)),
    PlateauCase("groups-min_lr", {"patience": 1, "factor": 0.5, "min_lr": (0.01, 0.0)},
                _walk(40, 3), lr=(0.1, 0.05)),
    PlateauCase("nan-metric", {"patience": 1},
                lambda rng: np.where(np.arange(20) % 5 == 3, np.nan, _walk(20)(rng))),
]


@dataclass(frozen=True)
class TrajCase:
    """An optimizer driven by a momentum-cycling scheduler: torch and fnlearn parameter
    trajectories over a fixed gradient sequence."""

    id: str
    torch_opt: tuple[str, dict[str, Any]]
    torch_sched: Callable[[Any, Any], Any]
    fn: Callable[[], Any]
    steps: int = 30
    shapes: tuple[tuple[int, ...], ...] = field(default=((3,), (2, 2)))


TRAJ_CASES: list[TrajCase] = [
    TrajCase(
        "sgd-cyclic-default-momentum",
        ("SGD", {"lr": 0.1}),
        lambda o, S: S.CyclicLR(o, 0.01, 0.1, step_size_up=4),
        lambda: optim.sgd(
            lr=schedules.cyclic_lr(0.01, 0.1, step_size_up=4),
            momentum=schedules.cyclic_momentum(step_size_up=4),
        ),
    ),
    TrajCase(
        "adam-one_cycle-beta1",
        ("Adam", {"lr": 0.1, "betas": (0.9, 0.99)}),
        lambda o, S: S.OneCycleLR(o, 0.05, total_steps=30),
        lambda: optim.adam(
            lr=schedules.one_cycle_lr(0.05, total_steps=30),
            betas=(schedules.one_cycle_momentum(total_steps=30), 0.99),
        ),
    ),
    TrajCase(
        "sgd-nesterov-warmup-cosine",
        ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
        lambda o, S: S.SequentialLR(
            o, [S.LinearLR(o, 0.1, 1.0, 5), S.CosineAnnealingLR(o, 25)], milestones=[5]
        ),
        lambda: optim.sgd(
            lr=schedules.sequential_lr(
                [schedules.linear_lr(0.1, 0.1, 1.0, 5), schedules.cosine_annealing_lr(0.1, 25)],
                [5],
            ),
            momentum=0.9,
            nesterov=True,
        ),
    ),
]
