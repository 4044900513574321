r"""Optimizer state: torch's ``optimizer.state_dict()`` <-> an fnlearn optimizer and its state.

The mapping is data. fnlearn's optimizer states are NamedTuples whose fields are torch's
per-parameter state keys, so one converter moves every buffer; the table below only says which
factory a torch class is, and which fields torch keeps once per parameter as a 0-d tensor
while fnlearn keeps one scalar for the optimizer (they must agree across parameters).

==============  =================  ==================================================
torch.optim     fnlearn.optim      state (torch keys = fnlearn fields; *scalar*)
==============  =================  ==================================================
SGD             sgd                momentum_buffer (``None`` before the first step)
RMSprop         rmsprop            *step*, square_avg, momentum_buffer, grad_avg
Adagrad         adagrad            *step*, sum
Adam / AdamW    adam / adamw       *step*, exp_avg, exp_avg_sq, max_exp_avg_sq
Adamax          adamax             *step*, exp_avg, exp_inf
NAdam           nadam              *step*, *mu_product*, exp_avg, exp_avg_sq
RAdam           radam              *step*, exp_avg, exp_avg_sq
Adadelta        adadelta           *step*, square_avg, acc_delta
ASGD            asgd               *step*, *eta*, *mu*, ax
Rprop           rprop              *step*, prev, step_size
Adafactor       adafactor          *step*, row_var, col_var (matrices), variance
Muon            muon               momentum_buffer
LBFGS           lbfgs              func_evals, n_iter, d, t, old_dirs, old_stps, ro,
                                   H_diag, prev_flat_grad, prev_loss (held by param 0;
                                   a compiled step's LBFGSArrays export their live pairs)
==============  =================  ==================================================

Hyperparameters keep torch's names (``param_groups[i]``); torch's execution options
(``foreach``, ``differentiable``, ``capturable``) change no number and are dropped, ``fused``
maps onto fnlearn's ``fused``. Several groups become :func:`fnlearn.optim.param_groups` with
one label per group (``"0"``, ``"1"``, ...), parameters in no group are frozen. SGD and Muon
keep no step in torch: fnlearn's step count (used by schedules and SGD's first-step dampening)
is then ``step=`` if given, else 1 once a momentum buffer exists and 0 before.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import optim
from .._typing import Params
from ..flat import trees
from ._lbfgs_state import lbfgs_from_torch, lbfgs_to_torch
from ._params import (
    TorchWeights,
    dotted,
    import_torch,
    is_tensor,
    named_leaves,
    to_jax,
    to_numpy,
    to_torch_tensor,
)


class _Algo(NamedTuple):
    factory: Callable[..., Any]
    #: fields torch keeps as one 0-d tensor per parameter and fnlearn as one scalar
    scalars: tuple[str, ...] = ("step",)
    #: torch hyperparameters the factory does not take, with the one value it implies
    fixed: Mapping[str, Any] = {}


ALGORITHMS: dict[str, _Algo] = {
    "SGD": _Algo(optim.sgd, ()),
    "RMSprop": _Algo(optim.rmsprop),
    "Adagrad": _Algo(optim.adagrad),
    "Adam": _Algo(optim.adam),
    "AdamW": _Algo(optim.adamw, fixed={"decoupled_weight_decay": True}),
    "Adamax": _Algo(optim.adamax),
    "NAdam": _Algo(optim.nadam, ("step", "mu_product")),
    "RAdam": _Algo(optim.radam),
    "Adadelta": _Algo(optim.adadelta),
    "ASGD": _Algo(optim.asgd, ("step", "eta", "mu")),
    "Rprop": _Algo(optim.rprop),
    "Adafactor": _Algo(optim.adafactor),
    "Muon": _Algo(optim.muon, ()),
    "LBFGS": _Algo(optim.lbfgs, ()),
}

#: torch's per-group execution options: no effect on the numbers.
EXECUTION_OPTIONS = ("foreach", "differentiable", "capturable")
#: group entries that lr schedulers add (kept for the way back, not hyperparameters).
SCHEDULER_KEYS = ("initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum")


def _scalar(v: Any) -> Any:
    """A group value as plain Python (tensors -> floats, lists -> tuples)."""
    if is_tensor(v):
        return v.item()
    if isinstance(v, (list, tuple)):
        return tuple(_scalar(x) for x in v)
    return v


def plain_groups(param_groups: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """torch's ``param_groups`` as JSON-able Python (tensors -> numbers, tuples -> lists)."""
    def plain(v: Any) -> Any:
        v = _scalar(v)
        return list(v) if isinstance(v, tuple) else v

    return [{k: plain(v) for k, v in g.items()} for g in param_groups]


