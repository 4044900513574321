"""torch.optim's algorithms as pure, jit-able optax-style GradientTransformations."""

from ._base import (
    GradientTransformation,
    GradientTransformationExtraArgs,
    apply_updates,
)

__all__ = [
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "apply_updates",
]
