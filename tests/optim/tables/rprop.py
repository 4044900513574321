"""Rprop against torch: every option of torch.optim.Rprop."""

from __future__ import annotations

from tests._reference import OptCase
from tests.optim.tables._factors import ramp  # noqa: F401 (named by lr_schedule)

CASES = [
    # Rprop (lr only sets the initial step size; a schedule changes nothing after step 1)
    OptCase("rprop-default", "rprop", "Rprop"),
    OptCase("rprop-etas", "rprop", "Rprop", dict(lr=0.05, etas=(0.3, 1.5))),
    OptCase("rprop-step_sizes-clamped", "rprop", "Rprop",
            dict(lr=0.01, step_sizes=(5e-3, 2e-2))),
    OptCase("rprop-maximize", "rprop", "Rprop", dict(maximize=True)),
    OptCase("rprop-all-options", "rprop", "Rprop",
            dict(lr=0.05, etas=(0.4, 1.3), step_sizes=(1e-2, 0.1), maximize=True)),
    OptCase("rprop-schedule", "rprop", "Rprop", dict(lr=0.05), lr_schedule="ramp"),
]
