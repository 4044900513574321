"""The few type aliases fnlearn uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

import jax

Array: TypeAlias = jax.Array
#: Anything array-like a loss accepts (jax/numpy arrays, Python scalars).
ArrayLike: TypeAlias = jax.typing.ArrayLike
#: A parameter pytree (dicts, lists, tuples, NamedTuples, flax state...).
Params: TypeAlias = Any
#: A schedule: the step count (int32 array, 0 for the first update) -> value.
Schedule: TypeAlias = Callable[[Array], ArrayLike]
#: A hyperparameter that is either a number (possibly a tracer) or a schedule.
ScalarOrSchedule: TypeAlias = "float | Array | Schedule"
Reduction: TypeAlias = Literal["none", "mean", "sum"]
