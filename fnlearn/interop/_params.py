"""Model weights: torch's ``state_dict`` <-> a nested dict pytree keyed by the module path.

``"encoder.0.weight"`` is ``params["encoder"]["0"]["weight"]``; dicts keep torch's order
(``named_parameters()``), which is the order torch's optimizers number parameters in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._typing import Params
from ..flat import trees

#: Buffer names recognised in a bare state dict (a module says it itself, ``named_buffers()``).
BUFFER_NAMES = ("running_mean", "running_var", "num_batches_tracked")


def import_torch() -> Any:
    """torch, imported on first use (it is an optional dependency of fnlearn)."""
    try:
        import torch
    except ImportError as e:  # pragma: no cover - exercised only without torch
        raise ImportError("fnlearn.interop.torch needs PyTorch: pip install fnlearn[torch]") from e
    return torch


class TorchWeights(NamedTuple):
    """What :func:`params_from_torch` returns: the trainable ``params`` (torch's
    ``named_parameters()``) and the ``buffers`` (``named_buffers()``: BatchNorm's running
    statistics and ``num_batches_tracked``), each a nested dict keyed by the module path."""

    params: Params
    buffers: Params

    @property
    def names(self) -> tuple[str, ...]:
        """The parameters' dotted names in torch's order (``named_parameters()``), the order
        torch's optimizers number them in. (A dict rebuilt by ``jax.tree.map`` has its keys
        sorted; this order is the one :func:`params_from_torch` returned.)"""
        return tuple(n for n, _ in named_leaves(self.params))


def is_tensor(x: Any) -> bool:
    """``torch.is_tensor(x)``, without importing torch for anything else."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def to_numpy(t: Any) -> np.ndarray:
    """A torch tensor (or an array) as a NumPy array of the same dtype (bfloat16 through
    ml_dtypes)."""
    if not is_tensor(t):
        return np.asarray(t)
    torch = import_torch()
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(jnp.bfloat16)
    return t.numpy().copy()


def to_jax(t: Any, where: str) -> jax.Array:
    """A torch tensor (or array) as a JAX array of the same dtype.

    Without ``jax_enable_x64`` a float64 tensor is refused (JAX would silently round it to
    float32) and an int64 one (``num_batches_tracked``) becomes int32 when its values fit.
    """
    a = to_numpy(t)
    if not jax.config.jax_enable_x64 and a.dtype.itemsize == 8:
        if a.dtype.kind == "f" or a.dtype.kind == "c":
            raise ValueError(f"{where} is {a.dtype}: enable float64 in JAX first "
                             "(jax.config.update('jax_enable_x64', True))")
        if a.dtype.kind in "iu":
            if a.size and (a.max() > np.iinfo(np.int32).max or a.min() < np.iinfo(np.int32).min):
                raise ValueError(f"{where} ({a.dtype}) does not fit int32; enable jax_enable_x64")
            a = a.astype(np.int32)
    return jnp.asarray(a)


def to_torch_tensor(x: Any, numpy: bool = False) -> Any:
    """A JAX/NumPy array as a torch tensor of the same dtype (bfloat16 included); with
    ``numpy``, a NumPy copy instead (for a check that runs without torch)."""
    a = np.asarray(x)
    if numpy:
        return np.array(a, copy=True)
    torch = import_torch()
    if a.dtype == jnp.bfloat16:
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.array(a, copy=True))


def nest(flat: Mapping[str, Any]) -> dict:
    """``{"a.b": x}`` -> ``{"a": {"b": x}}``, keeping the order of ``flat``."""
    out: dict = {}
    for name, value in flat.items():
        node = out
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{name!r} nests under a tensor of the same name")
        node[leaf] = value
    return out


def named_leaves(tree: Params) -> Iterator[tuple[str, Any]]:
    """``(dotted path, leaf)`` in the tree's own order: a dict's insertion order (torch's
    parameter order for :func:`params_from_torch`'s result), a sequence's index order;
    any other pytree in JAX's flattening order."""
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            for name, leaf in named_leaves(v):
                yield (f"{k}.{name}" if name else str(k)), leaf
    elif isinstance(tree, (list, tuple)) and not hasattr(tree, "_fields"):
        for i, v in enumerate(tree):
            for name, leaf in named_leaves(v):
                yield (f"{i}.{name}" if name else str(i)), leaf
    elif tree is None:
        return
    else:
        leaves = jax.tree_util.tree_leaves_with_path(tree)
        if len(leaves) == 1 and not leaves[0][0]:
            yield "", leaves[0][1]
        else:
            for path, leaf in leaves:
                yield dotted(path), leaf


