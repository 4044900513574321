"""Adamax against torch: every option of torch.optim.Adamax."""

from __future__ import annotations

from tests._reference import OptCase
from tests.optim.tables._factors import cyclic  # noqa: F401 (named by lr_schedule)

CASES = [
    OptCase("adamax-default", "adamax", "Adamax"),
    OptCase("adamax-betas-eps", "adamax", "Adamax", dict(betas=(0.5, 0.9), eps=1e-3)),
    OptCase("adamax-wd", "adamax", "Adamax", dict(weight_decay=0.1)),
    OptCase("adamax-maximize", "adamax", "Adamax", dict(maximize=True)),
    OptCase("adamax-all-options", "adamax", "Adamax",
            dict(lr=0.01, betas=(0.8, 0.99), eps=1e-4, weight_decay=0.05, maximize=True)),
    OptCase("adamax-wd-schedule", "adamax", "Adamax", dict(lr=0.01, weight_decay=0.1),
            lr_schedule="cyclic"),
]
