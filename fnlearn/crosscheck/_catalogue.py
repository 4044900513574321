"""The built-in catalogue that ``python -m fnlearn.crosscheck`` runs.

Every fnlearn optimizer with its option combinations (against :func:`to_optax`'s transform,
a few optax-defaults traps, and torch.optim), lr schedules and gradient clipping (through
SGD), and every loss configuration with an optax counterpart or a torch one. Each row has an
expectation: ``match`` (should agree to the dtype's tolerance) or ``differ`` (a documented
semantic difference, with its reason). The run batches the JAX sides: one jitted scan per
kind (optimizers, schedules, clipping) and one jitted call for all losses, so the whole
catalogue compiles four times (a failing side is isolated by bisection).
"""

from __future__ import annotations

import fnmatch
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import _compare, _torch
from ._optax_map import TORCH_DEFAULTS, TORCH_NAMES, to_optax

#: Verdicts. MISMATCH, UNEXPECTED_MATCH and ERROR make the command fail.
MATCH = "match"
DIFFERS = "differs-as-documented"
BELOW = "below-tolerance"  # a documented difference too small to see in float32
MISMATCH = "MISMATCH"  # should agree and does not
UNEXPECTED_MATCH = "UNEXPECTED-MATCH"  # a documented difference that vanished in float64
ERROR = "ERROR"
FAILING = (MISMATCH, UNEXPECTED_MATCH, ERROR)


@dataclass(frozen=True)
class Row:
    """One line of the cross-check table."""

    kind: str  # "optimizer", "schedule", "clip" or "loss"
    algorithm: str
    options: str
    reference: str  # the optax expression or torch call compared against
    expected: str  # "match" or "differ"
    verdict: str
    max_abs: float = math.nan
    max_rel: float = math.nan
    first_divergence: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "algorithm": self.algorithm,
            "options": self.options,
            "reference": self.reference,
            "expected": self.expected,
            "verdict": self.verdict,
            "max_abs": _compare._num(self.max_abs),
            "max_rel": _compare._num(self.max_rel),
            "first_divergence": self.first_divergence,
            "reason": self.reason,
        }


def verdict(expected: str, agree: bool, dtype: str) -> str:
    """The row verdict from the expectation and whether the two sides agreed.

    Every documented difference in the catalogue is far above float64's tolerance, so in
    float64 a row expected to differ that agrees means the fnlearn side now computes what
    optax computes, not what torch computes: that fails (UNEXPECTED-MATCH). In float32 some
    differences are below the tolerance (BELOW), which is fine.
    """
    if expected == "match":
        return MATCH if agree else MISMATCH
    if agree:
        return UNEXPECTED_MATCH if dtype == "float64" else BELOW
    return DIFFERS


# --------------------------------------------------------------------------------------------
# references: what a JAX side is compared against


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


def _text(options: dict[str, Any]) -> str:
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
        jobs.append(OptJob("optimizer", algorithm, _text(fl_opts), build, tuple(refs)))
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


def _schedule_cases() -> list[ScheduleCase]:
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
    for case in _schedule_cases():
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


# --------------------------------------------------------------------------------------------
# losses


@dataclass(frozen=True)
class LossCase:
    """One loss configuration. ``make(rng)`` returns the positional inputs followed by the
    array keyword arguments named in ``array_kwargs``; ``options`` are the static ones."""

    fn: str
    make: Callable[[np.random.Generator], tuple[Any, ...]]
    n_positional: int = 2
    options: dict[str, Any] = field(default_factory=dict)
    array_kwargs: tuple[str, ...] = ()
    wrt: tuple[int, ...] = (0,)
    optax: Callable[..., Any] | None = None
    optax_text: str = ""
    expected: str = "match"
    reason: str = ""
    label: str = ""

    def call(self, module: Any) -> Callable[..., Any]:
        fn = getattr(module, self.fn)
        n, names, options = self.n_positional, self.array_kwargs, self.options

        def loss(*xs: Any) -> Any:
            return fn(*xs[:n], **options, **dict(zip(names, xs[n:], strict=True)))

        return loss

    def describe(self) -> str:
        return self.label or _text(self.options)


