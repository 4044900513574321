"""The rest of torch.optim's first-order algorithms against torch: every option of Adamax,
NAdam, RAdam, Adadelta, ASGD and Rprop."""

from __future__ import annotations

from tests._reference import OptCase


def decay(k):
    """A decaying lr factor (exponential)."""
    return 0.93**k


def cyclic(k):
    """A non-monotone lr factor: 1, 4/3, 5/3, ..., 3, 1, ... (period 7)."""
    return 1.0 + (k % 7) / 3


def ramp(k):
    """An increasing lr factor that is not 1 at the first step: 0.5, 0.6, 0.7, ..."""
    return 0.5 + k / 10


CASES = [
    # Adamax
    OptCase("adamax-default", "adamax", "Adamax"),
    OptCase("adamax-betas-eps", "adamax", "Adamax", dict(betas=(0.5, 0.9), eps=1e-3)),
    OptCase("adamax-wd", "adamax", "Adamax", dict(weight_decay=0.1)),
    OptCase("adamax-maximize", "adamax", "Adamax", dict(maximize=True)),
    OptCase("adamax-all-options", "adamax", "Adamax",
            dict(lr=0.01, betas=(0.8, 0.99), eps=1e-4, weight_decay=0.05, maximize=True)),
    OptCase("adamax-wd-schedule", "adamax", "Adamax", dict(lr=0.01, weight_decay=0.1),
            lr_schedule="cyclic"),
    # NAdam
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
    # Adadelta
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
