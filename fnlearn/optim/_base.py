"""The optimizer protocol (optax's), apply_updates, and the checks every optimizer uses."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._typing import Array, Params
from .._validate import check_range, hyperparameter, is_number
from ..flat import Flat

#: optax's two-field protocol ``(init, update)``; fnlearn optimizers are instances of it, so
#: ``optax.chain``, ``optax.inject_hyperparams``, flax ``TrainState`` and ``nnx.Optimizer``
#: take them unchanged.
GradientTransformation = optax.GradientTransformation
GradientTransformationExtraArgs = optax.GradientTransformationExtraArgs


def apply_updates(params: Params, updates: Params) -> Params:
    """``params + updates`` leafwise, cast back to each parameter's dtype.

    Equivalent of :func:`optax.apply_updates`; ``None`` updates leave the parameter as is.
    """
    return jax.tree.map(
        lambda p, u: p if u is None else jnp.asarray(p + u.astype(p.dtype), dtype=p.dtype),
        params,
        updates,
        is_leaf=lambda x: x is None,
    )


def scalar_dtype(tree: Any) -> np.dtype:
    """The dtype of per-step scalars: the widest floating leaf dtype, never below float32.

    ``beta**t`` in bfloat16 rounds to 1, so scalar arithmetic never runs below float32; with
    float64 parameters it runs in float64, as torch's Python-float scalars do. A complex leaf
    counts as its real and imaginary parts (complex128: float64), as torch's optimizers see
    it (``torch.view_as_real``).
    """
    widest = np.dtype(np.float32)
    for leaf in jax.tree.leaves(tree):
        dt = np.dtype(getattr(leaf, "dtype", None) or jnp.asarray(leaf).dtype)
        if jnp.issubdtype(dt, jnp.complexfloating):
            dt = np.dtype(jnp.finfo(dt).dtype)
        if jnp.issubdtype(dt, jnp.floating) and dt.itemsize > widest.itemsize:
            widest = dt
    return widest


def fill_like(p: Array, value: Any) -> Array:
    """``jnp.full_like(p, value)``, except that a complex ``p`` gets ``value + value*1j``.

    torch's optimizers treat a complex parameter as two independent reals
    (``torch.view_as_real``), so a state buffer that starts at a value (Adagrad's
    ``initial_accumulator_value``, Rprop's step size ``lr``) starts at it in both parts.
    """
    if jnp.iscomplexobj(p):
        v = jnp.asarray(value, dtype=jnp.finfo(p.dtype).dtype)
        return jnp.full(p.shape, jax.lax.complex(v, v), dtype=p.dtype)
    return jnp.full_like(p, value)


def real_pairs(rule: Callable[..., tuple]) -> Callable[..., tuple]:
    """An elementwise rule ``rule(grad, theta, *buffers) -> (update, *new_buffers)`` that
    takes a complex leaf as torch's optimizers do: as two independent reals.

    torch views every complex parameter, gradient and state buffer as real
    (``torch.view_as_real``: ``z`` -> ``[..., (z.real, z.imag)]``), runs the real rule on
    that, and views the results as complex again; so does this wrapper (``None`` passes
    through). Real leaves go to ``rule`` unchanged.
    """

    def as_real(z):
        return None if z is None else jnp.stack([jnp.real(z), jnp.imag(z)], axis=-1)

    def as_complex(x):
        return None if x is None else jax.lax.complex(x[..., 0], x[..., 1])

    def wrapped(grad, theta, *buffers):
        if not jnp.iscomplexobj(grad):
            return rule(grad, theta, *buffers)
        outs = rule(as_real(grad), as_real(theta), *map(as_real, buffers))
        return tuple(map(as_complex, outs))

    return wrapped


def is_zero(value: Any) -> bool:
    """True only for a static number equal to 0: the one safe Python branch on a hyperparameter."""
    return is_number(value) and value == 0


def check_nonnegative(value: Any, what: str) -> None:
    """Raise ``ValueError("Invalid <what>: <value>")`` (torch's wording) for a concrete negative
    or NaN value (a number or a concrete one-element array); schedules and traced values are
    not checked."""
    check_range(value, f"Invalid {what}", lambda v: v >= 0)


def check_adam_beta(value: Any, index: int, what: str = "beta parameter") -> None:
    """Torch's ``0 <= beta < 1`` check: ``ValueError("Invalid beta parameter at index i: b")``."""
    check_range(value, f"Invalid {what} at index {index}", lambda v: 0.0 <= v < 1.0)


def check_adam_family(lr: Any, eps: Any, betas: tuple[Any, Any], weight_decay: Any) -> None:
    """The checks torch's Adam, AdamW, Adamax, NAdam and RAdam share, in torch's order and
    wording: lr, eps and weight_decay non-negative, each beta in ``[0, 1)``."""
    check_nonnegative(lr, "learning rate")
    check_nonnegative(eps, "epsilon value")
    check_adam_beta(betas[0], 0)
    check_adam_beta(betas[1], 1)
    check_nonnegative(weight_decay, "weight_decay value")


def hyperparameters(owner: str, **values: Any) -> tuple[Any, ...]:
    """Each numeric hyperparameter through :func:`fnlearn._validate.hyperparameter` (numbers,
    one-element arrays, traced scalars and schedules accepted; the rest refused with an error
    naming ``owner`` and the argument), in the order given."""
    return tuple(hyperparameter(v, k, owner) for k, v in values.items())


def pair(value: Any, arg: str, owner: str, example: str) -> tuple[Any, Any]:
    """A two-element hyperparameter (``betas``, ``etas``, ``step_sizes``), each element through
    :func:`fnlearn._validate.hyperparameter`; a single number gets a ``TypeError`` that shows
    the pair to write (torch: "'float' object is not subscriptable")."""
    if isinstance(value, (jax.Array, np.ndarray)) and value.shape == (2,) and not callable(value):
        value = (value[0], value[1])
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{owner}: {arg} must be a pair, e.g. {arg}={example}; got "
                        f"{value!r}")
    return (hyperparameter(value[0], f"{arg}[0]", owner),
            hyperparameter(value[1], f"{arg}[1]", owner))


def adam_hyperparameters(owner: str, lr: Any, betas: Any, eps: Any, weight_decay: Any,
                         **extra: Any) -> tuple[Any, ...]:
    """``(lr, betas, eps, weight_decay, *extra)`` of an Adam-family optimizer: converted by
    :func:`hyperparameters` and :func:`pair` and checked by :func:`check_adam_family`, in
    torch's order; ``extra`` (NAdam's ``momentum_decay``) is converted with them and checked by
    the caller."""
    lr, eps, weight_decay, *rest = hyperparameters(owner, lr=lr, eps=eps,
                                                   weight_decay=weight_decay, **extra)
    betas = pair(betas, "betas", owner, "(0.9, 0.999)")
    check_adam_family(lr, eps, betas, weight_decay)
    return (lr, betas, eps, weight_decay, *rest)


def _looks_like_params(value: Any) -> bool:
    """A container or iterator of arrays (torch's ``model.parameters()`` or a params pytree)."""
    if isinstance(value, Flat) or isinstance(value, Iterator):
        return True
    if isinstance(value, (list, tuple, dict)):
        return any(isinstance(x, (jax.Array, np.ndarray)) for x in jax.tree.leaves(value))
    return False


def optimizer_factory(factory: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an optimizer factory whose first argument is ``lr`` so that torch's calling form
    ``adam(params, lr=1e-3)`` (params first: Python would say "got multiple values for
    argument 'lr'") gets a ``TypeError`` that shows the JAX form. Signature, name and
    docstring are the factory's (``help()`` and ``inspect.signature`` see them)."""
    name = factory.__name__

    @functools.wraps(factory)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if args and ("lr" in kwargs or _looks_like_params(args[0])):
            raise TypeError(
                f"{name}: fnlearn optimizers do not take the parameters (torch's form "
                "Optimizer(params, lr=...)); the first argument is lr. Write "
                f"opt = {name}(lr=...) and state = opt.init(params): the params go to init "
                f"and update, not to the factory (help(fnlearn.optim.{name}) shows a step)")
        return factory(*args, **kwargs)

    return wrapped


def require_params(params: Params | None, name: str, why: str) -> Params:
    """Raise a clear ``ValueError`` when ``update`` needs params but got ``None``."""
    if params is None:
        raise ValueError(f"{name}: update() needs `params` because {why}; pass params=...")
    return params


def torch_lerp(start: Array, end: Array, weight: Array) -> Array:
    """torch's ``lerp(start, end, w)``: ``start + w (end - start)`` for ``|w| < 0.5``, else
    ``end - (end - start)(1 - w)`` (exact at ``w = 1``: Adafactor's first step)."""
    diff = end - start
    return jnp.where(jnp.abs(weight) < 0.5, start + weight * diff, end - diff * (1 - weight))


def reject_complex(tree: Any, name: str, arg: str, why: str,
                   error: type[Exception] = TypeError) -> None:
    """Raise ``error("<name>: <arg><path> is complex (<dtype>); <why>")`` at the first complex
    leaf of ``tree`` (for the transformations torch refuses complex tensors in)."""
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        if jnp.iscomplexobj(x):
            raise error(f"{name}: {arg}{jax.tree_util.keystr(path)} is complex ({x.dtype}); "
                        f"{why}")


def per_parameter(init: Callable[[Params], Any], update: Callable[..., tuple[Params, Any]]
                  ) -> GradientTransformation:
    """A transformation whose rule depends on each parameter's shape (Adafactor's factors,
    Muon's matrices), made to accept a :class:`~fnlearn.flat.Flat`: ``init`` and ``update``
    see its tree of views, and the updates come back in the ``Flat``'s layout (the state
    keeps one array per parameter)."""

    def tree_of(x: Any) -> Any:
        return x.tree() if isinstance(x, Flat) else x

    def flat_init(params: Params) -> Any:
        return init(tree_of(params))

    def flat_update(grads: Params, state: Any, params: Params | None = None):
        updates, state = update(tree_of(grads), state, tree_of(params))
        return (grads.like(updates) if isinstance(grads, Flat) else updates), state

    return GradientTransformation(flat_init, flat_update)
