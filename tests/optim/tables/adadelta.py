"""Adadelta against torch: every option of torch.optim.Adadelta."""

from __future__ import annotations

from tests._reference import OptCase
from tests.optim.tables._factors import decay  # noqa: F401 (named by lr_schedule)

CASES = [
    OptCase("adadelta-default", "adadelta", "Adadelta"),
    OptCase("adadelta-rho-eps", "adadelta", "Adadelta", dict(lr=0.5, rho=0.5, eps=1e-3)),
    OptCase("adadelta-rho-0", "adadelta", "Adadelta", dict(rho=0.0)),
    OptCase("adadelta-rho-1", "adadelta", "Adadelta", dict(lr=0.01, rho=1.0)),
    OptCase("adadelta-wd", "adadelta", "Adadelta", dict(weight_decay=0.1)),
    OptCase("adadelta-maximize", "adadelta", "Adadelta", dict(maximize=True)),
    OptCase("adadelta-all-options", "adadelta", "Adadelta",
            dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.05, maximize=True)),
    OptCase("adadelta-wd-schedule", "adadelta", "Adadelta", dict(weight_decay=0.1),
            lr_schedule="decay"),
]
