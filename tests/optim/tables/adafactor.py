"""Adafactor against torch: every option of torch.optim.Adafactor, on the reference shapes (a
matrix, whose second moment is factored into row and column means, and a vector)."""

from __future__ import annotations

from tests._reference import OptCase
from tests.optim.tables._factors import cyclic  # noqa: F401 (named by lr_schedule)

CASES = [
    OptCase("adafactor-default", "adafactor", "Adafactor"),
    # rho_t = min(lr, 1/sqrt(t)): lr caps it for t < 4, 1/sqrt(t) after
    OptCase("adafactor-lr-0.5", "adafactor", "Adafactor", dict(lr=0.5)),
    OptCase("adafactor-beta2_decay", "adafactor", "Adafactor", dict(beta2_decay=-0.5)),
    OptCase("adafactor-eps1", "adafactor", "Adafactor", dict(eps=(1e-3, 1e-3))),
    # eps2 above every parameter's RMS: alpha_t = eps2 * rho_t
    OptCase("adafactor-eps2-large", "adafactor", "Adafactor", dict(eps=(None, 3.0))),
    OptCase("adafactor-d", "adafactor", "Adafactor", dict(d=4.0)),
    OptCase("adafactor-wd", "adafactor", "Adafactor", dict(weight_decay=0.1)),
    OptCase("adafactor-maximize", "adafactor", "Adafactor", dict(maximize=True)),
    OptCase("adafactor-all-options", "adafactor", "Adafactor",
            dict(lr=0.2, beta2_decay=-0.6, eps=(1e-4, 1e-2), d=2.0, weight_decay=0.05,
                 maximize=True)),
    OptCase("adafactor-wd-schedule", "adafactor", "Adafactor", dict(lr=0.05, weight_decay=0.1),
            lr_schedule="cyclic"),
]
