"""``to_optax``: the optax transformation computing what an fnlearn (= torch) optimizer does.

Built from the measured equivalences in torch-semantics sections 2.1-2.8 and 4 (torch 2.13,
optax 0.2.8): an ``exact`` result matches fnlearn/torch to float64 rounding over 100 steps; an
inexact one is the closest optax built-in, with the reason it differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np
import optax

from .._validate import is_number

#: torch 2.13's defaults for each algorithm (fnlearn's are the same), by fnlearn name.
TORCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                maximize=False),
    "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                    centered=False, maximize=False),
    "adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                    eps=1e-10, maximize=False),
    "adam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False, decoupled_weight_decay=False),
    "adamw": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                  maximize=False),
    "adamax": dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False),
    "nadam": dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                  decoupled_weight_decay=False, maximize=False),
    "radam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                  decoupled_weight_decay=False, maximize=False),
    "adadelta": dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False),
    "asgd": dict(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, maximize=False),
    "rprop": dict(lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0), maximize=False),
    "adafactor": dict(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0,
                      maximize=False),
    "clip_grad_norm": dict(max_norm=1.0, norm_type=2.0, error_if_nonfinite=False),
    "clip_grad_value": dict(clip_value=1.0),
}

#: The torch.optim class of each algorithm (``None`` for gradient clipping).
TORCH_NAMES: dict[str, str | None] = {
    "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adam": "Adam", "adamw": "AdamW",
    "adamax": "Adamax", "nadam": "NAdam", "radam": "RAdam", "adadelta": "Adadelta",
    "asgd": "ASGD", "rprop": "Rprop", "adafactor": "Adafactor", "clip_grad_norm": None,
    "clip_grad_value": None,
}


#: fnlearn optimizers that no optax transformation computes, and why.
NO_OPTAX_EQUIVALENT: dict[str, str] = {
    "sparse_adam": "torch's SparseAdam updates only the entries present in a sparse gradient "
                   "(moments and params); optax.adam (also under optax.masked, whose mask is "
                   "fixed) decays every entry's moments at every step",
}


@dataclass(frozen=True)
class OptaxEquivalent:
    """What :func:`to_optax` returns.

    Attributes:
      transform: the optax ``GradientTransformation`` (exact, or the closest built-in).
      exact: True when ``transform`` computes the same update as fnlearn/torch (float64,
        100 steps, relative deviation below 1e-10).
      reason: why it differs (empty when exact).
      expression: the optax code building ``transform``, ready to paste.
      note: a caveat on an exact equivalence (an edge case where it does not hold), or "".
    """

    transform: optax.GradientTransformation = field(repr=False)
    exact: bool
    reason: str
    expression: str
    note: str = ""

    def __repr__(self) -> str:
        # the transform's own repr is two function addresses; its source text says what it is
        return (f"OptaxEquivalent(transform=<{self.expression}>, exact={self.exact}, "
                f"reason={self.reason!r}, note={self.note!r})")


# --------------------------------------------------------------------------------------------
# building a transform and its source text together


@dataclass(frozen=True)
class _Part:
    transform: optax.GradientTransformation
    text: str
    links: tuple[_Part, ...] = ()  # the links of an optax.chain, flattened


def _arg(value: Any) -> str:
    if callable(value):
        return getattr(value, "_crosscheck_text", "lr_schedule")
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return repr(value)


def _call(name: str, *args: Any, **kwargs: Any) -> _Part:
    """``optax.<name>(*args, **kwargs)`` and its text."""
    fn = optax
    for attr in name.split("."):
        fn = getattr(fn, attr)
    text = ", ".join([_arg(a) for a in args] + [f"{k}={_arg(v)}" for k, v in kwargs.items()])
    return _Part(fn(*args, **kwargs), f"optax.{name}({text})")


def _chain(*parts: _Part | None) -> _Part:
    """``optax.chain`` of the parts (nested chains flattened; a single part stays itself)."""
    links = tuple(link for p in parts if p is not None for link in (p.links or (p,)))
    if len(links) == 1:
        return links[0]
    text = ", ".join(p.text for p in links)
    return _Part(optax.chain(*(p.transform for p in links)), f"optax.chain({text})", links)


def _prefix(opts: dict[str, Any], l2: bool = True) -> list[_Part | None]:
    """torch's order: negate the gradient (maximize), then add the L2 term weight_decay * p."""
    out: list[_Part | None] = []
    if opts.get("maximize"):
        out.append(_call("scale", -1.0))
    if l2 and opts.get("weight_decay", 0.0) != 0:
        out.append(_call("add_decayed_weights", opts["weight_decay"]))
    return out


