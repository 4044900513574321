"""What ``import fnlearn`` loads, in a fresh interpreter: never torch (fnlearn.interop.torch
included), not jax.experimental.sparse (a BCOO gradient brings it; importing it is the larger
part of fnlearn's own import time), and fnlearn.crosscheck only on first access."""

import json
import subprocess
import sys

import pytest

_PROBE = """
import json, sys
import fnlearn, fnlearn.interop, fnlearn.interop.torch
loaded = {name: name in sys.modules
          for name in ("torch", "jax.experimental.sparse", "fnlearn.crosscheck")}
exact = fnlearn.crosscheck.to_optax("sgd").exact
print(json.dumps({"loaded": loaded, "torch_like": sorted(m for m in sys.modules if "torch" in m),
                  "exact": exact, "listed": "crosscheck" in dir(fnlearn)}))
"""


@pytest.fixture(scope="module")
def fresh():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True, timeout=120)
    return json.loads(out.stdout.splitlines()[-1])


def test_import_does_not_import_torch(fresh):
    assert not fresh["loaded"]["torch"], fresh["torch_like"]


def test_import_does_not_import_jax_sparse(fresh):
    assert not fresh["loaded"]["jax.experimental.sparse"]


def test_crosscheck_is_imported_on_first_access(fresh):
    assert not fresh["loaded"]["fnlearn.crosscheck"]
    assert fresh["exact"] is True and fresh["listed"] is True
    import fnlearn

    with pytest.raises(AttributeError, match="has no attribute 'crosschek'"):
        fnlearn.crosschek  # noqa: B018
