"""torch.nn.functional's loss functions (and torch.nn's loss classes) for JAX."""

from ._reduction import reduce

__all__ = [
    "reduce",
]
