"""help() is self-contained: every public function and class of optim, schedules, train,
data, checkpoint, crosscheck and flat has an example that runs with no name defined
beforehand (the example imports what it uses) and no pointer to "the module docstring",
which help() does not show."""

from __future__ import annotations

import doctest
import importlib
import inspect

import jax
import pytest

MODULES = ["fnlearn.optim", "fnlearn.optim.swa_utils", "fnlearn.schedules", "fnlearn.train",
           "fnlearn.data", "fnlearn.checkpoint", "fnlearn.crosscheck", "fnlearn.flat"]


def _public():
    for name in MODULES:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{name}.{attr}", obj


PUBLIC = dict(_public())


@pytest.fixture
def user_config():
    """JAX as a user has it (float32 by default, standard promotion), not the strict test
    configuration: the examples show what help() readers see."""
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            yield
    finally:
        jax.config.update("jax_enable_x64", x64)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_help_is_self_contained(name, user_config):
    obj = PUBLIC[name]
    doc = inspect.getdoc(obj) or ""
    assert "module docstring" not in doc, f"{name}: help() does not show the module docstring"
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in finder.find(obj, name, globs={}):  # no names given: the example imports them
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
