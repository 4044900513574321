"""Every loss against committed torch reference data (no torch needed).

float64: rtol 1e-10; float32: rtol 2e-5. Values and gradients of the input arguments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import losses
from tests._reference import TESTS, load
from tests._tiers import first_of_each
from tests.losses.cases import default_run, tables

# The losses emit torch's warnings (a target broadcast to the input's shape, kl_div's 'mean',
# the legacy size_average/reduce arguments); the module tests check them, here they are noise.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Using a target of shape:UserWarning"),
    pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning"),
    pytest.mark.filterwarnings("ignore:size_average and reduce args:UserWarning"),
]

TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-5, atol=2e-6)}


def _params():
    for table, cases in tables().items():
        path = TESTS / "losses" / "reference" / f"{table}.npz"
        default = default_run(table)
        for case in cases:
            marks = [] if default is None or case.id in default else [pytest.mark.exhaustive]
            for dtype in case.dtypes:
                yield pytest.param(table, path, case, dtype, id=f"{case.id}-{dtype}",
                                   marks=marks)


_CACHE: dict = {}


def _data(path):
    if path not in _CACHE:
        _CACHE[path] = load(path)
    return _CACHE[path]


@pytest.mark.parametrize(("table", "path", "case", "dtype"),
                         first_of_each(_params(), lambda tbl, path, case, dtype: (case.fn, dtype)))
def test_loss_matches_torch_reference(table, path, case, dtype):
    data = _data(path)
    stored = {k.split("|", 2)[2]: v for k, v in data.items() if k.startswith(f"{case.id}|{dtype}|")}
    assert stored, f"no reference data for {case.id!r} ({dtype}): regenerate {table}.npz"
    arrays = {k[4:]: jnp.asarray(v) for k, v in stored.items() if k.startswith("arg:")}
    fn = getattr(losses, case.fn)

    def call(a):
        kw = {n: v for n, v in a.items() if n not in case.args}
        return fn(*[a[n] for n in case.args], **kw, **case.kwargs)

    @jax.jit  # one compile for value and gradients: much faster than op-by-op dispatch
    def value_and_grads(a, cot):
        out = call(a)
        if not case.grad:
            return out, {}
        wrt = {n: a[n] for n in case.grad}
        return out, jax.grad(lambda d: jnp.sum(call({**a, **d}) * cot))(wrt)

    cot = jnp.asarray(stored["cotangent"]) if case.grad else None
    out, grads = value_and_grads(arrays, cot)
    assert out.dtype == jnp.dtype(dtype)
    np.testing.assert_allclose(np.asarray(out), stored["loss"], **TOL[dtype])
    for n in case.grad:
        np.testing.assert_allclose(np.asarray(grads[n]), stored[f"grad:{n}"], **TOL[dtype],
                                   err_msg=f"gradient of {n}")
