r"""Layouts: torch's layer weights <-> flax.linen's, for the common layers.

==================  =====================  =========================================
torch layer         flax.linen layer       weights (torch -> flax)
==================  =====================  =========================================
Linear              Dense                  weight (out, in) -> kernel (in, out);
                                           bias -> bias
Conv1d/2d/3d        Conv                   weight (O, I/g, *k) -> kernel (*k, I/g, O);
                                           bias -> bias
Embedding           Embed                  weight -> embedding
LayerNorm           LayerNorm              weight -> scale; bias -> bias
GroupNorm           GroupNorm              weight -> scale; bias -> bias
BatchNorm1d/2d/3d   BatchNorm              weight -> scale; bias -> bias;
                                           running_mean -> batch_stats mean;
                                           running_var -> batch_stats var
==================  =====================  =========================================

The map is explicit: :func:`flax_layout` pairs torch's layers with flax's (in order, or as the
caller says) and refuses anything it cannot pair, listing every unmatched name on both sides.
Elementwise optimizer buffers (Adam's moments, momentum, ...) have the params' layout and map
the same way (:meth:`FlaxLayout.state_to_flax`).

.. warning::
   flax's BatchNorm keeps ``ra = momentum * ra + (1 - momentum) * batch`` with the *biased*
   batch variance, torch ``ra = (1 - momentum) * ra + momentum * batch`` with the *unbiased*
   one (flax ``momentum=0.9`` is torch's 0.1); the weights carry over, training BatchNorm
   further does not reproduce torch's running statistics. ``num_batches_tracked`` has no flax
   counterpart: it is kept aside for the way back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .._typing import Params
from ._params import import_torch


def _t(x: Any) -> Any:
    return jnp.swapaxes(x, 0, 1) if x.ndim == 2 else x


def _conv_to_flax(w: Any) -> Any:  # (O, I, *k) -> (*k, I, O)
    n = w.ndim
    return jnp.transpose(w, (*range(2, n), 1, 0))


def _conv_to_torch(k: Any) -> Any:  # (*k, I, O) -> (O, I, *k)
    n = k.ndim
    return jnp.transpose(k, (n - 1, n - 2, *range(n - 2)))


def _same(x: Any) -> Any:
    return x


#: kind -> {torch name: (flax name, to flax, to torch)}; buffers go to ``batch_stats``.
LAYOUTS: dict[str, dict[str, tuple[str, Callable, Callable]]] = {
    "Linear": {"weight": ("kernel", _t, _t), "bias": ("bias", _same, _same)},
    "Conv": {"weight": ("kernel", _conv_to_flax, _conv_to_torch),
             "bias": ("bias", _same, _same)},
    "Embedding": {"weight": ("embedding", _same, _same)},
    "LayerNorm": {"weight": ("scale", _same, _same), "bias": ("bias", _same, _same)},
    "GroupNorm": {"weight": ("scale", _same, _same), "bias": ("bias", _same, _same)},
    "BatchNorm": {"weight": ("scale", _same, _same), "bias": ("bias", _same, _same)},
}
BATCH_STATS = {"running_mean": "mean", "running_var": "var"}
#: the flax kinds each torch kind may pair with (flax's layer is recognised by its weights).
FLAX_KINDS = {"Linear": "dense", "Conv": "conv", "Embedding": "embed", "LayerNorm": "norm",
              "GroupNorm": "norm", "BatchNorm": "norm"}


def _torch_kind(module: Any) -> str | None:
    nn = import_torch().nn
    kinds = ((nn.Linear, "Linear"), ((nn.Conv1d, nn.Conv2d, nn.Conv3d), "Conv"),
             (nn.Embedding, "Embedding"), (nn.LayerNorm, "LayerNorm"),
             (nn.GroupNorm, "GroupNorm"), (nn.modules.batchnorm._BatchNorm, "BatchNorm"))
    for cls, kind in kinds:
        if isinstance(module, cls):
            return kind
    return None


def _flax_kind(layer: Mapping[str, Any]) -> str:
    if "kernel" in layer:
        return "dense" if layer["kernel"].ndim == 2 else "conv"
    if "embedding" in layer:
        return "embed"
    return "norm"


def _creation_order(names: list[str]) -> list[str]:
    """Submodule names in flax's creation order, as far as the names tell it.

    A dict that went through a JAX transformation (``jax.jit(model.init)``, ``jax.tree.map``,
    a checkpoint restore) has its keys sorted as strings, so ``layers_10`` comes before
    ``layers_2``. flax numbers the instances of one name in creation order, so where the
    keys are in sorted order, each name's instances are put back in numeric order, every
    group keeping its places; a dict in insertion order (eager ``init``) is left as it is."""
    if names != sorted(names):
        return names
    parsed = [re.fullmatch(r"(.*?)(\d+)", n) for n in names]
    groups: dict[str, list[str]] = {}
    for n, m in zip(names, parsed, strict=True):
        groups.setdefault(m.group(1) if m else n, []).append(n)
    ordered = {g: iter(sorted(ns, key=lambda n: (len(n), n))) for g, ns in groups.items()}
    return [next(ordered[m.group(1) if m else n]) for n, m in zip(names, parsed, strict=True)]


def _flax_layers(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple]:
    """``(path, layer dict)`` for every dict of arrays, in creation order
    (:func:`_creation_order`)."""
    out = []
    leaves = {k: v for k, v in tree.items() if not isinstance(v, Mapping)}
    if leaves:
        out.append((prefix, leaves))
    for k in _creation_order([k for k, v in tree.items() if isinstance(v, Mapping)]):
        out.extend(_flax_layers(tree[k], (*prefix, k)))
    return out


class FlaxLayout(NamedTuple):
    """Pairs ``(kind, torch module path, flax path)``; what :func:`flax_layout` returns."""

    pairs: tuple[tuple[str, str, tuple[str, ...]], ...]
    num_batches_tracked: Mapping[str, Any]

    def params_to_flax(self, tree: Params) -> dict:
        """A torch-layout nested dict (params, or any elementwise buffer of them) -> flax's."""
        out: dict = {}
        for kind, tpath, fpath in self.pairs:
            node = _get(tree, tpath)
            dst = _setdefault(out, fpath)
            for tname, (fname, to_flax, _) in LAYOUTS[kind].items():
                if tname in node:
                    dst[fname] = _map(to_flax, node[tname])
            left = set(node) - set(LAYOUTS[kind]) - set(BATCH_STATS) - {"num_batches_tracked"}
            if left:
                raise ValueError(f"flax_layout: torch {tpath} ({kind}) has {sorted(left)}, "
                                 "which no flax weight takes")
        return out

    def params_to_torch(self, tree: Params) -> dict:
        """A flax params tree (or an elementwise buffer of it) -> torch's nested dict."""
        out: dict = {}
        for kind, tpath, fpath in self.pairs:
            node = _get(tree, fpath)
            dst = _setdefault(out, tuple(tpath.split(".")) if tpath else ())
            for tname, (fname, _, to_torch) in LAYOUTS[kind].items():
                if fname in node:
                    dst[tname] = _map(to_torch, node[fname])
        return out

    def batch_stats_to_flax(self, buffers: Params) -> dict:
        """torch's BatchNorm buffers -> flax's ``batch_stats`` (mean, var)."""
        out: dict = {}
        for kind, tpath, fpath in self.pairs:
            if kind == "BatchNorm":
                node = _get(buffers, tpath)
                _setdefault(out, fpath).update({BATCH_STATS[k]: v for k, v in node.items()
                                                if k in BATCH_STATS})
        return out

    def batch_stats_to_torch(self, batch_stats: Params) -> dict:
        """flax's ``batch_stats`` -> torch's buffers (``num_batches_tracked`` as read)."""
        out: dict = {}
        for kind, tpath, fpath in self.pairs:
            if kind == "BatchNorm":
                node = _get(batch_stats, fpath)
                dst = _setdefault(out, tuple(tpath.split(".")) if tpath else ())
                dst.update({k: node[f] for k, f in BATCH_STATS.items()})
                if tpath in self.num_batches_tracked:
                    dst["num_batches_tracked"] = self.num_batches_tracked[tpath]
        return out

    def state_to_flax(self, opt_state: Any) -> Any:
        """Every params-shaped field of an optimizer state, in flax's layout."""
        return _map_state(opt_state, self.params_to_flax, _torch_shaped(self))

    def state_to_torch(self, opt_state: Any) -> Any:
        """Every params-shaped field of an optimizer state, in torch's layout."""
        return _map_state(opt_state, self.params_to_torch, _flax_shaped(self))


