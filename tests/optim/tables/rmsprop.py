"""RMSprop against torch: every option of torch.optim.RMSprop."""

from __future__ import annotations

from tests._reference import OptCase
from tests.optim.tables._factors import cyclic, decay  # noqa: F401 (named by lr_schedule)

CASES = [
    OptCase("rmsprop-default", "rmsprop", "RMSprop"),
    OptCase("rmsprop-alpha-eps", "rmsprop", "RMSprop", dict(alpha=0.9, eps=1e-3)),
    OptCase("rmsprop-momentum", "rmsprop", "RMSprop", dict(momentum=0.9)),
    OptCase("rmsprop-centered", "rmsprop", "RMSprop", dict(centered=True)),
    OptCase("rmsprop-centered-momentum", "rmsprop", "RMSprop", dict(centered=True, momentum=0.9)),
    OptCase("rmsprop-wd", "rmsprop", "RMSprop", dict(weight_decay=0.1)),
    OptCase("rmsprop-maximize", "rmsprop", "RMSprop", dict(maximize=True)),
    OptCase("rmsprop-centered-momentum-wd-maximize", "rmsprop", "RMSprop",
            dict(lr=3e-3, alpha=0.95, eps=1e-6, centered=True, momentum=0.5, weight_decay=0.1,
                 maximize=True)),
    OptCase("rmsprop-momentum-schedule", "rmsprop", "RMSprop", dict(momentum=0.9),
            lr_schedule="cyclic"),
    OptCase("rmsprop-centered-momentum-wd-schedule", "rmsprop", "RMSprop",
            dict(centered=True, momentum=0.9, weight_decay=0.05), lr_schedule="decay"),
]
