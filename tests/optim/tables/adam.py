"""Adam and AdamW against torch: every option of torch.optim.Adam and torch.optim.AdamW."""

from __future__ import annotations

from tests._reference import OptCase
from tests.optim.tables._factors import cyclic, decay  # noqa: F401 (named by lr_schedule)

CASES = [
    OptCase("adam-default", "adam", "Adam"),
    OptCase("adam-betas-eps", "adam", "Adam", dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3)),
    OptCase("adam-wd", "adam", "Adam", dict(lr=0.01, weight_decay=0.1)),
    OptCase("adam-decoupled", "adam", "Adam",
            dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    OptCase("adam-amsgrad", "adam", "Adam", dict(lr=0.01, amsgrad=True)),
    OptCase("adam-amsgrad-wd", "adam", "Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    OptCase("adam-maximize", "adam", "Adam", dict(lr=0.01, maximize=True)),
    OptCase("adam-maximize-wd", "adam", "Adam", dict(lr=0.01, maximize=True, weight_decay=0.1)),
    OptCase("adam-schedule", "adam", "Adam", dict(lr=0.01), lr_schedule="cyclic"),
    OptCase("adam-amsgrad-decoupled-maximize-schedule", "adam", "Adam",
            dict(lr=0.01, amsgrad=True, weight_decay=0.1, decoupled_weight_decay=True,
                 maximize=True), lr_schedule="decay"),
    # AdamW
    OptCase("adamw-default", "adamw", "AdamW"),
    OptCase("adamw-wd", "adamw", "AdamW", dict(lr=0.01, weight_decay=0.1)),
    OptCase("adamw-amsgrad", "adamw", "AdamW", dict(lr=0.01, amsgrad=True)),
    OptCase("adamw-maximize", "adamw", "AdamW", dict(lr=0.01, maximize=True)),
    OptCase("adamw-betas-eps", "adamw", "AdamW", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-4)),
    OptCase("adamw-wd-schedule", "adamw", "AdamW", dict(lr=0.01, weight_decay=0.1),
            lr_schedule="cyclic"),
    OptCase("adamw-amsgrad-maximize-schedule", "adamw", "AdamW",
            dict(lr=0.01, amsgrad=True, maximize=True, weight_decay=0.05), lr_schedule="decay"),
]
