"""The torch side of a cross-check: torch.optim classes and torch loss functions, run in numpy.

torch is optional: nothing here imports it at module level. A side is recognised as torch's
without importing torch (``TorchOptimizer``/``TorchFunction`` wrappers, or objects whose module
is ``torch.*``); running it imports torch and raises a clear ``ImportError`` when it is missing.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

_TORCH_DTYPES = ("float64", "float32")


def import_torch() -> Any:
    """``import torch``, with a message saying which extra installs it."""
    try:
        import torch
    except ImportError as e:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "this cross-check has a torch side but torch is not installed; "
            'install it with `pip install "fnlearn[torch]"` (torch==2.13.0)'
        ) from e
    return torch


class TorchOptimizer:
    """A torch.optim configuration to run as one side of :func:`compare`.

    ``TorchOptimizer(torch.optim.Adam, lr=1e-3, amsgrad=True)`` builds
    ``torch.optim.Adam(params, lr=1e-3, amsgrad=True)`` over fresh leaf tensors. Optional extras
    reproduce a typical torch training step around ``optimizer.step()``:

    * ``scheduler``: a function ``optimizer -> lr_scheduler``; ``scheduler.step()`` is called
      after every ``optimizer.step()`` (torch's convention; the k-th step uses ``schedule(k)``).
    * ``clip_grad_norm``: ``torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)`` before
      each step; ``clip_grad_value``: ``torch.nn.utils.clip_grad_value_(params, value)``.

    A plain ``(torch.optim.Adam, dict(lr=1e-3))`` tuple or a bare optimizer class (torch's
    defaults) is accepted wherever a ``TorchOptimizer`` is.
    """

    def __init__(
        self,
        cls: type,
        /,
        *,
        scheduler: Callable[[Any], Any] | None = None,
        clip_grad_norm: float | None = None,
        clip_grad_value: float | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(cls, type):
            raise TypeError(f"TorchOptimizer: cls must be a torch.optim class, got {cls!r}")
        self.cls = cls
        self.kwargs = dict(kwargs)
        self.scheduler = scheduler
        self.clip_grad_norm = clip_grad_norm
        self.clip_grad_value = clip_grad_value

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in self.kwargs.items()]
        name = f"{self.cls.__module__}.{self.cls.__qualname__}"
        if name.startswith("torch.optim."):
            name = "torch.optim." + self.cls.__qualname__
        text = f"{name}({', '.join(args)})"
        if self.clip_grad_norm is not None:
            text = f"clip_grad_norm_({self.clip_grad_norm!r}) + {text}"
        if self.clip_grad_value is not None:
            text = f"clip_grad_value_({self.clip_grad_value!r}) + {text}"
        if self.scheduler is not None:
            text += " + scheduler"
        return text


class TorchFunction:
    """Marks a callable as torch code for :func:`compare_losses` (it gets torch tensors).

    Functions of ``torch.*`` modules (``torch.nn.functional.cross_entropy``, a
    ``functools.partial`` of one) and ``torch.nn.Module`` instances are recognised without it;
    wrap a lambda or a function of your own: ``TorchFunction(lambda x, y: F.mse_loss(x, y))``.
    """

    def __init__(self, fn: Callable[..., Any], /, name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"TorchFunction: fn must be callable, got {fn!r}")
        self.fn = fn
        self.name = name

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __repr__(self) -> str:
        return self.name or describe_callable(self.fn)


def _short_repr(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."


def _module_of(obj: Any) -> str:
    while isinstance(obj, functools.partial):
        obj = obj.func
    module = getattr(obj, "__module__", None)
    return module if isinstance(module, str) else type(obj).__module__


def describe_callable(fn: Any) -> str:
    """A short readable name for a function, partial or callable object."""
    if isinstance(fn, TorchFunction):
        return repr(fn)
    if isinstance(fn, functools.partial):
        args = [repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in fn.keywords.items()]
        return f"{describe_callable(fn.func)}({', '.join(['...', *args])})"
    name = getattr(fn, "__qualname__", None)
    if name is None:  # a callable object (an nn.Module instance...)
        return _short_repr(fn)
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module and name != "<lambda>" else name


def is_torch_optimizer(side: Any) -> bool:
    """True for a ``TorchOptimizer``, a ``(torch.optim class, kwargs)`` tuple or a bare class."""
    if isinstance(side, TorchOptimizer):
        return True
    if isinstance(side, tuple) and len(side) == 2 and isinstance(side[1], dict):
        side = side[0]
    return isinstance(side, type) and _module_of(side).startswith("torch")


def as_torch_optimizer(side: Any) -> TorchOptimizer:
    """Normalise the accepted torch-side spellings to a ``TorchOptimizer``."""
    if isinstance(side, TorchOptimizer):
        return side
    if isinstance(side, tuple):
        return TorchOptimizer(side[0], **side[1])
    return TorchOptimizer(side)


def is_torch_function(fn: Any) -> bool:
    """True for a ``TorchFunction``, a ``torch.*`` function (or partial of one), an nn.Module."""
    if isinstance(fn, TorchFunction):
        return True
    if "torch" not in sys.modules:
        return False
    return _module_of(fn).split(".")[0] == "torch"


def _torch_dtype(torch: Any, dtype: str) -> Any:
    if dtype not in _TORCH_DTYPES:
        raise ValueError(f"dtype={dtype!r}: the torch side runs in one of {_TORCH_DTYPES}")
    return getattr(torch, dtype)


@contextlib.contextmanager
def default_dtype(torch: Any, dtype: Any) -> Iterator[None]:
    """Run with torch's default dtype set to the comparison dtype, restored afterwards.

    torch keeps some per-parameter scalars in the default dtype (NAdam's ``mu_product``,
    ASGD's ``eta`` and ``mu``), so a float64 run is float64 throughout only with
    ``torch.set_default_dtype(torch.float64)``, as a float64 torch script sets it.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def run_optimizer(
    spec: TorchOptimizer, p0: Sequence[np.ndarray], grads: Sequence[np.ndarray], dtype: str
) -> list[np.ndarray]:
    """The parameter trajectory of a torch optimizer fed a fixed gradient sequence.

    ``p0`` holds the initial leaves, ``grads`` the gradients stacked over steps (leading axis);
    the result holds, per leaf, the parameters after each step, shape ``(steps, *leaf.shape)``.
    torch's default dtype is the comparison dtype during the run (see :func:`default_dtype`).
    """
    torch = import_torch()
    tdtype = _torch_dtype(torch, dtype)
    with default_dtype(torch, tdtype):
        return _run_optimizer(torch, spec, p0, grads, tdtype)


def _run_optimizer(torch: Any, spec: TorchOptimizer, p0: Sequence[np.ndarray],
                   grads: Sequence[np.ndarray], tdtype: Any) -> list[np.ndarray]:
    params = [torch.tensor(np.asarray(p), dtype=tdtype).requires_grad_(True) for p in p0]
    opt = spec.cls(params, **spec.kwargs)
    scheduler = spec.scheduler(opt) if spec.scheduler is not None else None
    steps = grads[0].shape[0] if grads else 0
    traj = [np.empty((steps, *np.shape(p)), dtype=np.float64) for p in p0]
    for k in range(steps):
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.tensor(np.asarray(g[k]), dtype=tdtype)
        if spec.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, spec.clip_grad_norm)
        if spec.clip_grad_value is not None:
            torch.nn.utils.clip_grad_value_(params, spec.clip_grad_value)
        opt.step()
        if scheduler is not None and k + 1 < steps:
            scheduler.step()
        for out, p in zip(traj, params, strict=True):
            out[k] = p.detach().to(torch.float64).numpy()
    return traj


