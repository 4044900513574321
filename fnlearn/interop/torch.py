"""Carry a running PyTorch training job into fnlearn and back (torch is imported lazily)."""

from __future__ import annotations

from ._optim import (
    ALGORITHMS,
    OptimizerSpec,
    guess_class,
    optimizer_from_torch,
    optimizer_to_torch,
)
from ._params import TorchWeights, params_from_torch, params_to_torch
from ._schedules import TorchSchedule, guess_scheduler, schedule_from_torch, schedule_to_torch

__all__ = [
    "ALGORITHMS",
    "OptimizerSpec",
    "TorchSchedule",
    "TorchWeights",
    "guess_class",
    "guess_scheduler",
    "optimizer_from_torch",
    "optimizer_to_torch",
    "params_from_torch",
    "params_to_torch",
    "schedule_from_torch",
    "schedule_to_torch",
]