def _get(tree: Any, path: str | tuple[str, ...]) -> Any:
    parts = path.split(".") if isinstance(path, str) else path
    for p in parts:
        if p:
            tree = tree[p]
    return tree


def _setdefault(tree: dict, path: tuple[str, ...]) -> dict:
    for p in path:
        tree = tree.setdefault(p, {})
    return tree


def _map(fn: Callable, x: Any) -> Any:
    return x if x is None or isinstance(x, optax.MaskedNode) else fn(x)


def _torch_shaped(layout: FlaxLayout) -> Callable[[Any], bool]:
    firsts = {tpath.split(".")[0] for _, tpath, _ in layout.pairs}
    return lambda x: isinstance(x, Mapping) and firsts <= set(x)


def _flax_shaped(layout: FlaxLayout) -> Callable[[Any], bool]:
    firsts = {fpath[0] for _, _, fpath in layout.pairs if fpath}
    return lambda x: isinstance(x, Mapping) and firsts <= set(x)


def _map_state(state: Any, fn: Callable, is_params: Callable[[Any], bool]) -> Any:
    """Apply ``fn`` to each params-shaped subtree of a state (NamedTuples, dicts, tuples)."""
    if is_params(state):
        return fn(state)
    if hasattr(state, "_fields"):
        return type(state)(*(_map_state(v, fn, is_params) for v in state))
    if isinstance(state, Mapping):
        return {k: _map_state(v, fn, is_params) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_map_state(v, fn, is_params) for v in state)
    return state