class OptimizerSpec(NamedTuple):
    """What an fnlearn optimizer is in torch's terms: the class, each group's hyperparameters
    (torch's names; ``lr`` and the momenta may be schedules), each group's parameter names in
    torch's numbering (dotted module paths; ``None`` with one group: the params' own order)
    and the parameters in no group (frozen). With ``inject_lr`` each group's optimizer is
    wrapped in :func:`optax.inject_hyperparams` with ``lr`` injected, so that a
    ReduceLROnPlateau can set it between steps (:func:`fnlearn.optim.set_hyperparam`).

    :func:`optimizer_from_torch` makes one from a state dict; write one to start a run in
    fnlearn that you will hand to torch, and build the optimizer with :meth:`build`::

        spec = OptimizerSpec("AdamW", ({"lr": 1e-3, "weight_decay": 0.05},))
        opt = spec.build()              # fnlearn.optim.adamw(lr=1e-3, weight_decay=0.05)
        ...
        sd = optimizer_to_torch(opt, opt_state, params)   # or optimizer_to_torch(spec, ...)
    """

    name: str
    groups: tuple[Mapping[str, Any], ...]
    names: tuple[tuple[str, ...], ...] | None = None
    frozen: tuple[str, ...] = ()
    inject_lr: bool = False

    def build(self) -> Any:
        """The fnlearn optimizer (a :func:`~fnlearn.optim.param_groups` over several groups or
        with frozen parameters), remembered so that :func:`optimizer_to_torch` can be given it
        instead of the spec."""
        algo = _algo(self.name)
        txs = [_factory_call(self.name, algo, g, self.inject_lr) for g in self.groups]
        if len(txs) == 1 and not self.frozen:
            tx = txs[0]
        else:
            if self.names is None:
                raise ValueError(f"{self.name}: {len(self.groups)} param groups need the "
                                 "parameter names of each (OptimizerSpec.names)")
            label_of = {n: str(i) for i, group in enumerate(self.names) for n in group}

            def labels(tree: Params) -> Any:
                return jax.tree_util.tree_map_with_path(
                    lambda path, _: label_of.get(dotted(path), optim.FROZEN), tree)

            tx = optim.param_groups({str(i): t for i, t in enumerate(txs)}, labels)
        _BUILT[id(tx)] = (tx, self)
        return tx


# optimizers built from a spec, by identity (a strong reference keeps the id unique)
_BUILT: dict[int, tuple[Any, OptimizerSpec]] = {}


def _algo(name: str) -> _Algo:
    if name not in ALGORITHMS:
        raise ValueError(f"torch.optim.{name} has no fnlearn counterpart; supported: "
                         f"{', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def _factory_call(name: str, algo: _Algo, group: Mapping[str, Any], inject_lr: bool = False
                  ) -> Any:
    """``factory(**hyperparameters)`` from one torch group, every key accounted for."""
    accepted = inspect.signature(algo.factory).parameters
    kwargs = {}
    for key, value in group.items():
        if key in ("params", "param_names", *EXECUTION_OPTIONS, *SCHEDULER_KEYS):
            continue
        if key in algo.fixed:
            if value != algo.fixed[key]:
                raise ValueError(f"{name}: {key}={value!r} has no fnlearn counterpart "
                                 f"(fnlearn.optim.{algo.factory.__name__} implies "
                                 f"{algo.fixed[key]!r})")
            continue
        if key == "fused":
            if value and "fused" not in accepted:
                raise ValueError(f"{name}: fused=True has no fnlearn counterpart")
            if "fused" in accepted:
                kwargs["fused"] = bool(value)
            continue
        if key not in accepted:
            raise ValueError(f"{name}: hyperparameter {key!r} (= {value!r}) is unknown to "
                             f"fnlearn.optim.{algo.factory.__name__}: is this state dict "
                             f"torch.optim.{name}'s?")
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    if inject_lr:
        static = tuple(k for k in kwargs if k != "lr")
        return optax.inject_hyperparams(algo.factory, static_args=static)(**kwargs)
    return algo.factory(**kwargs)