def _schedule(fn: Callable[[Any], Any], text: str) -> Callable[[Any], Any]:
    fn._crosscheck_text = text  # type: ignore[attr-defined]
    return fn


def _float(count: Any) -> Any:
    """The step count as the default float dtype (explicit: strict promotion refuses
    ``int32 * float``)."""
    return jnp.asarray(count).astype(float)


def _lr_at(lr: Any, count: Any) -> Any:
    return lr(count) if callable(lr) else lr


# --------------------------------------------------------------------------------------------
# one function per algorithm: (part, exact, reason, note)

_Result = tuple[_Part, bool, str, str]


def _sgd(o: dict[str, Any]) -> _Result:
    mu, damp = o["momentum"], o["dampening"]
    if o["nesterov"] and (mu <= 0 or damp != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    if mu == 0:
        return _chain(*_prefix(o), _call("sgd", o["lr"])), True, "", ""
    if damp == 0:
        core = _call("sgd", o["lr"], momentum=mu, nesterov=o["nesterov"])
        return _chain(*_prefix(o), core), True, "", ""
    part = _chain(*_prefix(o), _call("scale", 1.0 - damp), _call("trace", decay=mu),
                  _call("scale_by_learning_rate", o["lr"]))
    reason = (
        "dampening != 0: torch's first momentum buffer is the raw gradient g_1 (dampening is "
        "skipped on the first step), later ones add (1 - dampening) * g_t; optax.trace starts "
        "from zero and has no dampening, so no built-in keeps the undampened g_1"
    )
    return part, False, reason, ""


def _rmsprop(o: dict[str, Any]) -> _Result:
    alpha, eps, mu, centered, lr = o["alpha"], o["eps"], o["momentum"], o["centered"], o["lr"]
    if mu > 0 and callable(lr):
        scale_by = "scale_by_stddev" if centered else "scale_by_rms"
        core = _chain(_call(scale_by, decay=alpha, eps=eps, eps_in_sqrt=False),
                      _call("trace", decay=mu), _call("scale_by_learning_rate", lr))
        note = ("optax.rmsprop(schedule, momentum=...) multiplies by lr before the momentum "
                "trace, torch after it; this re-ordered chain matches torch")
        return _chain(*_prefix(o), core), True, "", note
    kwargs: dict[str, Any] = dict(decay=alpha, eps=eps, eps_in_sqrt=False)
    if centered:
        kwargs["centered"] = True
    if mu > 0:
        kwargs["momentum"] = mu
    return _chain(*_prefix(o), _call("rmsprop", lr, **kwargs)), True, "", ""


def _adagrad(o: dict[str, Any]) -> _Result:
    lr, decay, eps = o["lr"], o["lr_decay"], o["eps"]
    if decay != 0:
        base = lr
        lr = _schedule(lambda k: _lr_at(base, k) / (1 + _float(k) * decay),
                       f"lambda k: {_arg(base)}{'(k)' if callable(base) else ''} "
                       f"/ (1 + k * {_arg(decay)})")
    core = _call("adagrad", lr, initial_accumulator_value=o["initial_accumulator_value"],
                 eps=eps)
    part = _chain(*_prefix(o), core)
    if eps == 0:
        note = ("with eps=0 an exactly-zero gradient on a zero accumulator gives 0/0 = nan in "
                "torch and fnlearn, 0 in optax")
        return part, True, "", note
    reason = (
        "optax.adagrad puts eps inside the square root, g * rsqrt(sum + eps), where torch "
        "computes g / (sqrt(sum) + eps): the relative difference is about eps / sqrt(sum), "
        "large for small gradients or a large eps; only eps=0 matches"
    )
    return part, False, reason, ""


_AMSGRAD_REASON = (
    "amsgrad: torch keeps the maximum of the raw second moment and divides it by the current "
    "bias correction, max_s(v_s) / (1 - b2^t); optax.scale_by_amsgrad keeps the maximum of "
    "the bias-corrected values, max_s(v_s / (1 - b2^s)) (bias_correction_nu=False drops the "
    "correction altogether); optax#1389"
)


def _adam_like(o: dict[str, Any], decoupled: bool) -> _Result:
    lr, (b1, b2), eps, wd = o["lr"], o["betas"], o["eps"], o["weight_decay"]
    if not decoupled or wd == 0:
        name = "amsgrad" if o["amsgrad"] else "adam"
        part = _chain(*_prefix(o), _call(name, lr, b1=b1, b2=b2, eps=eps))
    elif not o["amsgrad"]:
        part = _chain(*_prefix(o, l2=False), _call("adamw", lr, b1=b1, b2=b2, eps=eps,
                                                   weight_decay=wd))
    else:
        part = _chain(*_prefix(o, l2=False), _call("scale_by_amsgrad", b1=b1, b2=b2, eps=eps),
                      _call("add_decayed_weights", wd), _call("scale_by_learning_rate", lr))
    if o["amsgrad"]:
        return part, False, _AMSGRAD_REASON, ""
    return part, True, "", ""


def _adam(o: dict[str, Any]) -> _Result:
    return _adam_like(o, o["decoupled_weight_decay"])


def _adamw(o: dict[str, Any]) -> _Result:
    note = "optax.adamw's default weight_decay is 1e-4, torch's AdamW 1e-2: pass it explicitly"
    part, exact, reason, _ = _adam_like(o, True)
    return part, exact, reason, note if exact else ""


def _adamax(o: dict[str, Any]) -> _Result:
    b1, b2 = o["betas"]
    core = _call("adamax", o["lr"], b1=b1, b2=b2, eps=o["eps"])
    return _chain(*_prefix(o), core), True, "", ""


def _nadam(o: dict[str, Any]) -> _Result:
    lr, (b1, b2), eps, wd = o["lr"], o["betas"], o["eps"], o["weight_decay"]
    if o["decoupled_weight_decay"] and wd != 0:
        part = _chain(*_prefix(o, l2=False),
                      _call("scale_by_adam", b1=b1, b2=b2, eps=eps, nesterov=True),
                      _call("add_decayed_weights", wd), _call("scale_by_learning_rate", lr))
    else:
        part = _chain(*_prefix(o), _call("nadam", lr, b1=b1, b2=b2, eps=eps))
    reason = (
        "torch's NAdam schedules the momentum, mu_t = b1 * (1 - 0.5 * 0.96^(t * "
        "momentum_decay)), and bias-corrects with the running product of the mu_t; optax.nadam "
        "is Adam with a constant Nesterov b1 (different also for momentum_decay=0, where "
        "mu_t = b1 / 2)"
    )
    return part, False, reason, ""


def _radam(o: dict[str, Any]) -> _Result:
    lr, (b1, b2), eps, wd = o["lr"], o["betas"], o["eps"], o["weight_decay"]
    if o["decoupled_weight_decay"] and wd != 0:
        part = _chain(*_prefix(o, l2=False), _call("scale_by_radam", b1=b1, b2=b2, eps=eps),
                      _call("add_decayed_weights", wd), _call("scale_by_learning_rate", lr))
    else:
        part = _chain(*_prefix(o), _call("radam", lr, b1=b1, b2=b2, eps=eps))
    if eps == 0:
        note = ("in float32 (x64 off) optax computes rho_t = rho_inf - 2 t b2^t / (1 - b2^t) "
                "from float32 scalars, which cancel near the rectification threshold (~1e-4 "
                "of the step); exact in float64")
        return part, True, "", note
    reason = (
        "eps placement: torch's rectified step is m_hat * r_t * sqrt(1 - b2^t) / (sqrt(v) + eps), "
        "optax's m_hat * r_t / (sqrt(v_hat) + eps), i.e. eps scaled by sqrt(1 - b2^t) (relative "
        "difference ~1e-9 at eps=1e-8; eps=0 matches)"
    )
    return part, False, reason, ""


def _adadelta(o: dict[str, Any]) -> _Result:
    core = _call("adadelta", o["lr"], rho=o["rho"], eps=o["eps"])
    return _chain(*_prefix(o), core), True, "", ""


def _asgd(o: dict[str, Any]) -> _Result:
    lr, lambd, alpha = o["lr"], o["lambd"], o["alpha"]
    if callable(lr):
        raise ValueError("to_optax('asgd'): lr must be a number (torch's ASGD derives its own "
                         "step-size schedule from lr)")

    def eta(k: Any) -> Any:
        return lr / (1 + lambd * lr * _float(k)) ** alpha

    text = f"lambda k: {_arg(lr)} / (1 + {_arg(lambd)} * {_arg(lr)} * k) ** {_arg(alpha)}"
    o = dict(o, weight_decay=o["weight_decay"] + lambd)
    part = _chain(*_prefix(o), _call("sgd", _schedule(eta, text)))
    note = ("torch's ASGD update p(1 - lambd * eta) - eta * g is SGD with weight decay lambd and "
            "step size eta_t; the running average `ax` (the ASGD iterate) is not kept: use "
            "optax.ema on the params for it")
    return part, True, "", note


def _rprop(o: dict[str, Any]) -> _Result:
    (eta_minus, eta_plus), (lo, hi) = o["etas"], o["step_sizes"]
    core = _call("rprop", o["lr"], eta_minus=eta_minus, eta_plus=eta_plus, min_step_size=lo,
                 max_step_size=hi)
    reason = (
        "optax.rprop emits the step computed at the previous call (its first update is 0), "
        "torch applies the current one: the trajectories are shifted by one step"
    )
    return _chain(*_prefix(o, l2=False), core), False, reason, ""


def _adafactor(o: dict[str, Any]) -> _Result:
    lr, wd, (eps1, eps2) = o["lr"], o["weight_decay"], o["eps"]
    base = lr
    rho = _schedule(lambda k: jnp.minimum(_lr_at(base, k), 1 / jnp.sqrt(_float(k) + 1)),
                    f"lambda k: jnp.minimum({_arg(base)}{'(k)' if callable(base) else ''}, "
                    "1 / jnp.sqrt(k + 1.0))")
    core = _call("adafactor", rho, min_dim_size_to_factor=1, decay_rate=-o["beta2_decay"],
                 clipping_threshold=o["d"])
    reasons = [
        "optax computes the second-moment weight 1 - t^beta2_decay from a float32 step count "
        "(relative deviation ~1e-8 in float64, level in float32); it factors over the two "
        "largest axes of a parameter of rank >= 3, torch over the last two"]
    if eps1 is not None:
        reasons.append(f"torch clamps the estimate at eps1={eps1!r}, optax has no such floor")
    if eps2 != 1e-3:
        reasons.append(f"optax's parameter-scale floor is 1e-3, torch's eps2={eps2!r}")
    decay = None
    if wd != 0:
        if callable(lr):
            reasons.append("torch decays the params by lr_t * weight_decay with a scheduled "
                           "lr; optax.add_decayed_weights takes a constant only")
        else:  # theta (1 - lr wd): an update -lr wd theta beside adafactor's step
            decay = _call("add_decayed_weights", -lr * wd)
    return _chain(*_prefix(o, l2=False), core, decay), False, "; ".join(reasons), ""


def _clip_grad_norm(o: dict[str, Any]) -> _Result:
    norm_type = float(o["norm_type"])
    part = _call("clip_by_global_norm", o["max_norm"])
    reason = (
        "torch multiplies every gradient by min(max_norm / (total_norm + 1e-6), 1); "
        "optax.clip_by_global_norm by max_norm / total_norm only when total_norm >= max_norm "
        "(relative difference ~1e-6 / max_norm while clipping is active; at max_norm=0 with "
        "zero gradients optax gives nan, torch 0)"
    )
    if norm_type != 2.0:
        reason += f"; and optax has no global-norm clipping for norm_type={norm_type:g} (L2 only)"
    if o["error_if_nonfinite"]:
        reason += "; and optax never raises on a non-finite norm"
    return part, False, reason, ""


def _clip_grad_value(o: dict[str, Any]) -> _Result:
    return _call("clip", o["clip_value"]), True, "", ""


_BUILDERS: dict[str, Callable[[dict[str, Any]], _Result]] = {
    "sgd": _sgd, "rmsprop": _rmsprop, "adagrad": _adagrad, "adam": _adam, "adamw": _adamw,
    "adamax": _adamax, "nadam": _nadam, "radam": _radam, "adadelta": _adadelta,
    "asgd": _asgd, "rprop": _rprop, "adafactor": _adafactor, "clip_grad_norm": _clip_grad_norm,
    "clip_grad_value": _clip_grad_value,
}


def _optimizer_name(optimizer: Any) -> str:
    """The fnlearn name ``optimizer`` stands for, or an error that says what to write."""
    if isinstance(optimizer, (optax.GradientTransformation, tuple)) and not callable(optimizer):
        raise TypeError(
            "to_optax takes an optimizer's name or factory and its options, not a built "
            "optimizer (fnlearn optimizers are plain (init, update) pairs that do not remember "
            "their arguments): write to_optax('adam', lr=1e-3) or "
            "to_optax(fnlearn.optim.adam, lr=1e-3) for adam(lr=1e-3)")
    name = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", None)
    if isinstance(name, str) and name.endswith("_transform"):  # fnlearn.optim.clip_*_transform
        name = name[: -len("_transform")]
    if name in _BUILDERS:
        return name
    if name in NO_OPTAX_EQUIVALENT:
        raise ValueError(f"to_optax: optax has no equivalent of fnlearn.optim.{name}: "
                         f"{NO_OPTAX_EQUIVALENT[name]}")
    by_torch_name = {t.lower(): n for n, t in TORCH_NAMES.items() if t}
    by_torch_name.update({n.replace("_", ""): n for n in NO_OPTAX_EQUIVALENT})
    guess = by_torch_name.get(str(name).lower().rstrip("_"))
    hint = (f"; fnlearn names are torch's in snake_case: write to_optax({guess!r}, ...)"
            if guess else "")
    raise ValueError(f"to_optax: unknown optimizer {optimizer!r}{hint}; known: "
                     f"{', '.join(sorted(_BUILDERS))}")


def to_optax(optimizer: str | Callable[..., Any], /, **options: Any) -> OptaxEquivalent:
    """The optax transformation computing the same update as an fnlearn optimizer.

    ``optimizer`` names an fnlearn optimizer (``"adam"``) or is the factory itself
    (``fnlearn.optim.adam``); ``options`` are its keyword arguments, with torch's names and
    defaults (``lr`` may be a schedule ``count -> lr``). fnlearn optimizers are plain
    ``GradientTransformation`` tuples that do not remember their arguments, so the
    configuration is passed here the way it is passed to the factory::

        to_optax("adam", lr=1e-3, weight_decay=0.1)
        # OptaxEquivalent(exact=True, expression='optax.chain(optax.add_decayed_weights(0.1),
        #                 optax.adam(0.001, b1=0.9, b2=0.999, eps=1e-08))', ...)

    Returns an :class:`OptaxEquivalent`: when ``exact`` it matches fnlearn (and torch) to
    float64 rounding; otherwise it is the closest optax built-in and ``reason`` says what
    differs (e.g. ``amsgrad=True``, Adagrad's eps, SGD's dampening, NAdam, Rprop). Gradient
    clipping is covered too: ``to_optax("clip_grad_norm", max_norm=1.0)``. ``fused`` is
    accepted and ignored (the fused kernels compute the same update).

    Example::

        >>> from fnlearn.crosscheck import to_optax
        >>> eq = to_optax("rmsprop", lr=1e-2, momentum=0.9)
        >>> eq.exact, eq.expression
        (True, 'optax.rmsprop(0.01, decay=0.99, eps=1e-08, eps_in_sqrt=False, momentum=0.9)')
    """
    name = _optimizer_name(optimizer)
    defaults = TORCH_DEFAULTS[name]
    if "fused" in options and name in TORCH_NAMES and TORCH_NAMES[name]:
        # fused changes where the update runs, not what it computes
        fused = options.pop("fused")
        if fused is not None and not isinstance(fused, bool):
            raise TypeError(f"to_optax({name!r}): fused must be None, True or False")
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"to_optax({name!r}): unexpected option(s) {', '.join(unknown)}; "
                        f"options are {', '.join(defaults)}")
    for key, value in options.items():
        if key != "lr" and callable(value):
            raise TypeError(f"to_optax({name!r}): {key} must be a number here, got a callable "
                            "(only lr may be a schedule)")
        if is_number(value) and math.isnan(value):
            raise ValueError(f"to_optax({name!r}): {key} is nan")
    part, exact, reason, note = _BUILDERS[name]({**defaults, **options})
    return OptaxEquivalent(transform=part.transform, exact=exact, reason=reason,
                           expression=part.text, note=note)