def flax_layout(module: Any, flax_variables: Mapping[str, Any],
                mapping: Mapping[str, str | tuple[str, ...]] | None = None) -> FlaxLayout:
    """Pair a torch module's layers with a flax.linen model's, to move weights between them.

    Args:
        module: the ``torch.nn.Module``, or (without torch) its layers as ``{module path:
            kind}`` with kinds from :data:`LAYOUTS` (``{"0": "Linear", "2": "Linear"}``; the
            torch shapes are then checked when the weights are converted).
        flax_variables: ``flax_model.init(...)``'s variables (``{"params": ..., "batch_stats":
            ...}``) or its ``params``.
        mapping: ``{torch module path: flax path}`` (``"encoder.0"`` -> ``("Dense_0",)`` or
            ``"Dense_0"``, ``/``-separated); by default the layers pair in order (torch's
            registration order, flax's creation order), each pair checked for kind and shape.

    Returns:
        A :class:`FlaxLayout` (``params_to_flax``, ``params_to_torch``, ``batch_stats_*``,
        ``state_*``).

    Raises:
        ValueError: a layer it cannot map (an unsupported torch layer with weights, a kind or
            shape that does not match, layers left on either side): the message lists every
            unmatched name on both sides.

    Example::

        >>> import torch, jax, jax.numpy as jnp, flax.linen as nn
        >>> from fnlearn.interop.torch import flax_layout, params_from_torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
        ...                           torch.nn.Linear(4, 2))
        >>> model = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(2)])
        >>> variables = model.init(jax.random.key(0), jnp.ones((1, 3)))
        >>> layout = flax_layout(net, variables)
        >>> params = layout.params_to_flax(params_from_torch(net).params)
        >>> params["layers_0"]["kernel"].shape
        (3, 4)
    """
    params = flax_variables.get("params", flax_variables)
    stats = flax_variables.get("batch_stats", {})
    torch_layers, unsupported = [], []
    if isinstance(module, Mapping):
        bad = {p: k for p, k in module.items() if k not in LAYOUTS}
        if bad:
            raise ValueError(f"flax_layout: unknown layer kinds {bad}; known: {list(LAYOUTS)}")
        torch_layers = [(p, k, None) for p, k in module.items()]
    for path, m in ([] if isinstance(module, Mapping) else module.named_modules()):
        own = [n for n, _ in m.named_parameters(recurse=False)]
        own += [n for n, _ in m.named_buffers(recurse=False)]
        if not own:
            continue
        kind = _torch_kind(m)
        if kind is None:
            unsupported.append(f"{path or '<root>'} ({type(m).__name__})")
        else:
            torch_layers.append((path, kind, m))
    flax_layers = _flax_layers(params)
    pairs, problems = [], []
    if mapping is not None:
        wanted = {t: (tuple(f.split("/")) if isinstance(f, str) else tuple(f))
                  for t, f in mapping.items()}
        by_path = dict(flax_layers)
        t_left = [t for t in torch_layers if t[0] not in wanted]
        f_used = set()
        for path, kind, m in torch_layers:
            if path in wanted:
                fpath = wanted[path]
                if fpath not in by_path:
                    problems.append(f"mapping[{path!r}] = {'/'.join(fpath)!r} is not a flax "
                                    "layer")
                    continue
                f_used.add(fpath)
                pairs.append((kind, path, fpath, m, by_path[fpath]))
        f_left = [(p, layer) for p, layer in flax_layers if p not in f_used]
    else:
        n = min(len(torch_layers), len(flax_layers))
        for (path, kind, m), (fpath, layer) in zip(torch_layers[:n], flax_layers[:n],
                                                   strict=True):
            pairs.append((kind, path, fpath, m, layer))
        t_left, f_left = torch_layers[n:], flax_layers[n:]
    nbt = {}
    for kind, path, fpath, m, layer in pairs:
        problems.extend(_check_pair(kind, path, fpath, m, layer, stats))
        if kind == "BatchNorm" and getattr(m, "num_batches_tracked", None) is not None:
            nbt[path] = jnp.asarray(int(m.num_batches_tracked))
    unmatched_t = [f"{p or '<root>'} ({k})" for p, k, _ in t_left] + unsupported
    unmatched_f = ["/".join(p) or "<root>" for p, _ in f_left]
    if problems or unmatched_t or unmatched_f:
        raise ValueError(
            "flax_layout: cannot map the torch module onto the flax variables.\n"
            + "".join(f"  {p}\n" for p in problems)
            + f"  unmatched torch layers: {unmatched_t or 'none'}\n"
            + f"  unmatched flax layers: {unmatched_f or 'none'}\n"
            + "  (supported: " + ", ".join(LAYOUTS) + "; pass mapping={torch path: flax path})")
    return FlaxLayout(tuple((k, p, f) for k, p, f, _, _ in pairs), nbt)


