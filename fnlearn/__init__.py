"""fnlearn: PyTorch's loss functions and optimizers as pure JAX functions over pytrees."""

import importlib

from . import checkpoint, data, losses, optim, schedules, sharding, train

__version__ = "0.1.0"

__all__ = ["__version__", "checkpoint", "crosscheck", "data", "losses", "optim", "schedules",
           "sharding", "train"]

#: Submodules imported on first attribute access: ``fnlearn.crosscheck`` loads optax's whole
#: catalogue of builders and its CLI, which ``import fnlearn`` should not pay for.
_LAZY = ("crosscheck",)


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
