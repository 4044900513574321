r"""torch's ``param_groups``: different optimizers or hyperparameters for different parts of the
parameter pytree, in one transformation with one state pytree.

torch::

    torch.optim.AdamW([
        {"params": decay_params, "weight_decay": 0.05},
        {"params": no_decay_params, "weight_decay": 0.0},
        {"params": backbone_params, "lr": 1e-4},
    ], lr=1e-3)
    for p in frozen_params: p.requires_grad_(False)

fnlearn::

    param_groups(
        {"decay": adamw(1e-3, weight_decay=0.05),
         "no_decay": adamw(1e-3, weight_decay=0.0),
         "backbone": adamw(1e-4),
         "frozen": None},
        labels,          # a pytree of labels like params, or a function params -> labels
    )

Built on :func:`optax.partition`: each group's transformation sees only its own leaves (the
others are ``optax.MaskedNode`` in its state, so a group keeps buffers only for its own
parameters) and the state is one ``optax.PartitionState`` pytree. Groups keep their fused
``apply`` (:func:`~fnlearn.optim.update_and_apply` runs each group's own ``apply``, or
``update`` and ``apply_updates``, on that group's leaves): with a ``fused=True`` group the
result is a :class:`~fnlearn.optim.FusedGradientTransformation`, with the default
``fused=None`` a plain transformation whose ``update`` carries it, as each group's does.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import optax

from .._typing import Params
from ._base import GradientTransformation
from ._lift import (
    FusedGradientTransformation,
    carry_fused_apply,
    fused_apply_of,
    update_and_apply,
)

#: The label of frozen parameters: zero update, no optimizer state (torch:
#: ``requires_grad=False``, or a parameter left out of every group).
FROZEN = "frozen"


def _resolve_labels(labels: Any, tree: Params) -> Any:
    return labels(tree) if callable(labels) else labels


def _check_labels(labels: Any, groups: Mapping[Hashable, Any]) -> None:
    used = set(jax.tree.leaves(labels))
    unknown = [label for label in used if label not in groups]
    if unknown:
        raise ValueError(
            f"param_groups: labels [{', '.join(sorted(map(repr, unknown)))}] have no group; "
            f"groups are [{', '.join(sorted(map(repr, groups)))}] (use {FROZEN!r} or a None "
            "group for frozen params)"
        )


def param_groups(
    groups: Mapping[Hashable, GradientTransformation | None],
    labels: Any | Callable[[Params], Any],
) -> GradientTransformation:
    r"""torch's parameter groups: one transformation per label, applied to the leaves with it.

    Args:
        groups: ``{label: transformation}``. A ``None`` transformation freezes its
            parameters: their update is zero and no optimizer state is kept for them. The
            label :data:`FROZEN` (``'frozen'``) is frozen unless ``groups`` maps it to a
            transformation.
        labels: a pytree with the params' structure (or a prefix of it) whose leaves are
            labels, or a function ``params -> labels`` (called with the params in ``init``
            and with the gradients in ``update``, so it must depend on the tree's structure,
            paths and shapes only).

    Returns:
        A :class:`GradientTransformation` (``optax.partition`` underneath) whose state is one
        ``PartitionState`` pytree: ``state.inner_states[label].inner_state`` is the group's
        optimizer state, holding buffers only for the group's parameters. If a group is a
        :class:`~fnlearn.optim.FusedGradientTransformation` (``fused=True``), so is the
        result; with default (``fused=None``) groups its ``update`` carries the apply
        (:func:`~fnlearn.optim.fused_apply_of`). That ``apply(grads, state, params) ->
        (params, state)`` updates each group's leaves with the group's ``apply`` (the others
        with ``update`` and ``apply_updates``) and leaves frozen parameters untouched;
        :func:`~fnlearn.optim.update_and_apply` and ``make_train_step`` use it.

    Raises:
        ValueError: in ``init``/``update`` when a label has no group.

    Example (no weight decay on biases and norm scales, smaller lr for a backbone)::

        >>> import jax, jax.numpy as jnp
        >>> from fnlearn.optim import adamw, param_groups
        >>> params = {"backbone": {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)},
        ...           "head": {"w": jnp.ones((2, 1)), "b": jnp.zeros(1)},
        ...           "embed": jnp.ones((3, 2))}
        >>> def label(path, p):
        ...     if jax.tree_util.keystr(path).startswith("['embed']"):
        ...         return "frozen"
        ...     if p.ndim <= 1:                      # biases and norm scales
        ...         return "no_decay"
        ...     return "backbone" if "backbone" in jax.tree_util.keystr(path) else "decay"
        >>> labels = jax.tree_util.tree_map_with_path(label, params)
        >>> opt = param_groups({"decay": adamw(1e-3, weight_decay=0.05),
        ...                     "no_decay": adamw(1e-3, weight_decay=0.0),
        ...                     "backbone": adamw(1e-4, weight_decay=0.05)}, labels)
        >>> state = opt.init(params)
        >>> updates, state = opt.update(jax.tree.map(jnp.ones_like, params), state, params)
        >>> float(updates["embed"].sum()), round(float(updates["head"]["w"][0, 0]), 6)
        (0.0, -0.00105)

    .. note::
       torch keeps a ``step`` per parameter and skips parameters whose ``.grad`` is ``None``;
       here each group's optimizer counts its own updates (one count per group), and a
       parameter of a non-frozen group receives an update at every call.
    """
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("param_groups: groups must be a non-empty mapping label -> "
                         f"transformation, got {groups!r}")
    transforms: dict[Hashable, GradientTransformation] = {}
    frozen = set()
    for label, tx in groups.items():
        if tx is None:
            transforms[label] = optax.set_to_zero()
            frozen.add(label)
        elif not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise TypeError(
                f"param_groups: group {label!r} must be a GradientTransformation or None, "
                f"got {type(tx).__name__}"
            )
        else:
            transforms[label] = tx
    if FROZEN not in transforms:
        transforms[FROZEN] = optax.set_to_zero()
        frozen.add(FROZEN)
    inner = optax.partition(transforms, labels)

    def init(params: Params) -> Any:
        _check_labels(_resolve_labels(labels, params), transforms)
        return inner.init(params)

    def update(updates: Params, state: Any, params: Params | None = None) -> tuple[Params, Any]:
        _check_labels(_resolve_labels(labels, updates), transforms)
        return inner.update(updates, state, params)

    if all(fused_apply_of(tx) is None for tx in transforms.values()):
        return GradientTransformation(init, update)

    def apply(grads: Params, state: Any, params: Params) -> tuple[Params, Any]:
        # the masking of optax.partition (optax.masked): a group sees its own leaves, the
        # others are MaskedNode, so its state lines up with what init gave it
        tree_labels = _resolve_labels(labels, grads)
        _check_labels(tree_labels, transforms)
        new_states = dict(state.inner_states)
        for label, tx in transforms.items():
            if label in frozen:  # zero update: params and (empty) state stay as they are
                continue
            mask = jax.tree.map(lambda x, label=label: x == label, tree_labels)

            def keep(tree, mask=mask):
                return jax.tree.map(lambda m, x: x if m else optax.MaskedNode(), mask, tree)

            inner_state = state.inner_states[label]
            new_params, new_inner = update_and_apply(tx, keep(grads), inner_state.inner_state,
                                                     keep(params))
            params = jax.tree.map(lambda m, new, old: new if m else old, mask, new_params,
                                  params)
            new_states[label] = inner_state._replace(inner_state=new_inner)
        return params, type(state)(new_states)

    if any(isinstance(tx, FusedGradientTransformation) for tx in transforms.values()):
        return FusedGradientTransformation(init, update, apply)
    # fused=None groups: a plain transformation, as theirs are
    return GradientTransformation(init, carry_fused_apply(update, apply))


def freeze(
    tx: GradientTransformation, frozen: Any | Callable[[Params], Any]
) -> GradientTransformation:
    r"""``tx`` on the trainable parameters; the frozen ones get a zero update and no state.

    torch: ``p.requires_grad_(False)`` for the frozen parameters (or leaving them out of the
    optimizer). Equivalent to ``param_groups({'trainable': tx, 'frozen': None}, labels)``.

    Args:
        tx: the optimizer of the trainable parameters.
        frozen: a pytree of booleans with the params' structure (or a prefix), True where
            frozen, or a function ``params -> booleans`` (structure, paths and shapes only).

    Returns:
        A :class:`GradientTransformation` with one state pytree; ``tx``'s buffers exist only
        for the trainable parameters.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.optim import adam, freeze
        >>> params = {"encoder": jnp.ones(3), "head": jnp.ones(2)}
        >>> opt = freeze(adam(1e-3), {"encoder": True, "head": False})
        >>> updates, _ = opt.update({"encoder": jnp.ones(3), "head": jnp.ones(2)},
        ...                         opt.init(params), params)
        >>> updates["encoder"], updates["head"]
        (Array([0., 0., 0.], dtype=float32), Array([-0.001, -0.001], dtype=float32))

    .. note::
       ``optax.freeze(mask)`` only zeroes the updates: chained with an optimizer, that
       optimizer still keeps state for the frozen parameters.
    """

    def to_labels(mask: Any) -> Any:
        return jax.tree.map(lambda f: FROZEN if f else "trainable", mask)

    labels = (lambda tree: to_labels(frozen(tree))) if callable(frozen) else to_labels(frozen)
    return param_groups({"trainable": tx, FROZEN: None}, labels)
