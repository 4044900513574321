"""Every optimizer's numeric hyperparameters, with a random draw for each: the table behind the
hyperparameter tests (what torch accepts: numbers, 0-d and one-element arrays, schedules; what
it refuses: strings, None, arrays of several elements)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _log(lo: float, hi: float) -> Callable[[np.random.Generator], float]:
    return lambda rng: float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _uni(lo: float, hi: float) -> Callable[[np.random.Generator], float]:
    return lambda rng: float(rng.uniform(lo, hi))


@dataclass(frozen=True)
class HyperCase:
    """``name``: the fnlearn factory; ``torch``: torch.optim's class; ``scalars``: each
    numeric keyword and its draw; ``pairs``: each two-element keyword and its two draws;
    ``one_element``: keywords torch also accepts as a one-element tensor in ``step()``."""

    name: str
    torch: str
    scalars: dict[str, Callable[[np.random.Generator], float]]
    pairs: dict[str, tuple[Callable, Callable]]
    one_element: tuple[str, ...] = ("lr",)


_BETAS = {"betas": (_uni(0.5, 0.95), _uni(0.9, 0.999))}
CASES = [
    HyperCase("sgd", "SGD", {"lr": _log(1e-3, 1e-1), "momentum": _uni(0.1, 0.95),
                             "dampening": _uni(0.0, 0.5), "weight_decay": _log(1e-3, 1e-1)},
              {}, ("lr", "momentum")),
    HyperCase("rmsprop", "RMSprop", {"lr": _log(1e-3, 1e-1), "alpha": _uni(0.8, 0.99),
                                     "eps": _log(1e-8, 1e-3), "weight_decay": _log(1e-3, 1e-1),
                                     "momentum": _uni(0.1, 0.9)}, {},
              ("lr", "eps", "momentum")),
    HyperCase("adagrad", "Adagrad", {"lr": _log(1e-3, 1e-1), "lr_decay": _log(1e-3, 1e-1),
                                     "weight_decay": _log(1e-3, 1e-1),
                                     "initial_accumulator_value": _uni(0.0, 0.5),
                                     "eps": _log(1e-10, 1e-3)}, {}, ("lr", "eps")),
    HyperCase("adam", "Adam", {"lr": _log(1e-3, 1e-1), "eps": _log(1e-8, 1e-3),
                               "weight_decay": _log(1e-3, 1e-1)}, _BETAS, ("lr", "eps")),
    HyperCase("adamw", "AdamW", {"lr": _log(1e-3, 1e-1), "eps": _log(1e-8, 1e-3),
                                 "weight_decay": _log(1e-3, 1e-1)}, _BETAS,
              ("lr", "eps", "weight_decay")),
    HyperCase("adamax", "Adamax", {"lr": _log(1e-3, 1e-1), "eps": _log(1e-8, 1e-3),
                                   "weight_decay": _log(1e-3, 1e-1)}, _BETAS, ("lr", "eps")),
    HyperCase("nadam", "NAdam", {"lr": _log(1e-3, 1e-1), "eps": _log(1e-8, 1e-3),
                                 "weight_decay": _log(1e-3, 1e-1),
                                 "momentum_decay": _log(1e-3, 1e-2)}, _BETAS, ("lr", "eps")),
    HyperCase("radam", "RAdam", {"lr": _log(1e-3, 1e-1), "eps": _log(1e-8, 1e-3),
                                 "weight_decay": _log(1e-3, 1e-1)}, _BETAS, ("lr", "eps")),
    HyperCase("adadelta", "Adadelta", {"lr": _uni(0.5, 1.0), "rho": _uni(0.8, 0.95),
                                       "eps": _log(1e-6, 1e-3),
                                       "weight_decay": _log(1e-3, 1e-1)}, {}, ("lr", "eps")),
    HyperCase("asgd", "ASGD", {"lr": _log(1e-3, 1e-1), "lambd": _log(1e-5, 1e-3),
                               "alpha": _uni(0.5, 0.9), "t0": _uni(1.0, 4.0),
                               "weight_decay": _log(1e-3, 1e-1)}, {}),
    HyperCase("rprop", "Rprop", {"lr": _log(1e-3, 1e-1)},
              {"etas": (_uni(0.3, 0.7), _uni(1.1, 1.5)),
               "step_sizes": (_log(1e-7, 1e-5), _uni(10.0, 50.0))}),
    HyperCase("adafactor", "Adafactor", {"lr": _log(1e-3, 1e-1), "beta2_decay": _uni(-0.9, -0.5),
                                         "d": _uni(1.0, 2.0), "weight_decay": _log(1e-3, 1e-1)},
              {}, ("lr", "beta2_decay", "d", "weight_decay")),
    HyperCase("muon", "Muon", {"lr": _log(1e-3, 1e-1), "weight_decay": _log(1e-3, 1e-1),
                               "momentum": _uni(0.5, 0.95), "eps": _log(1e-8, 1e-6)}, {},
              ("lr", "weight_decay", "momentum", "eps")),
]
IDS = [c.name for c in CASES]


def draw(case: HyperCase, rng: np.random.Generator) -> dict[str, object]:
    """Random values (Python floats) for every numeric hyperparameter of ``case``."""
    values: dict[str, object] = {k: f(rng) for k, f in case.scalars.items()}
    values.update({k: (a(rng), b(rng)) for k, (a, b) in case.pairs.items()})
    return values
