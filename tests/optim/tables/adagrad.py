"""Adagrad against torch: every option of torch.optim.Adagrad."""

from __future__ import annotations

from tests._reference import OptCase
from tests.optim.tables._factors import cyclic, decay  # noqa: F401 (named by lr_schedule)

CASES = [
    OptCase("adagrad-default", "adagrad", "Adagrad"),
    OptCase("adagrad-lr_decay", "adagrad", "Adagrad", dict(lr=0.1, lr_decay=0.05)),
    OptCase("adagrad-initial_accumulator_value", "adagrad", "Adagrad",
            dict(lr=0.1, initial_accumulator_value=0.1)),
    OptCase("adagrad-eps-1e-2", "adagrad", "Adagrad", dict(lr=0.1, eps=1e-2)),
    OptCase("adagrad-eps-0", "adagrad", "Adagrad", dict(lr=0.1, eps=0.0)),
    OptCase("adagrad-wd", "adagrad", "Adagrad", dict(lr=0.1, weight_decay=0.1)),
    OptCase("adagrad-maximize", "adagrad", "Adagrad", dict(lr=0.1, maximize=True)),
    OptCase("adagrad-all-options", "adagrad", "Adagrad",
            dict(lr=0.1, lr_decay=0.02, weight_decay=0.05, initial_accumulator_value=0.5,
                 eps=1e-3, maximize=True)),
    OptCase("adagrad-schedule", "adagrad", "Adagrad", dict(lr=0.1), lr_schedule="cyclic"),
    OptCase("adagrad-lr_decay-schedule", "adagrad", "Adagrad", dict(lr=0.1, lr_decay=0.05),
            lr_schedule="decay"),
]