def _torch_order(sd: Mapping[str, Any], params: Params, names: Sequence[str] | None
                 ) -> tuple[list[list[int]], dict[int, str], tuple[tuple[str, ...], ...]]:
    """For each group its torch indices; torch index -> dotted leaf name; names per group."""
    if not isinstance(sd, Mapping) or "state" not in sd or "param_groups" not in sd:
        raise ValueError("optimizer_from_torch: expected an optimizer state_dict (a dict with "
                         "'state' and 'param_groups')")
    leaves = dict(named_leaves(params))
    groups = sd["param_groups"]
    indices = [list(g["params"]) for g in groups]
    flat = [i for g in indices for i in g]
    if names is None and all("param_names" in g for g in groups):
        names = [n for g in groups for n in g["param_names"]]
    if names is not None:
        names = list(names)
        if len(names) != len(flat):
            raise ValueError(f"optimizer_from_torch: {len(names)} names for {len(flat)} torch "
                             "parameters")
        missing = [n for n in names if n not in leaves]
        if missing:
            raise ValueError(f"optimizer_from_torch: torch parameters {missing} are not in "
                             f"params (its leaves: {list(leaves)})")
    else:
        if len(flat) != len(leaves):
            raise ValueError(f"optimizer_from_torch: the torch optimizer has {len(flat)} "
                             f"parameters, params has {len(leaves)} leaves ({list(leaves)}); "
                             "pass names=... to say which leaves it optimizes")
        names = list(leaves)  # the module's order = torch's numbering, group after group
    name_of = dict(zip(flat, names, strict=True))
    per_group = tuple(tuple(name_of[i] for i in g) for g in indices)
    return indices, name_of, per_group


