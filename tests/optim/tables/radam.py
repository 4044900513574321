"""RAdam against torch: every option of torch.optim.RAdam."""

from __future__ import annotations

from tests._reference import OptCase
from tests.optim.tables._factors import cyclic  # noqa: F401 (named by lr_schedule)

CASES = [
    # RAdam (rho_t > 5 from t = 6 with beta2 = 0.999 or 0.99; beta2 = 0.5 never rectifies,
    # beta2 = 0.7 only late: rho_inf = 5.67)
    OptCase("radam-default", "radam", "RAdam"),
    OptCase("radam-betas", "radam", "RAdam", dict(lr=0.01, betas=(0.8, 0.99))),
    OptCase("radam-beta2-0.5-never-rectified", "radam", "RAdam", dict(betas=(0.9, 0.5))),
    OptCase("radam-beta2-0.7-late-rectification", "radam", "RAdam", dict(betas=(0.9, 0.7))),
    OptCase("radam-eps", "radam", "RAdam", dict(eps=1e-3)),
    OptCase("radam-wd", "radam", "RAdam", dict(lr=0.01, weight_decay=0.1)),
    OptCase("radam-decoupled-wd", "radam", "RAdam",
            dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    OptCase("radam-maximize", "radam", "RAdam", dict(maximize=True)),
    OptCase("radam-all-options", "radam", "RAdam",
            dict(lr=0.01, betas=(0.8, 0.99), eps=1e-4, weight_decay=0.05,
                 decoupled_weight_decay=True, maximize=True)),
    OptCase("radam-decoupled-wd-schedule", "radam", "RAdam",
            dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True), lr_schedule="cyclic"),
]
