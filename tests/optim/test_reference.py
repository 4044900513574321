"""Every optimizer case against committed torch reference trajectories (no torch needed).

For each case and dtype: the stored start point and gradient sequence go through the fnlearn
optimizer (``lax.scan`` over the steps); the parameters after every step are compared with
torch's (float64: rtol 1e-10, float32: rtol 1e-5, each with an absolute floor of rtol times
the array's largest magnitude), and torch's state after the stored steps is compared key by
key with the fnlearn state field of the same name.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import optim
from tests._reference import TESTS, key, load
from tests._tiers import first_of_each
from tests.optim.cases import SHAPES, all_cases, make, pack, state_steps, unpack

RTOL = {"float64": 1e-10, "float32": 1e-5}

_CACHE: dict = {}


def reference(table: str) -> dict[str, np.ndarray]:
    path = TESTS / "optim" / "reference" / f"{table}.npz"
    if path not in _CACHE:
        _CACHE[path] = load(path) if path.exists() else {}
    return _CACHE[path]


def run_fnlearn(table, case, dtype, p0: np.ndarray, grads: np.ndarray, fused: bool = False):
    """Parameters after every step ``(steps, n)`` and the state after every step (stacked).

    ``fused``: build the optimizer with ``fused=True`` and step with its in-place ``apply``.
    """
    opt = make(table, case, dtype, fused=True) if fused else make(table, case, dtype)
    params = [jnp.asarray(p, dtype) for p in unpack(p0)]
    gs = [jnp.asarray(g, dtype) for g in unpack(grads)]

    def step(carry, g):
        params, state = carry
        if fused:
            params, state = opt.apply(g, state, params)
        else:
            updates, state = opt.update(g, state, params)
            params = optim.apply_updates(params, updates)
        return (params, state), (params, state)

    _, (trajectory, states) = jax.lax.scan(step, (params, opt.init(params)), gs)
    return pack([np.asarray(p) for p in trajectory], lead=1), states


def state_field(states, name: str, n_rows: int) -> np.ndarray:
    """fnlearn's state field ``name`` at the stored steps, packed like torch's rows."""
    field = getattr(states, name, None)
    assert field is not None, f"fnlearn state has no field {name!r}, which torch's state has"
    rows = [np.asarray(x)[n_rows] for x in jax.tree.leaves(field)]
    if len(rows) == 1 and rows[0].ndim == 1:  # one scalar for all parameters (step, ...)
        rows = [rows[0][:, None]] * len(SHAPES)
    else:  # one slot per parameter, None where it has no such buffer (torch: no key)
        slots = jax.tree.leaves(field, is_leaf=lambda x: x is None)
        assert len(slots) == len(SHAPES), f"state field {name!r} has {len(slots)} slots"
    return pack(rows, lead=1)


def deviation(actual: np.ndarray, desired: np.ndarray) -> float:
    """max |actual - desired| / max |desired|."""
    return float(np.max(np.abs(actual - desired)) / max(np.max(np.abs(desired)), 1e-300))


def _params():
    for table, case in all_cases():
        for dtype in case.dtypes:
            yield pytest.param(table, case, dtype, id=f"{case.id}-{dtype}")


@pytest.mark.parametrize(("table", "case", "dtype"),
                         first_of_each(_params(), lambda table, case, dtype: (case.name, dtype)))
def test_optimizer_matches_torch_reference(table, case, dtype):
    check_against_reference(table, case, dtype)


def check_against_reference(table, case, dtype, fused: bool = False):
    """The case's trajectory and final state against torch's stored ones."""
    data = reference(table)
    prefix = f"{case.id}|{dtype}|"
    assert prefix + "params" in data, (
        f"no reference data for {case.id!r} ({dtype}): "
        f"run python -m tests.generate_reference {table}"
    )
    p0, grads = data[key(case.id, "inputs", "p0")], data[key(case.id, "inputs", "grads")]
    trajectory, states = run_fnlearn(table, case, dtype, p0, grads, fused)
    rtol = RTOL[dtype]
    desired = data[prefix + "params"]
    assert trajectory.dtype == np.dtype(dtype)
    np.testing.assert_allclose(trajectory, desired, rtol=rtol,
                               atol=rtol * np.max(np.abs(desired)), err_msg="params")
    rows = np.asarray(state_steps(case)) - 1
    names = [k[len(prefix) + len("state:"):] for k in data if k.startswith(prefix + "state:")]
    assert names or case.torch_name == "SGD", f"no torch state stored for {case.id}"
    for name in names:
        desired = data[prefix + "state:" + name]
        actual = state_field(states, name, rows)
        np.testing.assert_allclose(actual, desired, rtol=rtol,
                                   atol=rtol * np.max(np.abs(desired)), err_msg=f"state {name}")
