"""The catalogue's optimizer, schedule and clipping rows: each fnlearn transform with the
references it is compared against (:func:`to_optax`'s transform, a few optax-defaults traps,
and torch.optim), run through SGD for schedules and clipping so that every row is a parameter
trajectory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import optax

from . import _torch
from ._optax_map import TORCH_DEFAULTS, TORCH_NAMES, to_optax


@dataclass(frozen=True)
class Ref:
    """One reference side: an optax transform (``build() -> GradientTransformation``) or a
    torch.optim configuration (``build() -> TorchOptimizer``), with the expectation."""

    text: str
    build: Callable[[], Any]
    expected: str = "match"
    reason: str = ""
    torch: bool = False


@dataclass(frozen=True)
class OptJob:
    """An fnlearn transform (``build() -> GradientTransformation``) and its references."""

    kind: str
    algorithm: str
    options: str
    build: Callable[[], Any]
    refs: tuple[Ref, ...]


def options_text(options: dict[str, Any]) -> str:
    parts = []
    for k, v in options.items():
        if callable(v):
            v = getattr(v, "_crosscheck_text", "schedule")
            parts.append(f"{k}={v}")
        else:
            parts.append(f"{k}={v!r}")
    return ", ".join(parts) or "defaults"


def _decay(lr: float) -> Callable[[Any], Any]:
    """The lr schedule of the 'lr schedule' rows: ``lr / (1 + 0.1 k)``."""

    def schedule(k: Any) -> Any:
        return lr / (1.0 + 0.1 * jnp.asarray(k).astype(float))

    schedule._crosscheck_text = f"lambda k: {lr!r} / (1 + 0.1 * k)"  # type: ignore[attr-defined]
    return schedule


def _torch_decay(k: int) -> float:
    return 1.0 / (1.0 + 0.1 * k)


#: Optimizer configurations: (algorithm, options, lr follows ``_decay``).
OPTIMIZER_CASES: tuple[tuple[str, dict[str, Any], bool], ...] = (
    ("sgd", dict(lr=0.01), False),
    ("sgd", dict(lr=0.01, momentum=0.9), False),
    ("sgd", dict(lr=0.01, momentum=0.9, nesterov=True), False),
    ("sgd", dict(lr=0.01, weight_decay=0.1), False),
    ("sgd", dict(lr=0.01, maximize=True), False),
    ("sgd", dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True), False),
    ("sgd", dict(lr=0.01, momentum=0.9), True),
    ("sgd", dict(lr=0.01, momentum=0.9, dampening=0.5), False),
    ("rmsprop", dict(), False),
    ("rmsprop", dict(momentum=0.9), False),
    ("rmsprop", dict(centered=True), False),
    ("rmsprop", dict(centered=True, momentum=0.9), False),
    ("rmsprop", dict(weight_decay=0.1, maximize=True), False),
    ("rmsprop", dict(momentum=0.9), True),
    ("rmsprop", dict(centered=True, momentum=0.9, weight_decay=0.1), True),
    ("adagrad", dict(), False),
    ("adagrad", dict(eps=1e-2), False),
    ("adagrad", dict(eps=0.0), False),
    ("adagrad", dict(eps=0.0, lr_decay=0.05), False),
    ("adagrad", dict(eps=0.0, initial_accumulator_value=0.1), False),
    ("adagrad", dict(eps=0.0, weight_decay=0.1, maximize=True), False),
    ("adagrad", dict(eps=0.0), True),
    ("adam", dict(), False),
    ("adam", dict(betas=(0.5, 0.9), eps=1e-3), False),
    ("adam", dict(weight_decay=0.1), False),
    ("adam", dict(maximize=True), False),
    ("adam", dict(), True),
    ("adam", dict(amsgrad=True), False),
    ("adam", dict(weight_decay=0.1, decoupled_weight_decay=True), False),
    ("adamw", dict(), False),
    ("adamw", dict(weight_decay=0.1), True),
    ("adamw", dict(maximize=True), False),
    ("adamw", dict(amsgrad=True), False),
    ("adamax", dict(), False),
    ("adamax", dict(weight_decay=0.1, maximize=True), False),
    ("nadam", dict(), False),
    ("nadam", dict(momentum_decay=0.0), False),
    ("radam", dict(), False),
    ("radam", dict(eps=0.0), False),
    ("radam", dict(eps=0.0, weight_decay=0.1, decoupled_weight_decay=True), False),
    ("adadelta", dict(), False),
    ("adadelta", dict(weight_decay=0.1, maximize=True), False),
    ("asgd", dict(), False),
    ("asgd", dict(lr=0.05, lambd=0.01, weight_decay=0.1, maximize=True), False),
    ("rprop", dict(), False),
    ("adafactor", dict(), False),
    ("adafactor", dict(lr=0.05, weight_decay=0.1, d=2.0, maximize=True), False),
)


def _traps(algorithm: str, options: dict[str, Any], scheduled: bool) -> list[Ref]:
    """The optax-defaults traps of section 2.7: the optax call a porter writes first."""
    lr = options.get("lr", TORCH_DEFAULTS[algorithm]["lr"])
    if algorithm == "rmsprop" and not options:
        return [Ref(f"optax.rmsprop({lr!r})", lambda: optax.rmsprop(lr), "differ",
                    "optax.rmsprop's defaults differ: decay=0.9 (torch alpha=0.99) and "
                    "eps_in_sqrt=True (1/sqrt(v + eps), torch 1/(sqrt(v) + eps)); optax#532")]
    if algorithm == "rmsprop" and scheduled and options == dict(momentum=0.9):
        sched = _decay(lr)
        return [Ref(f"optax.rmsprop({sched._crosscheck_text}, decay=0.99, eps=1e-08, "
                    "eps_in_sqrt=False, momentum=0.9)",
                    lambda: optax.rmsprop(sched, decay=0.99, eps=1e-8, eps_in_sqrt=False,
                                          momentum=0.9), "differ",
                    "optax.rmsprop multiplies by lr before the momentum trace, torch after it: "
                    "with a changing lr the trace mixes old learning rates")]
    if algorithm == "adagrad" and not options:
        return [Ref(f"optax.adagrad({lr!r})", lambda: optax.adagrad(lr), "differ",
                    "optax.adagrad's defaults differ: initial_accumulator_value=0.1 (torch 0), "
                    "eps=1e-7 inside the sqrt (torch 1e-10 outside)")]
    if algorithm == "adamw" and not options:
        return [Ref(f"optax.adamw({lr!r})", lambda: optax.adamw(lr), "differ",
                    "optax.adamw's default weight_decay is 1e-4, torch's AdamW 1e-2")]
    if algorithm == "adam" and options == dict(amsgrad=True):
        return [Ref(f"optax.amsgrad({lr!r}, bias_correction_nu=False)",
                    lambda: optax.amsgrad(lr, bias_correction_nu=False), "differ",
                    "bias_correction_nu=False takes the maximum of the raw second moment but "
                    "then drops the bias correction altogether (torch divides the maximum by "
                    "1 - b2^t)")]
    return []


#: Exact in float64 but not in float32: optax's own float32 arithmetic loses precision.
_FLOAT32_ONLY = {
    "radam": "in float32 optax computes rho_t = rho_inf - 2 t b2^t / (1 - b2^t) from float32 "
             "scalars, which cancel catastrophically near the rectification threshold (r_t off "
             "by ~1e-3 relative); torch and fnlearn keep these scalars precise",
}


def optimizer_jobs(with_torch: bool, dtype: str = "float64") -> list[OptJob]:
    import fnlearn.optim as fo

    jobs = []
    for algorithm, options, scheduled in OPTIMIZER_CASES:
        fl_opts = dict(options)
        torch_opts = dict(options)
        if scheduled:
            lr = options.get("lr", TORCH_DEFAULTS[algorithm]["lr"])
            fl_opts = {"lr": _decay(lr), **{k: v for k, v in options.items() if k != "lr"}}
            torch_opts = dict(fl_opts, lr=lr)

        def build(algorithm: str = algorithm, fl_opts: dict = fl_opts) -> Any:
            return getattr(fo, algorithm)(**fl_opts)

        def build_optax(algorithm: str = algorithm, fl_opts: dict = fl_opts) -> Any:
            return to_optax(algorithm, **fl_opts).transform

        eq = to_optax(algorithm, **fl_opts)
        expected, reason = ("match", "") if eq.exact else ("differ", eq.reason)
        if eq.exact and dtype == "float32" and algorithm in _FLOAT32_ONLY:
            expected, reason = "differ", _FLOAT32_ONLY[algorithm]
        refs = [Ref(eq.expression, build_optax, expected, reason)]
        refs += _traps(algorithm, options, scheduled)
        if with_torch:
            refs.append(_torch_ref(algorithm, torch_opts, scheduled))
        jobs.append(OptJob("optimizer", algorithm, options_text(fl_opts), build, tuple(refs)))
    return jobs


def _torch_ref(algorithm: str, torch_opts: dict[str, Any], scheduled: bool) -> Ref:
    name = TORCH_NAMES[algorithm]

    def build() -> Any:
        torch = _torch.import_torch()
        scheduler = None
        if scheduled:
            def scheduler(opt: Any) -> Any:
                return torch.optim.lr_scheduler.LambdaLR(opt, _torch_decay)
        return _torch.TorchOptimizer(getattr(torch.optim, name), scheduler=scheduler,
                                     **torch_opts)

    args = ", ".join(f"{k}={v!r}" for k, v in torch_opts.items())
    text = f"torch.optim.{name}({args})"
    if scheduled:
        text += " + LambdaLR(1 / (1 + 0.1 k))"
    return Ref(text, build, torch=True)


# --------------------------------------------------------------------------------------------
# schedules and clipping (run through SGD so that every row is a parameter trajectory)


@dataclass(frozen=True)
class ScheduleCase:
    name: str
    options: str
    fnlearn: Callable[[int], Any]  # steps -> fnlearn schedule
    optax: Callable[[int], Any]  # steps -> optax schedule
    optax_text: str
    torch: Callable[[Any, int], Any]  # (torch optimizer, steps) -> torch scheduler
    torch_text: str
    expected: Callable[[int, str], str] = lambda steps, dtype: "match"
    reason: str = ""


_F32_SCHEDULE = (
    "optax computes this schedule in float32 even with x64 enabled (its int32 count divided by "
    "an integer number of steps is float32 in JAX): a relative difference ~1e-7 in float64, "
    "none in float32"
)


def _f64_differs(steps: int, dtype: str) -> str:
    return "differ" if dtype == "float64" else "match"


def schedule_cases() -> list[ScheduleCase]:
    from fnlearn import schedules as fs

    def onecycle_exact(n: int) -> Any:
        return optax.schedules.piecewise_interpolate_schedule(
            "cosine", 0.1 / 25, {int(0.3 * n) - 1: 25.0, n - 1: 1 / (25 * 1e4)})

    def lr_sched() -> Any:
        return _torch.import_torch().optim.lr_scheduler

    return [
        ScheduleCase(
            "step_lr", "lr=0.1, step_size=10, gamma=0.5",
            lambda n: fs.step_lr(0.1, step_size=10, gamma=0.5),
            lambda n: optax.exponential_decay(0.1, 10, 0.5, staircase=True),
            "optax.exponential_decay(0.1, 10, 0.5, staircase=True)",
            lambda o, n: lr_sched().StepLR(o, step_size=10, gamma=0.5),
            "torch StepLR(step_size=10, gamma=0.5)", _f64_differs, _F32_SCHEDULE),
        ScheduleCase(
            "multi_step_lr", "lr=0.1, milestones=[10, 30], gamma=0.1",
            lambda n: fs.multi_step_lr(0.1, milestones=[10, 30], gamma=0.1),
            lambda n: optax.piecewise_constant_schedule(0.1, {10: 0.1, 30: 0.1}),
            "optax.piecewise_constant_schedule(0.1, {10: 0.1, 30: 0.1})",
            lambda o, n: lr_sched().MultiStepLR(o, milestones=[10, 30], gamma=0.1),
            "torch MultiStepLR(milestones=[10, 30], gamma=0.1)"),
        ScheduleCase(
            "exponential_lr", "lr=0.1, gamma=0.97",
            lambda n: fs.exponential_lr(0.1, gamma=0.97),
            lambda n: optax.exponential_decay(0.1, 1, 0.97),
            "optax.exponential_decay(0.1, 1, 0.97)",
            lambda o, n: lr_sched().ExponentialLR(o, gamma=0.97),
            "torch ExponentialLR(gamma=0.97)", _f64_differs, _F32_SCHEDULE),
        ScheduleCase(
            "linear_lr", "lr=0.1, start_factor=0.25, total_iters=20",
            lambda n: fs.linear_lr(0.1, start_factor=0.25, total_iters=20),
            lambda n: optax.linear_schedule(0.025, 0.1, 20),
            "optax.linear_schedule(0.025, 0.1, 20)",
            lambda o, n: lr_sched().LinearLR(o, start_factor=0.25, total_iters=20),
            "torch LinearLR(start_factor=0.25, total_iters=20)", _f64_differs, _F32_SCHEDULE),
        ScheduleCase(
            "cosine_annealing_lr", "lr=0.1, T_max=steps",
            lambda n: fs.cosine_annealing_lr(0.1, T_max=n),
            lambda n: optax.cosine_decay_schedule(0.1, n),
            "optax.cosine_decay_schedule(0.1, steps)",
            lambda o, n: lr_sched().CosineAnnealingLR(o, T_max=n),
            "torch CosineAnnealingLR(T_max=steps)"),
        ScheduleCase(
            "cosine_annealing_lr", "lr=0.1, T_max=steps // 4 (run past T_max)",
            lambda n: fs.cosine_annealing_lr(0.1, T_max=max(n // 4, 1)),
            lambda n: optax.cosine_decay_schedule(0.1, max(n // 4, 1)),
            "optax.cosine_decay_schedule(0.1, steps // 4)",
            lambda o, n: lr_sched().CosineAnnealingLR(o, T_max=max(n // 4, 1)),
            "torch CosineAnnealingLR(T_max=steps // 4)",
            lambda n, dtype: "differ" if n > max(n // 4, 1) + 1 else "match",
            "past T_max torch's cosine keeps going (periodic: back up to lr at 2 T_max); "
            "optax.cosine_decay_schedule stays at its final value"),
        ScheduleCase(
            "one_cycle_lr", "max_lr=0.1, total_steps=steps",
            lambda n: fs.one_cycle_lr(0.1, total_steps=n),
            lambda n: optax.cosine_onecycle_schedule(n, 0.1),
            "optax.cosine_onecycle_schedule(steps, 0.1)",
            lambda o, n: lr_sched().OneCycleLR(o, max_lr=0.1, total_steps=n,
                                               cycle_momentum=False),
            "torch OneCycleLR(max_lr=0.1, total_steps=steps, cycle_momentum=False)",
            lambda n, dtype: "differ",
            "torch ends the phases at pct_start * total - 1 and total - 1, optax at "
            "int(pct_start * total) and total: off by one step"),
        ScheduleCase(
            "one_cycle_lr", "max_lr=0.1, total_steps=steps",
            lambda n: fs.one_cycle_lr(0.1, total_steps=n),
            onecycle_exact,
            "optax.schedules.piecewise_interpolate_schedule('cosine', 0.1 / 25, "
            "{0.3 * steps - 1: 25, steps - 1: 1 / (25 * 1e4)})",
            lambda o, n: lr_sched().OneCycleLR(o, max_lr=0.1, total_steps=n,
                                               cycle_momentum=False),
            "torch OneCycleLR(max_lr=0.1, total_steps=steps, cycle_momentum=False)",
            lambda n, dtype: "differ" if dtype == "float64" or not (0.3 * n).is_integer()
            or n < 10 else "match",
            "with torch's breakpoints (pct_start * total - 1, total - 1) this is torch's "
            "schedule when 0.3 * steps is an integer, but optax computes it in float32 (int32 "
            "count over integer intervals): ~1e-7 relative in float64, exact in float32"),
    ]


def schedule_jobs(steps: int, dtype: str, with_torch: bool) -> list[OptJob]:
    import fnlearn.optim as fo

    jobs = []
    for case in schedule_cases():
        def build(case: ScheduleCase = case) -> Any:
            return fo.sgd(lr=case.fnlearn(steps))

        def build_optax(case: ScheduleCase = case) -> Any:
            return optax.sgd(case.optax(steps))

        expected = case.expected(steps, dtype)
        refs = [Ref(f"optax.sgd({case.optax_text})", build_optax, expected,
                    case.reason if expected == "differ" else "")]
        if with_torch:
            def build_torch(case: ScheduleCase = case) -> Any:
                torch = _torch.import_torch()
                return _torch.TorchOptimizer(torch.optim.SGD, lr=0.1,
                                             scheduler=lambda o: case.torch(o, steps))

            refs.append(Ref(f"torch.optim.SGD + {case.torch_text}", build_torch, torch=True))
        jobs.append(OptJob("schedule", case.name, case.options, build, tuple(refs)))
    return jobs


def clip_jobs(with_torch: bool) -> list[OptJob]:
    """clip_grad_norm / clip_grad_value, when fnlearn has them, chained with SGD(lr=1)."""
    import fnlearn.optim as fo

    jobs = []
    for name, value, kw in (("clip_grad_norm", 1.0, "max_norm"),
                            ("clip_grad_value", 0.5, "clip_value")):
        if not hasattr(fo, f"{name}_transform"):
            continue
        eq = to_optax(name, **{kw: value})

        def build(name: str = name, kw: str = kw, value: float = value) -> Any:
            return optax.chain(getattr(fo, f"{name}_transform")(**{kw: value}), fo.sgd(lr=1.0))

        def build_optax(eq: Any = eq) -> Any:
            return optax.chain(eq.transform, optax.sgd(1.0))

        refs = [Ref(f"optax.chain({eq.expression}, optax.sgd(1.0))", build_optax,
                    "match" if eq.exact else "differ", eq.reason)]
        if with_torch:
            def build_torch(name: str = name, value: float = value) -> Any:
                torch = _torch.import_torch()
                return _torch.TorchOptimizer(torch.optim.SGD, lr=1.0, **{name: value})

            refs.append(Ref(f"torch.nn.utils.{name}_({value!r}) + torch.optim.SGD(lr=1.0)",
                            build_torch, torch=True))
        jobs.append(OptJob("clip", name, f"{kw}={value!r} (then SGD lr=1)", build, tuple(refs)))
    return jobs


