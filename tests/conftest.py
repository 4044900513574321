"""Strict JAX at test time: x64 for the float64 oracle, strict dtype promotion, rank promotion
raises; warnings are errors (pyproject's filterwarnings, with named upstream exceptions)."""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
