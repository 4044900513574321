"""torch.optim's algorithms as pure, jit-able optax-style GradientTransformations."""

from . import swa_utils
from ._adadelta import AdadeltaState, adadelta
from ._adafactor import AdafactorState, adafactor
from ._adagrad import AdagradState, adagrad
from ._adam import AdamState, adam, adamw
from ._adamax import AdamaxState, adamax
from ._asgd import ASGDState, asgd
from ._base import (
    GradientTransformation,
    GradientTransformationExtraArgs,
    apply_updates,
)
from ._clip import (
    ClipGradNormState,
    clip_grad_norm,
    clip_grad_norm_transform,
    clip_grad_value,
    clip_grad_value_transform,
    clip_grads_with_norm,
    get_total_norm,
)
from ._groups import FROZEN, freeze, param_groups
from ._lbfgs import LBFGS, LBFGSArrays, LBFGSState, lbfgs
from ._lift import FusedGradientTransformation, fused_apply_of, update_and_apply
from ._muon import MuonState, muon
from ._nadam import NAdamState, nadam
from ._plateau import PlateauState, ReduceLROnPlateau, reduce_lr_on_plateau, set_hyperparam
from ._radam import RAdamState, radam
from ._rmsprop import RMSpropState, rmsprop
from ._rprop import RpropState, rprop
from ._sgd import SGDState, sgd
from ._sparse_adam import IndexedRows, SparseAdamState, sparse_adam

__all__ = [
    "FusedGradientTransformation",
    "fused_apply_of",
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "apply_updates",
    "update_and_apply",
    "AdagradState",
    "AdamState",
    "RMSpropState",
    "SGDState",
    "adagrad",
    "adam",
    "adamw",
    "rmsprop",
    "sgd",
    "ASGDState",
    "AdadeltaState",
    "AdafactorState",
    "AdamaxState",
    "MuonState",
    "NAdamState",
    "RAdamState",
    "RpropState",
    "adadelta",
    "adafactor",
    "adamax",
    "asgd",
    "muon",
    "nadam",
    "radam",
    "rprop",
    "IndexedRows",
    "SparseAdamState",
    "sparse_adam",
    "ClipGradNormState",
    "FROZEN",
    "LBFGS",
    "LBFGSArrays",
    "LBFGSState",
    "lbfgs",
    "PlateauState",
    "ReduceLROnPlateau",
    "clip_grad_norm",
    "clip_grad_norm_transform",
    "clip_grad_value",
    "clip_grad_value_transform",
    "clip_grads_with_norm",
    "freeze",
    "get_total_norm",
    "param_groups",
    "reduce_lr_on_plateau",
    "set_hyperparam",
    "swa_utils",
]
