"""The per-leaf lift of the elementwise optimizers: one rule for one array, run over a pytree.

Every elementwise optimizer (SGD, RMSprop, Adagrad, Adam/AdamW, Adamax, NAdam, RAdam,
Adadelta, ASGD, Rprop) is written as a ``prepare`` step (per-step scalars computed once, and
the rule ``rule(grad, theta, *buffers) -> (update, *new_buffers)`` for one array) and handed
to :func:`elementwise`, which gives:

- ``update``: the rule mapped over the leaves by XLA (a complex leaf as two reals, torch's
  ``view_as_real``), composable with optax;
- ``apply(grads, state, params) -> (params, state)``: the same rule on the same scalars run in
  place by the fused CPU backend (:mod:`._fused`), one kernel call per group of leaves.

``fused`` picks who sees ``apply``, as torch's ``fused=None`` / ``True`` / ``False``:

- ``None`` (the default): a plain optax ``GradientTransformation``; its ``update`` carries the
  fused ``apply`` (:func:`fused_apply_of`), which :func:`update_and_apply` (and so
  :func:`fnlearn.train.make_train_step` and :func:`~fnlearn.optim.param_groups`) runs where
  the kernel runs (JAX's default backend the CPU, a built kernel library, float32/float64
  buffers) and the XLA rule elsewhere, without a word;
- ``True``: a :class:`FusedGradientTransformation` (``apply`` a field of its own); its
  ``update`` warns once that it bypasses the kernel (what ``optax.chain`` and other wrappers
  that keep only ``init`` and ``update`` call), and a missing kernel library warns once;
- ``False``: the XLA rule everywhere (``update`` + ``apply_updates``), e.g. to differentiate
  through a whole step.

:func:`update_and_apply` is what a train step runs: the fused ``apply`` where the optimizer
has one, else ``update`` and :func:`~fnlearn.optim.apply_updates`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .._tree import tree_map_tuple
from .._typing import Array, Params
from . import _fused
from ._base import GradientTransformation, apply_updates, real_pairs, require_params


class FusedGradientTransformation(NamedTuple):
    """An optax-protocol ``(init, update)`` pair plus a fused, in-place ``apply``.

    ``update`` is the ordinary XLA path (composable with ``optax.chain`` and friends);
    ``apply(grads, state, params) -> (params, state)`` is ``update`` followed by
    :func:`~fnlearn.optim.apply_updates`, done on CPU by one fused kernel call per 64 leaves.
    :func:`fnlearn.train.make_train_step` uses ``apply`` when the optimizer has it, and
    :func:`~fnlearn.optim.param_groups` carries it (each group's ``apply`` on its leaves).
    Wrappers that know only ``init`` and ``update`` (``optax.chain``,
    ``optax.inject_hyperparams``) drop ``apply``: the step then runs ``update``, the XLA rule,
    and ``update`` says so with one warning per optimizer.

    ``apply`` is meant for the train step, as torch's fused kernels are: on CPU it cannot be
    differentiated (``jax.grad`` through it, e.g. for hypergradients, raises a TypeError);
    use ``update`` + ``apply_updates`` for that. Under ``vmap`` (an ensemble of models) it
    runs one kernel call over the whole batch when the per-step scalars are shared, one call
    per member when they differ (e.g. a vmapped state's ``step``). Elsewhere (another default
    backend, bfloat16/float16 or complex buffers, a leaf whose dtype differs from the step's compute
    dtype) it runs the XLA rule.
    In place means: jit your step with params and state donated, and return them in the
    order they come in (``step(params, state, batch) -> (params, state, ...)``, as
    ``make_train_step`` does). JAX pairs donated inputs with outputs of the same shape first
    come, first served; ``jax.jit(apply, donate_argnums=(1, 2))`` pairs ``state`` buffers with
    ``params`` outputs, and XLA then copies every buffer to honour that pairing.
    Sharded params (``jit`` over several CPU devices) are updated shard by shard, each
    device on its own buffers, and keep their sharding.
    """

    init: Callable[[Params], Any]
    update: Callable[..., tuple[Params, Any]]
    apply: Callable[[Params, Any, Params], tuple[Params, Any]]


class Prepared(NamedTuple):
    """One step of an elementwise optimizer before it touches a buffer: what its ``prepare``
    returns, shared by the XLA ``update`` and the fused ``apply`` (:func:`elementwise`)."""

    params: Params | None  # what the rule reads as theta (None where it reads no params)
    rule: Callable[..., tuple]  # rule(grad, theta, *buffers) -> (update, *new_buffers)
    scalars: NamedTuple  # the kernel's per-step scalars by name (_fused.SCALARS[kernel])
    buffers: tuple[Params | None, ...]  # the state's per-parameter trees (None: unused)
    next_state: Callable[..., Any]  # next_state(*new_buffers) -> the new state


def elementwise(
    name: str,
    kernel: _fused.Kernel,
    flags: _fused.Flag | int,
    fused: bool | None,
    init: Callable[[Params], Any],
    prepare: Callable[[Params, Any, Params | None], Prepared],
):
    """An elementwise optimizer from its ``init`` and ``prepare``: ``update`` maps the rule
    over the leaves (XLA; a complex leaf as two reals, :func:`~._base.real_pairs`); ``apply``
    runs kernel ``kernel`` with ``flags`` on the same scalars, handed out as the module
    docstring says for ``fused`` None, True or False (the kernel library is loaded when
    ``apply`` is first traced on CPU; constructing builds and loads nothing)."""
    if fused is not None and not isinstance(fused, bool):
        raise TypeError(f"{name}: fused must be None, True or False, got {fused!r}")

    def update(grads: Params, state: Any, params: Params | None = None):
        step = prepare(grads, state, params)
        updates, *new = tree_map_tuple(real_pairs(step.rule), grads, step.params, *step.buffers,
                                       n_out=1 + len(step.buffers))
        return updates, step.next_state(*new)

    def apply(grads: Params, state: Any, params: Params | None = None):
        params = require_params(params, name, "the fused apply updates in place")
        step = prepare(grads, state, params)
        params, new = _fused.fused_apply(kernel, flags, step.scalars, real_pairs(step.rule), grads,
                                         params, step.buffers, warn=fused is True)
        return params, step.next_state(*new)

    if fused is False:
        return GradientTransformation(init, update)
    if fused is None:
        return GradientTransformation(init, carry_fused_apply(update, apply))
    warned = []

    def bypassing_update(grads: Params, state: Any, params: Params | None = None):
        if not warned:
            warned.append(True)
            warnings.warn(
                f"{name}(fused=True).update runs the unfused XLA rule: the fused kernel runs "
                "only through apply (fnlearn.optim.update_and_apply, train.make_train_step, "
                "param_groups). A wrapper such as optax.chain or optax.inject_hyperparams "
                "keeps only init and update, so its step is not fused; build the optimizer "
                "with fused=False there.", UserWarning, stacklevel=2)
        return update(grads, state, params)

    return FusedGradientTransformation(init, bypassing_update, apply)


def carry_fused_apply(update: Callable[..., Any], apply: Callable[..., Any]) -> Callable[..., Any]:
    """``update``, carrying ``apply`` for :func:`fused_apply_of` to find: how a ``fused=None``
    optimizer (and a ``param_groups`` of them) stays a plain optax transformation whose
    in-place step ``update_and_apply`` still reaches."""
    update.fused_apply = apply  # type: ignore[attr-defined]
    return update


def fused_apply_of(optimizer: Any) -> Callable[[Params, Any, Params], tuple[Params, Any]] | None:
    """The in-place ``apply(grads, state, params) -> (params, state)`` an optimizer carries:
    a :class:`FusedGradientTransformation`'s own, the one the ``update`` of a ``fused=None``
    optimizer carries, or None (``fused=False``, any other optax transformation, or a wrapper
    such as ``optax.chain`` that makes an ``update`` of its own)."""
    if isinstance(optimizer, FusedGradientTransformation):
        return optimizer.apply
    return getattr(getattr(optimizer, "update", None), "fused_apply", None)


def update_and_apply(
    optimizer: Any, grads: Params, state: Any, params: Params, *, after: Array | None = None
) -> tuple[Params, Any]:
    """One optimizer step, ``(new_params, new_state)``: the fused in-place ``apply`` the
    optimizer carries (:func:`fused_apply_of`: fnlearn's elementwise optimizers unless built
    with ``fused=False``), else ``update`` followed by :func:`apply_updates` (any optax
    ``GradientTransformation``). What :func:`fnlearn.train.make_train_step` runs.

    ``after`` (optional, e.g. the loss): the update runs after everything ``after`` needs.
    Pass the loss when it reads the parameters outside their gradients' chain (a penalty
    ``sum(w ** 2)``): without the order, XLA copies each such parameter before the in-place
    update overwrites it. The numbers are the same either way (the state's scalar numbers,
    its step counts, are multiplied by a 1 computed from ``after``; every fnlearn optimizer
    has a step count), and a state with no scalar number (``optax.sgd`` without momentum)
    gets no order."""
    if after is not None:
        state = _after(after, state)
    apply = fused_apply_of(optimizer)
    if apply is not None:
        return apply(grads, state, params)
    updates, state = optimizer.update(grads, state, params)
    return apply_updates(params, updates), state


def _after(value: Array, tree: Any) -> Any:
    """``tree`` with the same values, its scalar number leaves computed after ``value``: each
    is multiplied by a 1 that XLA cannot fold away (``1 - min(any(isnan(value)), 0)``)."""
    one = 1 - jnp.minimum(jnp.any(jnp.isnan(value)).astype(jnp.int32), 0)

    def tie(x: Any) -> Any:
        if (isinstance(x, jax.Array) and x.ndim == 0
                and (jnp.issubdtype(x.dtype, jnp.integer)
                     or jnp.issubdtype(x.dtype, jnp.floating))):
            return x * one.astype(x.dtype)
        return x

    return jax.tree.map(tie, tree)
