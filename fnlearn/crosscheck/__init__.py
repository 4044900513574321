"""Cross-check optimizers and losses against optax and PyTorch, as a library and a command.

* :func:`compare` runs two optimizers (fnlearn, optax, or torch.optim) side by side on the
  same gradient sequence and reports how far their parameters drift apart.
* :func:`compare_losses` does the same for loss values and gradients.
* :func:`to_optax` gives, for an fnlearn optimizer configuration, the optax transformation that
  computes the same update, or the closest one and the reason it differs.
* ``python -m fnlearn.crosscheck`` (``fnlearn-crosscheck``) runs the whole built-in catalogue
  against optax, and against torch when it is installed; see ``docs/guides/optax_and_torch.md``.
"""

from ._compare import Report, compare, make_grads
from ._compare_losses import LossReport, compare_losses
from ._optax_map import OptaxEquivalent, to_optax
from ._torch import TorchFunction, TorchOptimizer

__all__ = [
    "LossReport",
    "OptaxEquivalent",
    "Report",
    "TorchFunction",
    "TorchOptimizer",
    "compare",
    "compare_losses",
    "make_grads",
    "to_optax",
]
