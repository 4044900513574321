"""help() is self-contained: every public function and class of optim, schedules, train,
data, checkpoint, crosscheck and flat has an example that uses no name it does not define
(it imports what it uses) and no pointer to "the module docstring", which help() does not
show. The default run reads the examples (every name used is imported or assigned in the
example); the exhaustive tier runs them with no names given."""

from __future__ import annotations

import ast
import builtins
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


def _undefined(source: str) -> set[str]:
    """Names an example loads but never binds (imports, assignments, loop and lambda
    variables, definitions) and that are not builtins."""
    bound, loaded = set(dir(builtins)), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
    return loaded - bound


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_help_is_self_contained(name):
    doc = inspect.getdoc(PUBLIC[name]) or ""
    assert "module docstring" not in doc, f"{name}: help() does not show the module docstring"
    examples = doctest.DocTestParser().get_examples(doc)
    undefined = _undefined("\n".join(e.source for e in examples))
    assert not undefined, f"{name}: its example uses {sorted(undefined)} without defining them"


@pytest.mark.exhaustive
@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_examples_run_with_no_names_given(name, user_config):
    obj = PUBLIC[name]
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in finder.find(obj, name, globs={}):  # no names given: the example imports them
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