def value_and_grads(
    fn: Any,
    inputs: Sequence[Any],
    wrt: Sequence[int],
    dtype: str,
    cotangent: np.ndarray | None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Value of a torch function and its gradients with respect to ``inputs[i]``, ``i in wrt``.

    Floating inputs become ``dtype`` tensors, integer inputs int64, booleans stay boolean;
    Python scalars pass unchanged. A non-scalar output is contracted with ``cotangent``.
    """
    torch = import_torch()
    tdtype = _torch_dtype(torch, dtype)
    with default_dtype(torch, tdtype):
        return _value_and_grads(torch, fn, inputs, wrt, tdtype, cotangent)


def _value_and_grads(torch: Any, fn: Any, inputs: Sequence[Any], wrt: Sequence[int],
                     tdtype: Any, cotangent: np.ndarray | None) -> tuple[np.ndarray, list]:
    args = []
    for i, x in enumerate(inputs):
        if isinstance(x, (bool, int, float)) or x is None:
            args.append(x)
            continue
        a = np.asarray(x)
        if np.issubdtype(a.dtype, np.floating):
            t = torch.tensor(a.astype(np.float64), dtype=tdtype)
            args.append(t.requires_grad_(True) if i in wrt else t)
        elif a.dtype == np.bool_:
            args.append(torch.tensor(a))
        else:
            args.append(torch.tensor(a.astype(np.int64)))
    call = fn.fn if isinstance(fn, TorchFunction) else fn
    out = call(*args)
    value = out.detach().to(torch.float64).numpy()
    if not wrt:
        return value, []
    targets = [args[i] for i in wrt]
    if not all(isinstance(t, torch.Tensor) and t.requires_grad for t in targets):
        raise TypeError(f"wrt={tuple(wrt)} must index floating array inputs")
    if cotangent is None:
        total = out.sum()
    else:
        total = (out * torch.tensor(cotangent, dtype=out.dtype)).sum()
    grads = torch.autograd.grad(total, targets, allow_unused=True)
    result = []
    for t, g in zip(targets, grads, strict=True):
        g = torch.zeros_like(t) if g is None else g
        result.append(g.detach().to(torch.float64).numpy())
    return value, result
