"""fnlearn: PyTorch's loss functions and optimizers as pure JAX functions over pytrees."""

from . import checkpoint, data, losses, optim, schedules, sharding, train

__version__ = "0.1.0"

__all__ = ["__version__", "checkpoint", "data", "losses", "optim", "schedules", "sharding", "train"]