def optimizer_from_torch(
    state_dict: Mapping[str, Any],
    params: Params,
    name: str | None = None,
    *,
    names: Sequence[str] | None = None,
    schedule: Any = None,
    steps_per_epoch: int = 1,
    hyperparams: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
    step: int | None = None,
) -> tuple[Any, Any]:
    r"""The fnlearn optimizer and state that continue a torch optimizer's run.

    Args:
        state_dict: ``optimizer.state_dict()`` (tensors on any device, or NumPy arrays).
        params: the parameters it optimizes: :func:`params_from_torch`'s result (its
            ``names`` give torch's numbering), or a pytree whose ``i``-th leaf in the dicts'
            order is torch's parameter ``i`` (a dict rebuilt by ``jax.tree.map`` has sorted
            keys: pass ``names`` then), unless torch saved ``param_names``.
        name: the torch class (``"Adam"``, ...). A state dict does not record it: when ``None``
            it is recognised from the group keys (:func:`guess_class`; needs torch).
        names: the dotted leaf names in torch's numbering, when params are not in torch's order.
        schedule: a :func:`schedule_from_torch` result: each group's ``lr`` (and cycled
            momentum) becomes its schedule shifted onto the optimizer's step count, so the next
            step uses torch's next lr; a ReduceLROnPlateau injects ``lr`` instead
            (:class:`OptimizerSpec` ``inject_lr``).
        steps_per_epoch: optimizer steps per ``scheduler.step()`` (1: torch's scheduler was
            stepped after every optimizer step; else the hand-over is at an epoch boundary).
        hyperparams: replacements for group entries, one mapping for every group or one per
            group (e.g. ``{"lr": my_schedule}``).
        step: fnlearn's step count at the hand-over for SGD and Muon (torch keeps none); by
            default ``last_epoch * steps_per_epoch`` with a schedule, else 1 once a momentum
            buffer exists and 0 before.

    Returns:
        ``(optimizer, opt_state)``; :func:`optimizer_to_torch` accepts that optimizer.

    Raises:
        ValueError: an unknown class or hyperparameter; a parameter count, shape, dtype or state
            key that does not match (the message names the leaf); per-parameter step counts
            that differ.

    Example::

        >>> import torch
        >>> from fnlearn.interop.torch import optimizer_from_torch, params_from_torch
        >>> net = torch.nn.Linear(3, 2)
        >>> opt = torch.optim.Adam(net.parameters(), lr=0.01)
        >>> net(torch.ones(1, 3)).sum().backward(); opt.step()
        >>> params, _ = params_from_torch(net)
        >>> tx, state = optimizer_from_torch(opt.state_dict(), params)
        >>> int(state.step), state.exp_avg["weight"].shape
        (1, (2, 3))
    """
    if isinstance(params, TorchWeights):
        params, names = params.params, names or params.names
    name = name or guess_class(state_dict)
    algo = _algo(name)
    indices, name_of, per_group = _torch_order(state_dict, params, names)
    n = len(indices)
    extra = [dict(hyperparams or {})] * n if isinstance(hyperparams, Mapping) or \
        hyperparams is None else [dict(h) for h in hyperparams]
    if len(extra) != n:
        raise ValueError(f"optimizer_from_torch: {n} param groups, got {len(extra)} hyperparams")
    handover = _handover_step(state_dict, step, schedule, steps_per_epoch)
    grouped = {x for g in per_group for x in g}
    frozen = tuple(x for x, _ in named_leaves(params) if x not in grouped)
    spec = spec_from_groups(name, state_dict["param_groups"], per_group, frozen,
                            schedule=schedule, handover=handover,
                            steps_per_epoch=steps_per_epoch, extra=extra)
    tx = spec.build()
    if name == "LBFGS":
        return tx, lbfgs_from_torch(state_dict, tx, params, indices)
    state = tx.init(params)
    filled = []
    for gi, ((group_state, _), idx) in enumerate(zip(_group_states(state, n), indices,
                                                     strict=True)):
        torch_states = {name_of[i]: state_dict["state"].get(i, {}) for i in idx}
        filled.append(_fill(name, algo, group_state, params, torch_states, handover, gi))
    return tx, _set_group_states(state, filled)


def spec_from_groups(name: str, param_groups: Sequence[Mapping[str, Any]],
                     names: tuple[tuple[str, ...], ...], frozen: tuple[str, ...], *,
                     schedule: Any = None, handover: int | None = None,
                     steps_per_epoch: int = 1,
                     extra: Sequence[Mapping[str, Any]] | None = None) -> OptimizerSpec:
    """The :class:`OptimizerSpec` of torch's ``param_groups`` (hyperparameters as plain
    Python), each group's lr (and momentum) replaced by ``schedule`` shifted onto the step
    count (``handover``), then by ``extra``."""
    groups = []
    for i, g in enumerate(param_groups):
        group = {k: _scalar(v) for k, v in g.items() if k not in ("params", "param_names")}
        group.update(_scheduled(schedule, i, group, handover, steps_per_epoch))
        group.update(extra[i] if extra else {})
        groups.append(group)
    plateau = schedule is not None and schedule.plateau is not None
    return OptimizerSpec(name, tuple(groups), names, frozen, plateau)


def _handover_step(sd: Mapping[str, Any], step: int | None, schedule: Any,
                   steps_per_epoch: int) -> int | None:
    """The optimizer's step count at the hand-over: torch's ``step`` where it keeps one."""
    for s in sd["state"].values():
        if isinstance(s, Mapping) and s.get("step") is not None:
            return int(float(to_numpy(s["step"])))
    if step is not None:
        return int(step)
    if schedule is not None:
        return schedule.last_epoch * steps_per_epoch
    return None


