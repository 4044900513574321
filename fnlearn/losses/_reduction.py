"""The one place where losses are reduced (torch.nn._reduction semantics)."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from .._typing import Array, ArrayLike

_REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str, extra: Sequence[str] = ()) -> str:
    """Validate a ``reduction`` string at trace time, with torch's message.

    Raises ``ValueError("<reduction> is not a valid value for reduction")`` unless
    ``reduction`` is ``'none'``, ``'mean'``, ``'sum'`` or one of ``extra`` (e.g.
    ``'batchmean'`` for :func:`kl_div`).
    """
    if not isinstance(reduction, str) or reduction not in (*_REDUCTIONS, *extra):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def reduce(loss: Array, reduction: str, *, denominator: ArrayLike | None = None) -> Array:
    """Reduce an unreduced loss as torch does.

    * ``'none'``: ``loss`` unchanged.
    * ``'sum'``: ``sum(loss)``.
    * ``'mean'``: ``sum(loss) / denominator`` when ``denominator`` is given (a weighted mean,
      e.g. the summed weight of the non-ignored targets), else ``mean(loss)`` over all
      elements. The mean of an empty set is ``nan``, as in torch.

    Sums accumulate in at least float32 (``jnp.sum`` upcasts bfloat16/float16), and the result
    keeps ``loss``'s dtype, which is what torch returns.
    """
    check_reduction(reduction)
    if reduction == "none":
        return loss
    total = jnp.sum(loss)
    if reduction == "sum":
        return total
    if denominator is None:
        return jnp.mean(loss)
    return (total / jnp.asarray(denominator, dtype=total.dtype)).astype(loss.dtype)
