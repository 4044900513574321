"""LBFGS's state <-> torch's: one state for the whole parameter vector, which torch holds under
parameter 0 (its history lists ``old_dirs``, ``old_stps``, ``ro`` as lists of tensors)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from .._typing import Params
from ..optim import _lbfgs
from ._params import is_tensor, to_jax, to_numpy, to_torch_tensor

if TYPE_CHECKING:
    from ._optim import OptimizerSpec

_LBFGS_LISTS = ("old_dirs", "old_stps", "ro")


def lbfgs_from_torch(sd: Mapping[str, Any], tx: Any, params: Params,
                     indices: list[list[int]]) -> Any:
    """The :class:`~fnlearn.optim.LBFGSState` of torch's LBFGS ``state_dict`` ``sd``."""
    state = tx.init(params)
    if len(indices) != 1:
        raise ValueError("LBFGS: torch's LBFGS has exactly one param group")
    s = sd["state"].get(indices[0][0], {}) if indices[0] else {}
    if not s:
        return state
    dtype = jnp.result_type(*jax.tree.leaves(params))

    def arr(t: Any) -> Any:
        return None if t is None else to_jax(t, "LBFGS state")

    def num(v: Any) -> Any:
        if v is None:
            return None
        if is_tensor(v) or isinstance(v, np.ndarray):
            return np.asarray(to_numpy(v)).astype(dtype)[()]
        return v

    unknown = set(s) - set(state._fields) - {"al"}
    if unknown:
        raise ValueError(f"LBFGS: torch state has keys {sorted(unknown)} unknown to LBFGSState")
    return state._replace(
        func_evals=int(s["func_evals"]), n_iter=int(s["n_iter"]), d=arr(s.get("d")),
        t=num(s.get("t")), H_diag=num(s.get("H_diag")),
        prev_flat_grad=arr(s.get("prev_flat_grad")), prev_loss=num(s.get("prev_loss")),
        **{k: tuple(arr(x) for x in s.get(k, [])) for k in _LBFGS_LISTS})


def lbfgs_to_torch(spec: OptimizerSpec, defaults: dict, state: Any,
                   group_names: tuple[tuple[str, ...], ...], numpy: bool) -> dict[str, Any]:
    """torch's LBFGS ``state_dict`` of an fnlearn LBFGS state (host-driven, or the fixed-shape
    arrays of a compiled step: their live history)."""
    state = _lbfgs.as_state(state)
    group = {**defaults, **spec.groups[0], "params": list(range(len(group_names[0])))}
    if state.n_iter == 0:
        return {"state": {}, "param_groups": [group]}

    def tensor(x: Any) -> Any:
        return None if x is None else to_torch_tensor(x, numpy)

    def num(x: Any) -> Any:  # torch's 0-d tensors (NumPy scalars here) and Python numbers
        if x is None or isinstance(x, (int, float)):
            return x
        return to_torch_tensor(np.asarray(x), numpy)

    s = {"func_evals": state.func_evals, "n_iter": state.n_iter, "d": tensor(state.d),
         "t": num(state.t), "H_diag": num(state.H_diag),
         "prev_flat_grad": tensor(state.prev_flat_grad), "prev_loss": num(state.prev_loss),
         "al": [None] * group.get("history_size", 100),
         **{k: [tensor(x) for x in getattr(state, k)] for k in _LBFGS_LISTS}}
    return {"state": {0: s}, "param_groups": [group]}