def _rng_logits(r: np.random.Generator) -> np.ndarray:
    return r.standard_normal((6, 5))


def _rng_labels(r: np.random.Generator) -> np.ndarray:
    return r.integers(0, 5, 6)


def _probs(r: np.random.Generator, shape: tuple[int, ...] = (6, 5)) -> np.ndarray:
    e = np.exp(r.standard_normal(shape))
    return e / e.sum(-1, keepdims=True)


def _log_softmax(x: Any) -> Any:
    return jax.nn.log_softmax(x, axis=-1)


def loss_cases() -> list[LossCase]:
    L = optax.losses
    xy = lambda r: (r.standard_normal((6, 4)), r.standard_normal((6, 4)))  # noqa: E731
    return [
        LossCase("mse_loss", xy, optax=lambda x, y: L.squared_error(x, y).mean(),
                 optax_text="optax.losses.squared_error(x, y).mean()"),
        LossCase("mse_loss", xy, options=dict(reduction="none"),
                 optax=lambda x, y: L.squared_error(x, y),
                 optax_text="optax.losses.squared_error(x, y)"),
        LossCase("l1_loss", xy),
        LossCase("l1_loss", lambda r: (*xy(r), r.uniform(0.1, 1, (6, 4))),
                 array_kwargs=("weight",), label="weight=(6, 4)"),
        LossCase("smooth_l1_loss", xy, options=dict(beta=0.5),
                 optax=lambda x, y: (L.huber_loss(x, y, delta=0.5) / 0.5).mean(),
                 optax_text="(optax.losses.huber_loss(x, y, delta=0.5) / 0.5).mean()"),
        LossCase("huber_loss", xy, options=dict(delta=1.5),
                 optax=lambda x, y: L.huber_loss(x, y, delta=1.5).mean(),
                 optax_text="optax.losses.huber_loss(x, y, delta=1.5).mean()"),
        LossCase("binary_cross_entropy",
                 lambda r: (r.uniform(0.05, 0.95, (6, 4)), r.uniform(0, 1, (6, 4))),
                 optax=lambda p, y: L.sigmoid_binary_cross_entropy(
                     jnp.log(p) - jnp.log1p(-p), y).mean(),
                 optax_text="optax.losses.sigmoid_binary_cross_entropy(logit(p), y).mean()",
                 label="p in (0.05, 0.95)"),
        LossCase("binary_cross_entropy",
                 lambda r: (np.array([0.0, 1.0, 0.3, 1.0]), np.array([1.0, 0.0, 1.0, 1.0])),
                 optax=lambda p, y: L.sigmoid_binary_cross_entropy(
                     jnp.log(p) - jnp.log1p(-p), y).mean(),
                 optax_text="optax.losses.sigmoid_binary_cross_entropy(logit(p), y).mean()",
                 expected="differ", label="p = 0 or 1 against the wrong label",
                 reason="torch clamps each log at -100 (a confident wrong prediction costs 100, "
                        "never inf); optax has no probability-space BCE and no clamp"),
        LossCase("binary_cross_entropy_with_logits",
                 lambda r: (r.standard_normal((6, 4)), r.uniform(0, 1, (6, 4))),
                 optax=lambda x, y: L.sigmoid_binary_cross_entropy(x, y).mean(),
                 optax_text="optax.losses.sigmoid_binary_cross_entropy(x, y).mean()"),
        LossCase("binary_cross_entropy_with_logits",
                 lambda r: (r.standard_normal((6, 4)), r.uniform(0, 1, (6, 4)),
                            r.uniform(0.5, 3, (4,))),
                 array_kwargs=("pos_weight",), label="pos_weight=(4,)"),
        LossCase("cross_entropy", lambda r: (_rng_logits(r), _rng_labels(r)),
                 optax=lambda x, y: L.softmax_cross_entropy_with_integer_labels(x, y).mean(),
                 optax_text="optax.losses.softmax_cross_entropy_with_integer_labels(x, y)"
                            ".mean()"),
        LossCase("cross_entropy", lambda r: (_rng_logits(r), _probs(r)),
                 optax=lambda x, t: L.softmax_cross_entropy(x, t).mean(),
                 optax_text="optax.losses.softmax_cross_entropy(x, t).mean()",
                 label="probability targets"),
        LossCase("cross_entropy", lambda r: (_rng_logits(r), _rng_labels(r)),
                 options=dict(label_smoothing=0.1),
                 optax=lambda x, y: L.softmax_cross_entropy(
                     x, optax.smooth_labels(jax.nn.one_hot(y, 5, dtype=x.dtype), 0.1)).mean(),
                 optax_text="optax.losses.softmax_cross_entropy(x, optax.smooth_labels("
                            "one_hot(y, C), 0.1)).mean()"),
        LossCase("cross_entropy",
                 lambda r: (_rng_logits(r), np.array([0, -100, 2, 3, -100, 1])),
                 optax=lambda x, y: L.softmax_cross_entropy_with_integer_labels(x, y).mean(),
                 optax_text="optax.losses.softmax_cross_entropy_with_integer_labels(x, y)"
                            ".mean()",
                 expected="differ", label="targets with ignore_index=-100",
                 reason="optax has no ignore_index: a label -100 (or >= C) silently gives nan "
                        "(optax#1185); torch drops those targets from the sum and the count"),
        LossCase("cross_entropy",
                 lambda r: (_rng_logits(r), np.array([0, -100, 2, 3, -100, 1]),
                            r.uniform(0.5, 2, (5,))),
                 options=dict(label_smoothing=0.2), array_kwargs=("weight",),
                 label="weight, ignore_index, label_smoothing=0.2"),
        LossCase("cross_entropy",
                 lambda r: (_rng_logits(r), np.full(6, -100)),
                 label="every target ignored ('mean' is nan, gradient 0)"),
        LossCase("nll_loss",
                 lambda r: (np.asarray(_log_softmax(_rng_logits(r))), _rng_labels(r),
                            r.uniform(0.5, 2, (5,))),
                 array_kwargs=("weight",), label="weight=(5,)"),
        LossCase("kl_div", lambda r: (np.log(_probs(r)), _probs(r)),
                 options=dict(reduction="batchmean"),
                 optax=lambda x, t: L.kl_divergence(x, t).mean(),
                 optax_text="optax.losses.kl_divergence(x, t).mean()"),
        LossCase("kl_div", lambda r: (np.log(_probs(r)), np.log(_probs(r))),
                 options=dict(reduction="batchmean", log_target=True),
                 optax=lambda x, t: L.kl_divergence_with_log_targets(x, t).mean(),
                 optax_text="optax.losses.kl_divergence_with_log_targets(x, t).mean()"),
        LossCase("poisson_nll_loss", lambda r: (r.standard_normal((6, 4)),
                                                r.poisson(2.0, (6, 4)).astype(float)),
                 options=dict(full=True)),
        LossCase("gaussian_nll_loss",
                 lambda r: (r.standard_normal((6, 4)), r.standard_normal((6, 4)),
                            np.concatenate([r.uniform(0.1, 2, (5, 4)), np.full((1, 4), 1e-8)])),
                 n_positional=3, wrt=(0, 2), label="var below eps in one row"),
        LossCase("soft_margin_loss",
                 lambda r: (r.standard_normal((6, 4)), r.choice([-1.0, 1.0], (6, 4))),
                 optax=lambda x, y: L.sigmoid_binary_cross_entropy(y * x, jnp.ones_like(x))
                 .mean(),
                 optax_text="optax.losses.sigmoid_binary_cross_entropy(y * x, 1).mean()"),
        LossCase("multilabel_soft_margin_loss",
                 lambda r: (r.standard_normal((6, 4)), r.integers(0, 2, (6, 4)).astype(float)),
                 optax=lambda x, y: L.sigmoid_binary_cross_entropy(x, y).mean(-1).mean(),
                 optax_text="optax.losses.sigmoid_binary_cross_entropy(x, y).mean(-1).mean()"),
        LossCase("hinge_embedding_loss",
                 lambda r: (r.standard_normal((6, 4)), r.choice([-1.0, 1.0], (6, 4))),
                 optax=lambda x, y: L.hinge_loss(x, y).mean(),
                 optax_text="optax.losses.hinge_loss(x, y).mean()", expected="differ",
                 reason="a different loss: torch's is x for y=1 and max(0, margin - x) for "
                        "y=-1, optax's hinge_loss is max(0, 1 - y x)"),
        LossCase("margin_ranking_loss",
                 lambda r: (r.standard_normal(6), r.standard_normal(6),
                            r.choice([-1.0, 1.0], 6)),
                 n_positional=3, wrt=(0, 1), options=dict(margin=0.2)),
        LossCase("cosine_embedding_loss",
                 lambda r: (r.standard_normal((6, 4)), r.standard_normal((6, 4)), np.ones(6)),
                 n_positional=3, wrt=(0, 1),
                 optax=lambda a, b, y: L.cosine_distance(a, b).mean(),
                 optax_text="optax.losses.cosine_distance(x1, x2).mean()", label="y = 1"),
        LossCase("cosine_embedding_loss",
                 lambda r: (np.concatenate([np.zeros((1, 4)), r.standard_normal((5, 4))]),
                            r.standard_normal((6, 4)), np.ones(6)),
                 n_positional=3, wrt=(0, 1),
                 optax=lambda a, b, y: L.cosine_distance(a, b).mean(),
                 optax_text="optax.losses.cosine_distance(x1, x2).mean()", expected="differ",
                 label="y = 1, a zero vector",
                 reason="torch adds 1e-12 to each squared norm (a zero vector gives cos 0, loss "
                        "1); optax clips the norms with epsilon=0 (0/0 = nan); elsewhere they "
                        "agree to ~1e-12"),
        LossCase("triplet_margin_loss",
                 lambda r: (r.standard_normal((6, 4)), r.standard_normal((6, 4)),
                            r.standard_normal((6, 4))),
                 n_positional=3, wrt=(0, 1, 2),
                 optax=lambda a, p, n: L.triplet_margin_loss(a, p, n).mean(),
                 optax_text="optax.losses.triplet_margin_loss(a, p, n).mean()",
                 expected="differ",
                 reason="torch's distance is ||a - b + eps||_p, optax's (sum((a - b)^p) + eps)"
                        "^(1/p) without abs: p=2 differs by ~1e-6, p=1 by O(1), odd p gives nan"),
        LossCase("triplet_margin_loss",
                 lambda r: (r.standard_normal((6, 4)), r.standard_normal((6, 4)),
                            r.standard_normal((6, 4))),
                 n_positional=3, wrt=(0, 1, 2), options=dict(p=1.0, swap=True)),
        LossCase("triplet_margin_with_distance_loss",
                 lambda r: (r.standard_normal((6, 4)), r.standard_normal((6, 4)),
                            r.standard_normal((6, 4))),
                 n_positional=3, wrt=(0, 1, 2), options=dict(margin=1.5, swap=True),
                 label="default distance, margin=1.5, swap=True"),
        LossCase("multi_margin_loss", lambda r: (_rng_logits(r), _rng_labels(r)),
                 optax=lambda x, y: L.multiclass_hinge_loss(x, y).mean(),
                 optax_text="optax.losses.multiclass_hinge_loss(x, y).mean()",
                 expected="differ",
                 reason="torch sums the margin violations over the wrong classes and divides by "
                        "C; optax's multiclass_hinge_loss (Crammer-Singer) takes their maximum"),
        LossCase("multilabel_margin_loss",
                 lambda r: (_rng_logits(r), np.array([[3, 0, -1, 1, 1]] * 3
                                                     + [[1, 2, 4, -1, 0]] * 3))),
        LossCase("ctc_loss", _ctc_problem, n_positional=4, options=dict(reduction="none"),
                 optax=_optax_ctc, optax_text=_OPTAX_CTC),
        LossCase("ctc_loss", _ctc_problem, n_positional=4,
                 optax=lambda *a: _optax_ctc(*a).mean(), optax_text=_OPTAX_CTC + ".mean()",
                 expected="differ",
                 reason="torch's 'mean' divides each sequence's loss by its target length "
                        "before averaging; optax returns per-sequence losses (their plain mean "
                        "differs)"),
        LossCase("linear_cross_entropy",
                 lambda r: (r.standard_normal((6, 4)), r.standard_normal((9, 4)),
                            r.integers(0, 9, 6)),
                 n_positional=3, wrt=(0, 1),
                 optax=lambda x, w, y: L.softmax_cross_entropy_with_integer_labels(
                     x @ w.T, y).mean(),
                 optax_text="optax.losses.softmax_cross_entropy_with_integer_labels("
                            "x @ w.T, y).mean()"),
    ]


