"""muon: torch's Muon against committed torch trajectories (reference/muon.npz, written by
``python -m tests.generate_reference muon``), its parameter checks, a Flat, param
groups, and optax.contrib.muon."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn import optim
from fnlearn.flat import Flat
from tests._reference import TESTS, load
from tests._tiers import each_with_one
from tests.optim.muon_cases import CASES, SHAPES

TOL = {"float64": 1e-10, "float32": 1e-5}
#: fnlearn's default runs the Newton-Schulz iteration in bfloat16 like torch's; the two agree
#: to float64 round-off on the machine that wrote this (below 1e-15), but a float32
#: accumulation in another order may round a bfloat16 value the other way: compare at
#: bfloat16's precision (one bfloat16 ulp of an update is ~4e-3 of it)
BF16_TOL = 1e-3
REFERENCE = load(TESTS / "optim" / "reference" / "muon.npz")


def run(kwargs: dict, p0, grads, dtype: str):
    opt = optim.muon(**kwargs)
    params = [jnp.asarray(p, dtype) for p in p0]
    gs = [jnp.asarray(g, dtype) for g in grads]

    def step(carry, g):
        params, state = carry
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
        return (params, state), params

    _, trajectory = jax.lax.scan(step, (params, opt.init(params)), gs)
    return trajectory


def _deviation(ours, ref) -> float:
    """max |ours - ref| / max |ref| over the trajectory (as test_reference.py measures)."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


# each case in one dtype by default (in turn), every pair in the exhaustive tier
@pytest.mark.parametrize(("name", "dtype"), each_with_one(CASES, ["float64", "float32"]))
def test_muon_matches_torch_reference(name, dtype):
    p0 = [REFERENCE[f"{name}|p0|{i}"].astype(dtype) for i in range(len(SHAPES))]
    grads = [REFERENCE[f"{name}|grads|{i}"].astype(dtype) for i in range(len(SHAPES))]
    exact = run({**CASES[name], "ns_dtype": jnp.float64}, p0, grads, dtype)
    default = run(CASES[name], p0, grads, dtype)
    for i in range(len(SHAPES)):
        assert exact[i].dtype == np.dtype(dtype) and default[i].dtype == np.dtype(dtype)
        dev = _deviation(exact[i], REFERENCE[f"{name}|{dtype}|f64|{i}"])
        assert dev < TOL[dtype], f"ns_dtype=float64 against torch's (NS in float64): {dev}"
        dev = _deviation(default[i], REFERENCE[f"{name}|{dtype}|bf16|{i}"])
        assert dev < BF16_TOL, f"default (bfloat16 NS) against torch's Muon: {dev}"


def test_first_step_is_an_orthogonalized_gradient():
    """With ns_dtype=float64 and many steps of the cubic iteration (a, b, c) = (1.5, -0.5, 0),
    Newton-Schulz converges to U V^T: the update is -lr * sqrt(max(1, A/B)) U V^T."""
    g = jnp.asarray(np.random.default_rng(0).standard_normal((5, 3)))
    opt = optim.muon(lr=0.1, weight_decay=0.0, momentum=0.0, nesterov=False,
                     ns_coefficients=(1.5, -0.5, 0.0), ns_steps=60, ns_dtype=jnp.float64)
    params = jnp.zeros((5, 3))
    updates, _ = opt.update(g, opt.init(params), params)
    u, _, vt = np.linalg.svd(np.asarray(g), full_matrices=False)
    np.testing.assert_allclose(np.asarray(updates), -0.1 * np.sqrt(5 / 3) * u @ vt, atol=1e-9)


def test_vectors_need_another_optimizer_through_param_groups():
    params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
    with pytest.raises(ValueError, match=r"params\['b'\] has shape \(4,\); Muon only supports"):
        optim.muon().init(params)
    opt = optim.param_groups({"matrix": optim.muon(lr=0.02), "other": optim.adamw(1e-3)},
                             lambda p: jax.tree.map(lambda x: "matrix" if x.ndim == 2
                                                    else "other", p))
    state = opt.init(params)
    updates, _ = jax.jit(opt.update)(jax.tree.map(jnp.ones_like, params), state, params)
    assert updates["w"].shape == (3, 4) and bool(jnp.all(jnp.isfinite(updates["b"])))


def test_flat_params_are_updated_per_matrix():
    rng = np.random.default_rng(1)
    tree = {"a": jnp.asarray(rng.standard_normal((4, 6))),
            "b": jnp.asarray(rng.standard_normal((7, 3)))}
    grads = jax.tree.map(lambda p: jnp.asarray(np.cos(np.asarray(p))), tree)
    opt = optim.muon(ns_dtype=jnp.float64)
    first = jax.jit(lambda g, p: opt.update(g, opt.init(p), p)[0])  # the tree, then the Flat
    u_tree = first(grads, tree)
    flat = Flat.of(tree)
    u_flat = first(flat.like(grads), flat)
    assert isinstance(u_flat, Flat)
    for a, b in zip(jax.tree.leaves(u_flat.tree()), jax.tree.leaves(u_tree), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    (dict(lr=-1.0), ValueError, "Learning rate should be >= 0 but is: -1.0"),
    (dict(momentum=-0.1), ValueError, "momentum should be >= 0 but is: -0.1"),
    (dict(weight_decay=-0.1), ValueError, "weight decay should be >= 0 but is: -0.1"),
    (dict(adjust_lr_fn="rms"), ValueError, "Adjust learning rate function rms is not supported"),
    (dict(ns_steps=100), ValueError, "Number of steps must be less than 100"),
    (dict(ns_coefficients=(1.0, 2.0)), ValueError, "exactly 3 values"),
    (dict(ns_dtype=jnp.int32), TypeError, "ns_dtype must be a floating dtype"),
])
def test_bad_hyperparameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        optim.muon(**kwargs)


def test_complex_params_and_missing_params_raise():
    with pytest.raises(TypeError, match=r"params\['z'\] is complex"):
        optim.muon().init({"z": jnp.ones((2, 2), jnp.complex64)})
    opt = optim.muon()
    with pytest.raises(ValueError, match="muon: update\\(\\) needs `params`"):
        opt.update({"w": jnp.ones((2, 2))}, opt.init({"w": jnp.ones((2, 2))}))


def test_optax_contrib_muon_is_another_rule():
    rng = np.random.default_rng(2)
    p0 = [jnp.asarray(rng.standard_normal((4, 6)))]
    grads = [[jnp.asarray(rng.standard_normal((4, 6)))] for _ in range(5)]

    @jax.jit(static_argnums=0)  # one program per rule for the five steps
    def final(tx):
        ps, s = p0, tx.init(p0)
        for g in grads:
            u, s = tx.update(g, s, ps)
            ps = optim.apply_updates(ps, u)
        return ps[0]

    ours = np.asarray(final(optim.muon(lr=0.02, weight_decay=0.0)))
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
        theirs = np.asarray(final(optax.contrib.muon(0.02)))
    moved = np.max(np.abs(ours - np.asarray(p0[0])))
    assert np.max(np.abs(ours - theirs)) > 0.1 * moved
