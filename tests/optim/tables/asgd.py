"""ASGD against torch: every option of torch.optim.ASGD."""

from __future__ import annotations

from tests._reference import OptCase
from tests.optim.tables._factors import ramp  # noqa: F401 (named by lr_schedule)

CASES = [
    # ASGD (t0=1e6: ax copies the params; t0=10: averaging from step 12)
    OptCase("asgd-default", "asgd", "ASGD"),
    OptCase("asgd-t0-10", "asgd", "ASGD", dict(lr=0.05, t0=10.0)),
    OptCase("asgd-lambd-alpha", "asgd", "ASGD", dict(lr=0.05, lambd=1e-2, alpha=0.5)),
    OptCase("asgd-wd", "asgd", "ASGD", dict(weight_decay=0.1)),
    OptCase("asgd-maximize", "asgd", "ASGD", dict(maximize=True)),
    OptCase("asgd-all-options", "asgd", "ASGD",
            dict(lr=0.05, lambd=1e-2, alpha=0.5, t0=5.0, weight_decay=0.05, maximize=True)),
    OptCase("asgd-t0-schedule", "asgd", "ASGD", dict(lr=0.05, lambd=1e-2, t0=3.0),
            lr_schedule="ramp"),
]