def _check_pair(kind: str, path: str, fpath: tuple[str, ...], m: Any, layer: Mapping,
                stats: Mapping) -> list[str]:
    where = f"torch {path or '<root>'} ({kind}) / flax {'/'.join(fpath)}"
    if FLAX_KINDS[kind] != _flax_kind(layer):
        return [f"{where}: a {kind} cannot be a flax layer with weights {sorted(layer)}"]
    if m is None:  # kinds given without a module: shapes are checked on conversion
        return []
    out = []
    own = dict(m.named_parameters(recurse=False))
    for tname, (fname, to_flax, _) in LAYOUTS[kind].items():
        if (tname in own) != (fname in layer):
            out.append(f"{where}: torch {tname} {'present' if tname in own else 'absent'}, "
                       f"flax {fname} {'present' if fname in layer else 'absent'}")
            continue
        if tname in own:
            shape = jax.eval_shape(to_flax, jax.ShapeDtypeStruct(tuple(own[tname].shape),
                                                                 jnp.float32)).shape
            if shape != tuple(layer[fname].shape):
                out.append(f"{where}: {tname} {tuple(own[tname].shape)} maps to {shape}, "
                           f"flax {fname} is {tuple(layer[fname].shape)}")
    if kind == "BatchNorm" and getattr(m, "running_mean", None) is not None:
        node = stats
        for p in fpath:
            node = node.get(p, {}) if isinstance(node, Mapping) else {}
        if set(node) != {"mean", "var"}:
            out.append(f"{where}: flax has no batch_stats mean/var for it")
    return out
