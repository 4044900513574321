"""Strict JAX at test time: x64 for the float64 oracle, strict dtype promotion, rank promotion
raises; warnings are errors (pyproject's filterwarnings, with named upstream exceptions); XLA
compiles for a fast test run (tests/_xla.py), set before JAX's backend starts."""

import os
import sys

import pytest

from tests import _xla

_xla.configure()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_configure(config):
    """fused=True's kernel library is native code built ahead of time: an install builds it;
    a checkout tested in place gets it built here, once, into the cache (as
    ``python -m fnlearn.optim.build_fused`` would). Without a compiler the fused tests fail
    on the RuntimeWarning that names the command."""
    del config
    if jax.default_backend() != "cpu":  # there fused=True runs the XLA rule
        return
    from fnlearn.optim import _fused, _fused_build

    if _fused.find_library() is None:
        try:
            _fused_build.build()
        except RuntimeError as e:
            print(f"conftest: the fused kernel library was not built: {e}")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """An xdist worker leaves without the interpreter's teardown: its results are sent by now,
    and freeing its thousands of compiled programs one by one takes seconds that the whole
    run would wait for."""
    if hasattr(config, "workerinput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