_OPTAX_CTC = ("optax.losses.ctc_loss(log_probs.swapaxes(0, 1), logit_paddings, targets, "
              "label_paddings)")


def _ctc_problem(r: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(T=10, N=4, C=5) log-probabilities, padded targets, input and target lengths."""
    x = r.standard_normal((10, 4, 5))
    log_probs = x - np.log(np.exp(x).sum(-1, keepdims=True))
    return (log_probs, r.integers(1, 5, (4, 3)), np.array([10, 9, 7, 10]),
            np.array([3, 2, 3, 1]))


def _optax_ctc(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any) -> Any:
    """optax's conventions: batch-first logits (log-probs are their own log_softmax), 0/1
    paddings instead of lengths, blank_id 0, per-sequence losses."""
    T, S = log_probs.shape[0], targets.shape[1]
    logit_pad = (jnp.arange(T)[None, :] >= input_lengths[:, None]).astype(log_probs.dtype)
    label_pad = (jnp.arange(S)[None, :] >= target_lengths[:, None]).astype(log_probs.dtype)
    return optax.losses.ctc_loss(jnp.swapaxes(log_probs, 0, 1), logit_pad, targets, label_pad,
                                 blank_id=0)


# --------------------------------------------------------------------------------------------
# running


@dataclass(frozen=True)
class Settings:
    steps: int = 100
    dtype: str = "float64"
    only: tuple[str, ...] = ()
    with_torch: bool = True


def _selected(name: str, only: Sequence[str]) -> bool:
    return not only or any(fnmatch.fnmatchcase(name, pat) for pat in only)


def catalogue_names() -> list[str]:
    """The algorithm names ``--only`` can select."""
    names = [a for a, _, _ in OPTIMIZER_CASES] + [c.name for c in _schedule_cases()]
    names += [j.algorithm for j in clip_jobs(False)] + [c.fn for c in loss_cases()]
    return sorted(set(names))


def _params(dtype: str) -> dict[str, Any]:
    r = np.random.default_rng(20240613)
    return {"w": jnp.asarray(0.05 * r.standard_normal((4, 3)), dtype=dtype),
            "b": jnp.asarray(0.01 * r.standard_normal(3), dtype=dtype)}


def _error_rows(job: OptJob, message: str) -> list[Row]:
    return [Row(job.kind, job.algorithm, job.options, ref.text, ref.expected, ERROR,
                reason=message) for ref in job.refs] or [
        Row(job.kind, job.algorithm, job.options, "-", "match", ERROR, reason=message)]


def _bisect(run_all: Callable[[list], list], items: list) -> list:
    """``run_all(items)`` (one compile); when it raises, run each half again, down to the
    failing items, whose results are the exceptions they raised (O(log n) extra compiles
    per failure instead of one per item)."""
    if not items:
        return []
    try:
        return list(run_all(items))
    except Exception as e:  # noqa: BLE001 - isolated below, reported as ERROR rows
        if len(items) == 1:
            return [e]
        half = len(items) // 2
        return _bisect(run_all, items[:half]) + _bisect(run_all, items[half:])


def _run_opt_group(jobs: list[OptJob], settings: Settings, params: Any, grads: Any,
                   leaves: tuple[str, ...], rtol: float) -> list[Row]:
    """Run one group of jobs: all their JAX sides in one compile (falling back to one compile
    per side when the batch fails, to isolate the failure), torch sides eagerly."""
    dtype = settings.dtype
    sides: list[tuple[int, int]] = []  # (job index, ref index or -1 for fnlearn)
    transforms: list[Any] = []
    broken: dict[int, str] = {}
    for j, job in enumerate(jobs):
        try:
            built = [job.build()]
            built += [None if ref.torch else ref.build() for ref in job.refs]
        except Exception as e:  # noqa: BLE001 - reported as an ERROR row
            broken[j] = f"{type(e).__name__}: {e}"
            continue
        for r, t in enumerate(built):
            if t is not None:
                sides.append((j, r - 1))
                transforms.append(t)
    trajs = _bisect(lambda ts: _compare.jax_trajectories(ts, params, grads), transforms)
    for (j, _), t in zip(sides, trajs, strict=True):
        if isinstance(t, Exception):
            broken.setdefault(j, _err(t))
    by_side = {side: None if isinstance(t, Exception) else t
               for side, t in zip(sides, trajs, strict=True)}
    p0 = [np.asarray(p, dtype=np.float64) for p in jax.tree.leaves(params)]
    p0_np = [np.asarray(p) for p in jax.tree.leaves(params)]
    g_np = [np.asarray(g) for g in jax.tree.leaves(grads)]
    rows: list[Row] = []
    for j, job in enumerate(jobs):
        if j in broken or by_side.get((j, -1)) is None:
            rows += _error_rows(job, broken.get(j, "fnlearn side failed"))
            continue
        mine = by_side[(j, -1)]
        for r, ref in enumerate(job.refs):
            try:
                if ref.torch:
                    theirs = _torch.run_optimizer(ref.build(), p0_np, g_np, dtype)
                else:
                    theirs = by_side[(j, r)]
                    if theirs is None:
                        raise RuntimeError(broken.get(j, "reference side failed"))
                rep = _compare.report_from(mine, theirs, p0, a="fnlearn", b=ref.text,
                                           leaves=leaves, dtype=dtype, rtol=rtol, atol=0.0)
            except Exception as e:  # noqa: BLE001
                rows.append(Row(job.kind, job.algorithm, job.options, ref.text, ref.expected,
                                ERROR, reason=f"{type(e).__name__}: {e}"))
                continue
            rows.append(Row(job.kind, job.algorithm, job.options, ref.text, ref.expected,
                            verdict(ref.expected, rep.agree, dtype), rep.max_abs, rep.max_rel,
                            rep.first_divergence, ref.reason))
    return rows


def _guard(fn: Callable[[], Any]) -> Any:
    """``fn()``, or the exception it raised (reported as an ERROR row)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        return e


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _loss_refs(case: LossCase, with_torch: bool) -> list[tuple[str, Callable[[], Any], str,
                                                                 str]]:
    """A loss case's references: (text, () -> function, expected, reason)."""
    refs: list[tuple[str, Callable[[], Any], str, str]] = []
    if case.optax is not None:
        refs.append((case.optax_text, lambda: case.optax, case.expected, case.reason))
    if with_torch:
        def make() -> Any:
            return _torch.TorchFunction(case.call(_torch.import_torch().nn.functional))

        refs.append((f"torch.nn.functional.{case.fn}", make, "match", ""))
    return refs


def planned_rows(settings: Settings) -> list[Row]:
    """The rows :func:`run` produces, in order, without running anything (verdict '')."""
    steps, dtype = settings.steps, _compare.check_dtype(settings.dtype)
    jobs = optimizer_jobs(settings.with_torch, dtype) + schedule_jobs(
        steps, dtype, settings.with_torch) + clip_jobs(settings.with_torch)
    groups: dict[str, list[OptJob]] = {}
    for job in jobs:
        if _selected(job.algorithm, settings.only):
            groups.setdefault(job.kind, []).append(job)
    rows = [Row(job.kind, job.algorithm, job.options, ref.text, ref.expected, "",
                reason=ref.reason) for group in groups.values() for job in group
            for ref in job.refs]
    for case in loss_cases():
        if _selected(case.fn, settings.only):
            rows += [Row("loss", case.fn, case.describe(), text, expected, "", reason=reason)
                     for text, _, expected, reason in _loss_refs(case, settings.with_torch)]
    return rows


def _run_losses(cases: Sequence[LossCase], dtype: str, with_torch: bool) -> list[Row]:
    """Every loss case: the JAX sides (fnlearn and optax) of all cases in ONE compile (one
    compile per side when the batch fails, to isolate the failure), torch eagerly."""
    import fnlearn.losses as fl

    prepared = []
    for case in cases:
        refs = [(text, make(), expected, reason)
                for text, make, expected, reason in _loss_refs(case, with_torch)]
        if not refs:
            continue
        seed = zlib.crc32(f"{case.fn}|{case.describe()}".encode())
        inputs = case.make(np.random.default_rng(seed))
        shape = _guard(lambda case=case, inputs=inputs: _compare.output_shape(
            case.call(fl), inputs, dtype))
        cot = shape if isinstance(shape, Exception) else _compare._cotangent(shape, seed)
        prepared.append((case, refs, inputs, cot))

    items, owners = [], []
    for i, (case, refs, inputs, cot) in enumerate(prepared):
        if isinstance(cot, Exception):
            continue
        jin = _compare._jax_inputs(inputs, dtype)
        items.append((case.call(fl), jin, case.wrt, cot))
        owners.append((i, -1))
        for r, (_, fn, _, _) in enumerate(refs):
            if not isinstance(fn, _torch.TorchFunction):
                items.append((fn, jin, case.wrt, cot))
                owners.append((i, r))
    results = _bisect(_compare.jax_values_and_grads, items)
    by_owner = dict(zip(owners, results, strict=True))

    rv, rg = _compare.TOLERANCES[dtype]
    rows = []
    for i, (case, refs, inputs, cot) in enumerate(prepared):
        mine = cot if isinstance(cot, Exception) else by_owner[(i, -1)]
        for r, (text, fn, expected, reason) in enumerate(refs):
            row = dict(kind="loss", algorithm=case.fn, options=case.describe(), reference=text,
                       expected=expected)
            if isinstance(mine, Exception):
                rows.append(Row(**row, verdict=ERROR, reason=_err(mine)))
                continue
            if isinstance(fn, _torch.TorchFunction):
                theirs = _guard(lambda fn=fn, inputs=inputs, case=case, cot=cot:
                                _torch.value_and_grads(fn, inputs, case.wrt, dtype, cot))
            else:
                theirs = by_owner[(i, r)]
            if isinstance(theirs, Exception):
                rows.append(Row(**row, verdict=ERROR, reason=_err(theirs)))
                continue
            rep = _compare.loss_report_from(*mine, *theirs, a="fnlearn", b=text, wrt=case.wrt,
                                            dtype=dtype, rtol=rv, grad_rtol=rg, atol=0.0)
            rows.append(Row(**row, verdict=verdict(expected, rep.agree, dtype), max_abs=rep.max_abs,
                            max_rel=rep.max_rel, reason=reason))
    return rows


def run(settings: Settings) -> list[Row]:
    """Run the catalogue (the part selected by ``settings.only``) and return its rows."""
    dtype = _compare.check_dtype(settings.dtype)
    rtol = _compare.OPT_RTOL[dtype]
    rows: list[Row] = []
    with _compare.precision(dtype):
        params = _params(dtype)
        grads, steps = _compare.resolve_grads(params, None, settings.steps, 0,
                                              _compare.GRAD_SCALE)
        leaves = _compare._leaf_names(params)
        jobs = optimizer_jobs(settings.with_torch, dtype)
        jobs += schedule_jobs(steps, dtype, settings.with_torch)
        jobs += clip_jobs(settings.with_torch)
        groups: dict[str, list[OptJob]] = {}  # one compile per kind
        for job in jobs:
            if _selected(job.algorithm, settings.only):
                groups.setdefault(job.kind, []).append(job)
        for group in groups.values():
            rows += _run_opt_group(group, settings, params, grads, leaves, rtol)
        cases = [c for c in loss_cases() if _selected(c.fn, settings.only)]
        rows += _run_losses(cases, dtype, settings.with_torch)
    return rows
