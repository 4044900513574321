"""Core optimizer cases: every option of SGD, RMSprop, Adagrad, Adam and AdamW against torch."""

from __future__ import annotations

from tests._reference import OptCase


def decay(k):
    """A decaying lr factor (exponential)."""
    return 0.93**k


def cyclic(k):
    """A non-monotone lr factor: 1, 4/3, 5/3, ..., 3, 1, ... (period 7)."""
    return 1.0 + (k % 7) / 3


CASES = [
    # SGD
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
    # RMSprop
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
    # Adagrad
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
    # Adam
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
