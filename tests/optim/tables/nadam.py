"""NAdam against torch: every option of torch.optim.NAdam."""

from __future__ import annotations

from tests._reference import OptCase
from tests.optim.tables._factors import cyclic, decay  # noqa: F401 (named by lr_schedule)

CASES = [
    OptCase("nadam-default", "nadam", "NAdam"),
    OptCase("nadam-momentum_decay-0", "nadam", "NAdam", dict(momentum_decay=0.0)),
    OptCase("nadam-momentum_decay-0.05", "nadam", "NAdam", dict(momentum_decay=0.05)),
    OptCase("nadam-betas-eps", "nadam", "NAdam", dict(betas=(0.5, 0.9), eps=1e-3)),
    OptCase("nadam-wd", "nadam", "NAdam", dict(weight_decay=0.1)),
    OptCase("nadam-decoupled-wd", "nadam", "NAdam",
            dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    OptCase("nadam-maximize", "nadam", "NAdam", dict(maximize=True)),
    OptCase("nadam-all-options", "nadam", "NAdam",
            dict(lr=0.01, betas=(0.8, 0.99), eps=1e-4, weight_decay=0.05, momentum_decay=0.01,
                 decoupled_weight_decay=True, maximize=True)),
    OptCase("nadam-schedule", "nadam", "NAdam", dict(lr=0.01), lr_schedule="decay"),
    OptCase("nadam-decoupled-wd-schedule", "nadam", "NAdam",
            dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True), lr_schedule="cyclic"),
]
