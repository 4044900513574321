"""fnlearn: PyTorch's loss functions and optimizers as pure JAX functions over pytrees."""

from . import losses, optim, schedules

__version__ = "0.1.0"

__all__ = ["__version__", "losses", "optim", "schedules"]
