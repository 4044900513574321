"""sparse_adam against torch.optim.SparseAdam's committed runs (tests/optim/reference/
sparse_adam.npz, tests/optim/generate_sparse_adam_reference.py), and its contract: only the
entries present in the gradient change (params and moments), dense gradients refused."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse

from fnlearn import optim
from tests._reference import TESTS, load
from tests.optim.sparse_adam_cases import CASES, inputs

RTOL = {"float64": 1e-10, "float32": 1e-5}
REFERENCE = load(TESTS / "optim" / "reference" / "sparse_adam.npz")


def as_grad(case, indices, values, form, dtype):
    values = jnp.asarray(values, dtype)
    if form == "rows":
        return optim.IndexedRows(jnp.asarray(indices[:, 0]), values)
    return sparse.BCOO((values, jnp.asarray(indices)), shape=case.shape)


def run(case, dtype, form, steps, p0, options=None, jit=True):
    opt = optim.sparse_adam(**(case.options if options is None else options))
    params = jnp.asarray(p0, dtype)
    state = opt.init(params)
    update = jax.jit(opt.update) if jit else opt.update
    trajectory = []
    for indices, values in steps:
        updates, state = update(as_grad(case, indices, values, form, dtype), state)
        params = optim.apply_updates(params, updates)
        trajectory.append(params)
    return np.stack(trajectory), state


def _grid():
    """Every case in float64 with its last form, and one float32 row: the default run; the
    other forms and dtypes: the exhaustive tier."""
    out = []
    for c in CASES:
        forms = ("bcoo", "rows") if c.kind == "rows" else ("bcoo",)
        for form in forms:
            for dtype in ("float64", "float32"):
                quick = (form == forms[-1] and dtype == "float64") or (
                    c is CASES[1] and form == "rows")
                marks = () if quick else (pytest.mark.exhaustive,)
                out.append(pytest.param(c, form, dtype, marks=marks,
                                        id=f"{c.id}-{form}-{dtype}"))
    return out


@pytest.mark.parametrize(("case", "form", "dtype"), _grid())
def test_matches_torch_reference(case, form, dtype):
    ref = REFERENCE
    p0, steps = inputs(case)
    np.testing.assert_array_equal(p0, ref[f"{case.id}|p0"])  # the same inputs as torch's
    trajectory, state = run(case, dtype, form, steps, p0)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(trajectory, ref[f"{case.id}|{dtype}|params"], rtol=rtol,
                               atol=rtol * 1e-3)
    np.testing.assert_allclose(state.exp_avg, ref[f"{case.id}|{dtype}|exp_avg"], rtol=rtol,
                               atol=rtol * 1e-3)
    np.testing.assert_allclose(state.exp_avg_sq, ref[f"{case.id}|{dtype}|exp_avg_sq"],
                               rtol=rtol, atol=rtol * 1e-6)
    assert int(state.step) == case.steps  # an empty gradient still counts the step, as torch


def test_only_present_entries_change_bit_for_bit():
    table = jnp.asarray(np.random.default_rng(0).standard_normal((6, 3)))
    opt = optim.sparse_adam(lr=0.1)
    state = opt.init(table)
    ids = jnp.array([4, 1, 4])
    update = jax.jit(opt.update)
    _, state = update(optim.IndexedRows(ids, jnp.ones((3, 3))), state)
    ids2 = jnp.array([1, 2])
    updates, state2 = update(optim.IndexedRows(ids2, jnp.zeros((2, 3))), state)
    new = optim.apply_updates(table, updates)
    untouched = jnp.array([0, 3, 4, 5])
    for before, after in ((table, new), (state.exp_avg, state2.exp_avg),
                          (state.exp_avg_sq, state2.exp_avg_sq)):
        np.testing.assert_array_equal(after[untouched], before[untouched])
    # present with a zero value: its moments decay and its parameter moves (as torch)
    assert float(state2.exp_avg[1, 0]) == pytest.approx(0.9 * float(state.exp_avg[1, 0]))
    assert float(new[1, 0]) != float(table[1, 0])
    # row 2 appears for the first time with a zero gradient: m = v = 0, no move
    assert float(new[2, 0]) == float(table[2, 0])


def test_bcoo_padding_and_trees_and_none_leaves():
    params = {"emb": jnp.zeros((5, 2)), "frozen": jnp.ones(3)}
    opt = optim.sparse_adam(lr=0.1)
    state = opt.init(params)
    # one row present (row 1) and two padding slots (out-of-range row 5), as BCOO pads
    g = sparse.BCOO((jnp.ones((3, 2)), jnp.array([[1], [5], [5]])), shape=(5, 2))
    updates, state = jax.jit(opt.update)({"emb": g, "frozen": None}, state)
    assert updates["frozen"].shape == (3,) and not np.any(np.asarray(updates["frozen"]))
    moved = np.flatnonzero(np.any(np.asarray(updates["emb"]) != 0, axis=1))
    assert moved.tolist() == [1]


def test_refusals_with_torchs_messages():
    opt = optim.sparse_adam()
    state = opt.init(jnp.zeros((3, 2)))
    with pytest.raises(TypeError, match="SparseAdam does not support dense gradients, please "
                                        "consider Adam instead.*IndexedRows"):
        opt.update(jnp.ones((3, 2)), state)
    with pytest.raises(ValueError, match="values need indices.shape"):
        opt.update(optim.IndexedRows(jnp.array([0]), jnp.ones((1, 3))), state)
    with pytest.raises(ValueError, match="Invalid learning rate: 0"):
        optim.sparse_adam(lr=0.0)  # torch: lr must be > 0 here (Adam allows 0)
    with pytest.raises(ValueError, match="Invalid epsilon value: 0"):
        optim.sparse_adam(eps=0.0)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.0"):
        optim.sparse_adam(betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="betas must be a pair"):
        optim.sparse_adam(betas=0.9)
    with pytest.raises(ValueError, match="does not support complex parameters"):
        opt.init(jnp.zeros(2, jnp.complex64))
    assert optim.SparseAdamState._fields == ("step", "exp_avg", "exp_avg_sq")  # torch's keys
