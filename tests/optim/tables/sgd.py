"""SGD against torch: every option of torch.optim.SGD."""

from __future__ import annotations

from tests._reference import OptCase
from tests.optim.tables._factors import cyclic, decay  # noqa: F401 (named by lr_schedule)

CASES = [
    OptCase("sgd-default", "sgd", "SGD"),
    OptCase("sgd-momentum", "sgd", "SGD", dict(lr=0.05, momentum=0.9)),
    OptCase("sgd-dampening", "sgd", "SGD", dict(lr=0.05, momentum=0.9, dampening=0.5)),
    OptCase("sgd-dampening-0.9", "sgd", "SGD", dict(lr=0.05, momentum=0.9, dampening=0.9)),
    OptCase("sgd-nesterov", "sgd", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    OptCase("sgd-wd", "sgd", "SGD", dict(lr=0.05, weight_decay=0.1)),
    OptCase("sgd-maximize", "sgd", "SGD", dict(lr=0.05, maximize=True)),
    OptCase("sgd-momentum-dampening-wd-maximize", "sgd", "SGD",
            dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.05, maximize=True)),
    OptCase("sgd-nesterov-wd-maximize", "sgd", "SGD",
            dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)),
    OptCase("sgd-momentum-schedule", "sgd", "SGD", dict(lr=0.05, momentum=0.9),
            lr_schedule="cyclic"),
    OptCase("sgd-dampening-wd-schedule", "sgd", "SGD",
            dict(lr=0.05, momentum=0.5, dampening=0.2, weight_decay=0.01), lr_schedule="decay"),
]
