"""The train state: everything a training run updates, as one plain pytree."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .._typing import Array, Params
from ..flat import Flat


class TrainState(NamedTuple):
    """Everything a training run updates, as one plain pytree (a ``NamedTuple``).

    It can be passed through ``jax.jit``, ``lax.scan`` and ``jax.tree.map``, and saved with
    :mod:`fnlearn.checkpoint`. The optimizer and the loss are not stored in it: they are closed
    over by the step from :func:`make_train_step`.

    Attributes:
      params: the parameter pytree (dict, flax.linen ``params``, flax.nnx ``State``, ...).
      opt_state: ``optimizer.init(params)``.
      step: int32 scalar, the number of train-step calls so far (skipped ones included).
      skipped: int32 scalar counting the steps a ``make_train_step(..., skip_nonfinite=True)``
        step skipped for a non-finite loss or gradient (always 0 for other steps).
    """

    params: Params
    opt_state: optax.OptState
    step: Array
    skipped: Array | None = None

    @classmethod
    def create(
        cls,
        params: Params,
        optimizer: optax.GradientTransformation,
        *,
        flat: bool = False,
    ) -> TrainState:
        """The state before the first step: copied params, ``optimizer.init``, ``step = 0``.

        With ``flat=True`` the params are stored as a :class:`~fnlearn.flat.Flat` (one buffer
        per dtype) and so is every optimizer buffer: the update runs as one set of kernels
        whatever the number of leaves. ``loss_fn`` still receives the parameter tree; read the
        trained tree with ``state.params.tree()``. Whether it makes the whole step faster
        depends on the model and the device (see :class:`~fnlearn.flat.Flat`): measure.

        ``params`` is copied, so the donating train step consumes the copy and the caller's
        arrays stay usable (e.g. to start several runs from the same initial weights). An
        optimizer state leaf that is the very same array as a parameter (optax's ``lookahead``
        does this) is copied too, as one buffer cannot be donated twice. Weakly typed leaves
        (``jnp.full(shape, 0.1)``) become strongly typed, as the step's outputs are, so the step
        compiles once rather than again on its second call.
        """

        def own(x: Any) -> Any:
            x = jnp.asarray(x)
            return jnp.array(x, dtype=x.dtype, copy=True)

        params = Flat.of(params) if flat else jax.tree.map(own, params)
        opt_state = optimizer.init(params)
        seen = {id(x) for x in jax.tree.leaves(params)}

        def unshared(x: Any) -> Any:
            if isinstance(x, jax.Array) and (x.weak_type or id(x) in seen):
                x = own(x)
            seen.add(id(x))
            return x

        opt_state = jax.tree.map(unshared, opt_state)
        zero = jnp.zeros((), jnp.int32)
        return cls(params, opt_state, zero, jnp.zeros((), jnp.int32))