def dotted(path: tuple) -> str:
    """A JAX key path as a dotted name: ``(DictKey('0'), DictKey('weight'))`` -> ``0.weight``."""
    return ".".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
                    for k in path)


def params_from_torch(module_or_state_dict: Any, *, buffer_names: Any = None) -> TorchWeights:
    """A torch module's weights (or a ``state_dict``) as nested-dict pytrees.

    ``"encoder.0.weight"`` becomes ``params["encoder"]["0"]["weight"]``, a JAX array of the
    tensor's dtype (float64/32/16, bfloat16, integers). Trainable parameters and buffers are
    separated as ``named_parameters()`` / ``named_buffers()`` separate them; for a bare state
    dict, buffers are the entries named ``running_mean``, ``running_var`` or
    ``num_batches_tracked`` (or those listed in ``buffer_names``).

    Args:
        module_or_state_dict: a ``torch.nn.Module`` or a mapping ``name -> tensor`` (NumPy
            arrays are taken too).
        buffer_names: for a state dict, the full names of its buffers (overrides the rule).

    Returns:
        :class:`TorchWeights` ``(params, buffers)``, dicts in torch's order.

    Raises:
        ValueError: a float64 tensor without ``jax_enable_x64``; a name nested under another.
        TypeError: neither a module nor a mapping of tensors.

    Example::

        >>> import torch
        >>> from fnlearn.interop.torch import params_from_torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
        >>> params, buffers = params_from_torch(net)
        >>> params["0"]["weight"].shape, sorted(buffers["1"])
        ((2, 3), ['num_batches_tracked', 'running_mean', 'running_var'])
    """
    if hasattr(module_or_state_dict, "named_parameters"):  # a torch.nn.Module
        module = module_or_state_dict
        flat_params = dict(module.named_parameters())
        flat_buffers = dict(module.named_buffers())
    elif isinstance(module_or_state_dict, Mapping):
        sd = module_or_state_dict
        for name, t in sd.items():
            if not (is_tensor(t) or isinstance(t, np.ndarray)):
                raise TypeError(f"params_from_torch: state_dict[{name!r}] is a "
                                f"{type(t).__name__}, not a tensor")
        if buffer_names is None:
            is_buffer = {n: n.rsplit(".", 1)[-1] in BUFFER_NAMES for n in sd}
        else:
            unknown = set(buffer_names) - set(sd)
            if unknown:
                raise ValueError(f"params_from_torch: buffer_names not in the state dict: "
                                 f"{sorted(unknown)}")
            is_buffer = {n: n in set(buffer_names) for n in sd}
        flat_params = {n: t for n, t in sd.items() if not is_buffer[n]}
        flat_buffers = {n: t for n, t in sd.items() if is_buffer[n]}
    else:
        raise TypeError("params_from_torch: expected a torch.nn.Module or a state dict, got "
                        f"{type(module_or_state_dict).__name__}")
    return TorchWeights(nest({n: to_jax(t, f"params[{n!r}]") for n, t in flat_params.items()}),
                        nest({n: to_jax(t, f"buffers[{n!r}]") for n, t in flat_buffers.items()}))


def params_to_torch(params: Params, buffers: Params | None = None) -> dict[str, Any]:
    """The torch ``state_dict`` of nested-dict ``params`` (and ``buffers``): dotted names,
    torch tensors of the same dtypes; ``module.load_state_dict(sd, strict=True)`` takes it.

    A :class:`TorchWeights` may be passed as ``params``. Example::

        >>> import torch
        >>> from fnlearn.interop.torch import params_from_torch, params_to_torch
        >>> net = torch.nn.Linear(3, 2)
        >>> net.load_state_dict(params_to_torch(*params_from_torch(net)), strict=True)
        <All keys matched successfully>
    """
    if isinstance(params, TorchWeights) and buffers is None:
        params, buffers = params
    params = trees(params)  # a Flat: its parameters, named as torch names them
    out = {name: to_torch_tensor(x) for name, x in named_leaves(params)}
    for name, x in named_leaves(buffers if buffers is not None else {}):
        if name in out:
            raise ValueError(f"params_to_torch: {name!r} is both a parameter and a buffer")
        out[name] = to_torch_tensor(x)
    return out