def _scheduled(schedule: Any, i: int, group: Mapping[str, Any], handover: int | None,
               steps_per_epoch: int) -> dict[str, Any]:
    """Group ``i``'s ``lr`` (and momentum) from a :class:`TorchSchedule`, as functions of the
    optimizer's step count: torch's epoch ``last_epoch + (count - handover) // spe``."""
    if schedule is None:
        return {}
    if schedule.plateau is not None:
        return {"lr": float(np.ravel(np.asarray(schedule.plateau[1].lr))[i])}
    start, last = handover or 0, schedule.last_epoch

    def shifted(f: Callable) -> Callable:
        return lambda count: f(last + (count - start) // steps_per_epoch)

    out: dict[str, Any] = {"lr": shifted(schedule.lr[i])}
    if schedule.momentum is not None:
        m = shifted(schedule.momentum[i])
        if schedule.momentum_key == "betas":
            out["betas"] = (m, group["betas"][1])
        else:
            out["momentum"] = m
    return out


def guess_class(sd: Mapping[str, Any]) -> str:
    """The torch optimizer class whose group keys (and, where they differ, state keys) match."""
    torch = import_torch()
    keys = set(sd["param_groups"][0]) - {"params", "param_names", *SCHEDULER_KEYS}
    fits = []
    for cls_name in ALGORITHMS:
        sig = inspect.signature(getattr(torch.optim, cls_name).__init__).parameters
        if keys <= set(sig) | {"initial_lr"}:
            fits.append((len(set(sig) - keys), cls_name))
    fits = [c for d, c in fits if d == min(d for d, _ in fits)] if fits else []
    if len(fits) > 1 and "AdamW" in fits and sd["param_groups"][0].get("decoupled_weight_decay"):
        fits = ["AdamW"]
    elif len(fits) > 1 and "Adam" in fits:
        fits = ["Adam"]
    if len(fits) != 1:
        raise ValueError(f"optimizer_from_torch: cannot tell the torch class from the group keys "
                         f"{sorted(keys)} (candidates: {fits or 'none'}); pass name=...")
    return fits[0]


def _unwrap(state: Any) -> tuple[Any, dict[str, Any]]:
    """A group's optimizer state and its injected hyperparameters (``inject_lr``)."""
    if hasattr(state, "hyperparams") and hasattr(state, "inner_state"):
        return state.inner_state, dict(state.hyperparams)
    return state, {}


def _group_states(state: Any, n: int) -> list[tuple[Any, dict[str, Any]]]:
    if isinstance(state, optax.PartitionState):
        return [_unwrap(state.inner_states[str(i)].inner_state) for i in range(n)]
    return [_unwrap(state)]


def _set_group_states(state: Any, filled: list[Any]) -> Any:
    def put(wrapper: Any, core: Any) -> Any:
        if hasattr(wrapper, "hyperparams") and hasattr(wrapper, "inner_state"):
            return wrapper._replace(inner_state=core)
        return core

    if isinstance(state, optax.PartitionState):
        inner = dict(state.inner_states)
        for i, s in enumerate(filled):
            masked = inner[str(i)]
            inner[str(i)] = masked._replace(inner_state=put(masked.inner_state, s))
        return state._replace(inner_states=inner)
    return put(state, filled[0])


def _is_slot(x: Any) -> bool:
    return x is None or isinstance(x, optax.MaskedNode)


def _fill(cls: str, algo: _Algo, state: Any, params: Params,
          torch_states: dict[str, Mapping[str, Any]], step: int | None, group: int) -> Any:
    """One group's fnlearn state (from ``init``) with torch's per-parameter values put in."""
    fields = set(state._fields)
    stepped = {n for n, s in torch_states.items()
               if any(v is not None for v in s.values())}
    if stepped and len(stepped) != len(torch_states):
        raise ValueError(f"{cls}: group {group}: parameters {sorted(set(torch_states) - stepped)} "
                         f"have no optimizer state while {sorted(stepped)} have: torch skipped "
                         "them (no gradient); fnlearn steps every parameter of a group")
    for n, s in torch_states.items():
        unknown = set(s) - fields
        if unknown:
            raise ValueError(f"{cls}: torch state of {n!r} has keys {sorted(unknown)} that "
                             f"fnlearn's {type(state).__name__} lacks ({sorted(fields)})")
    new = {}
    for field in state._fields:
        value = getattr(state, field)
        if field in algo.scalars or (field == "step" and not algo.scalars):
            if field == "step" and "step" not in algo.scalars:
                count = step if step is not None else int(bool(stepped))
                new[field] = jnp.asarray(count, value.dtype)
                continue
            seen = {n: float(np.asarray(to_numpy(s[field]))) for n, s in torch_states.items()
                    if field in s}
            if stepped and len(seen) != len(torch_states):
                raise ValueError(f"{cls}: torch state lacks {field!r} for "
                                 f"{sorted(set(torch_states) - set(seen))}")
            if len(set(seen.values())) > 1:
                raise ValueError(f"{cls}: group {group}: per-parameter {field!r} differs "
                                 f"({seen}); fnlearn keeps one {field} per group")
            if seen:
                new[field] = jnp.asarray(next(iter(seen.values())), value.dtype)
            continue
        if value is None:
            present = [n for n, s in torch_states.items() if s.get(field) is not None]
            if present:
                raise ValueError(f"{cls}: torch has {field!r} for {present} but fnlearn's "
                                 f"optimizer built from these hyperparameters keeps none")
            continue
        new[field] = _fill_tree(cls, field, value, params, torch_states, bool(stepped))
    return state._replace(**new)


def _fill_tree(cls: str, field: str, tree: Any, params: Params,
               torch_states: dict[str, Mapping[str, Any]], stepped: bool) -> Any:
    """A params-shaped state field with each leaf replaced by torch's tensor for it."""
    slots, treedef = jax.tree.flatten(tree, is_leaf=_is_slot)
    out = []
    for n, slot in zip(_leaf_names(tree), slots, strict=True):
        if _is_slot(slot) or n not in torch_states:
            out.append(slot)
            continue
        t = torch_states[n].get(field)
        if t is None:
            if stepped and not (cls == "SGD" and field == "momentum_buffer"):
                raise ValueError(f"{cls}: torch state of {n!r} lacks {field!r}")
            out.append(slot)
            continue
        a = to_jax(t, f"{cls} state[{n!r}][{field!r}]")
        if a.shape != slot.shape:
            raise ValueError(f"{cls}: {field} of {n!r} has shape {tuple(a.shape)} in torch, "
                             f"{tuple(slot.shape)} in fnlearn (the parameter's)")
        if a.dtype != slot.dtype:
            raise ValueError(f"{cls}: {field} of {n!r} is {a.dtype} in torch but the parameter "
                             f"is {slot.dtype}")
        out.append(a)
    return jax.tree.unflatten(treedef, out)


def _leaf_names(tree: Any) -> list[str]:
    """The dotted name of each leaf of a params-shaped state field (slots included), in JAX's
    order: a field has the params' structure, so these are the parameters' names."""
    return [dotted(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_slot)[0]]


def optimizer_to_torch(optimizer: Any, opt_state: Any, params: Params, *,
                       numpy: bool = False) -> dict[str, Any]:
    r"""The ``state_dict`` that ``torch.optim.<Same>(model.parameters(), ...)`` loads
    (``load_state_dict``) to continue an fnlearn run.

    Args:
        optimizer: an optimizer from :func:`optimizer_from_torch` or
            :meth:`OptimizerSpec.build`, or the :class:`OptimizerSpec` itself (an fnlearn
            optimizer does not record its hyperparameters, so a hand-built ``adam(...)`` needs
            the spec that says what it is).
        opt_state: its state (for LBFGS also the :class:`~fnlearn.optim.LBFGSArrays` that
            :func:`fnlearn.train.make_train_step` returns).
        params: its parameters (torch's order: the dicts' order).
        numpy: NumPy arrays instead of tensors and no torch defaults added (runs without
            torch; for checks and for writing the state elsewhere).

    Returns:
        ``{"state": {i: {key: tensor}}, "param_groups": [...]}``, torch's layout: every
        hyperparameter (torch's defaults for those the spec leaves out; a schedule's value at
        the next step), 0-d ``step`` tensors, buffers in the parameters' dtypes.

    Raises:
        ValueError: an optimizer not built from a spec, a group without a state.
    """
    spec = optimizer if isinstance(optimizer, OptimizerSpec) else _BUILT.get(id(optimizer),
                                                                             (None, None))[1]
    if spec is None:
        raise ValueError("optimizer_to_torch: this optimizer was not built by "
                         "optimizer_from_torch or OptimizerSpec.build; pass its OptimizerSpec")
    algo = _algo(spec.name)
    defaults = {} if numpy else torch_defaults(spec.name)
    opt_state, params = trees((opt_state, params))  # a Flat: per parameter, as torch keeps it
    group_names = spec.names or (tuple(x for x, _ in named_leaves(params)),)
    if spec.name == "LBFGS":
        return lbfgs_to_torch(spec, defaults, opt_state, group_names, numpy)
    states = _group_states(opt_state, len(spec.groups))
    out_state: dict[int, dict[str, Any]] = {}
    out_groups = []
    index = 0
    for group, names, (state, injected) in zip(spec.groups, group_names, states, strict=True):
        count = int(getattr(state, "step", 0))
        hyper = dict(defaults)
        hyper.update({k: v for k, v in group.items() if k not in ("params", "param_names")})
        hyper.update({k: float(v) for k, v in injected.items()})
        for k, v in hyper.items():
            if callable(v):
                hyper[k] = float(v(count))
            elif isinstance(v, tuple) and any(callable(x) for x in v):
                hyper[k] = tuple(float(x(count)) if callable(x) else x for x in v)
        if spec.name == "AdamW":
            hyper["decoupled_weight_decay"] = True
        ids = list(range(index, index + len(names)))
        index += len(names)
        hyper["params"] = ids
        if spec.names is not None:  # torch >= 2.6 keeps them; load_state_dict takes them
            hyper["param_names"] = list(names)
        out_groups.append(hyper)
        for i, n in zip(ids, names, strict=True):
            out_state[i] = _torch_param_state(spec.name, algo, state, params, n, count, numpy)
    for i in [i for i, s in out_state.items() if not s]:
        del out_state[i]
    return {"state": out_state, "param_groups": out_groups}


def torch_defaults(name: str) -> dict[str, Any]:
    """The keyword defaults of ``torch.optim.<name>`` (what its param groups hold)."""
    cls = getattr(import_torch().optim, name)
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
            if k not in ("self", "params") and p.default is not inspect.Parameter.empty}


def _torch_param_state(cls: str, algo: _Algo, state: Any, params: Params, name: str,
                       count: int, numpy: bool) -> dict[str, Any]:
    """torch's ``state[p]`` for the parameter ``name``: empty before the first step (but
    Adagrad's, which torch fills in its constructor)."""
    if count == 0 and cls != "Adagrad":
        return {}
    if numpy:
        def scalar(v: Any) -> Any:
            return np.asarray(v, np.float64)
    else:
        torch = import_torch()
        # torch's _get_scalar_dtype(): 0-d state tensors follow the default dtype
        dt = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32

        def scalar(v: Any) -> Any:
            return torch.tensor(float(v), dtype=dt)
    out: dict[str, Any] = {}
    for field in state._fields:
        value = getattr(state, field)
        if field in algo.scalars:
            out[field] = scalar(value)
        elif field == "step":
            continue  # SGD and Muon keep no step in torch
        elif value is None:
            continue  # an unused buffer: torch keeps no key for it
        else:
            flat = dict(zip(_leaf_names(value), jax.tree.leaves(value, is_leaf=_is_slot),
                            strict=True))
            leaf = flat[name]
            if not _is_slot(leaf):
                out[field] = to_torch_tensor(leaf, numpy)
    return out
