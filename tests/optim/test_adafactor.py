"""adafactor: torch's Adafactor (the reference trajectories are in test_reference.py, table
``adafactor``): its state's layout, the parameters it rejects, a Flat, and optax's rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn import optim
from fnlearn.flat import Flat


def _tree():
    rng = np.random.default_rng(0)
    shapes = {"w": (4, 6), "conv": (2, 3, 5), "b": (5,), "s": ()}
    return {k: jnp.asarray(rng.standard_normal(s)) for k, s in shapes.items()}


def test_rank_two_and_above_is_factored_over_the_last_two_axes():
    state = optim.adafactor().init(_tree())
    assert state.row_var["w"].shape == (4, 1) and state.col_var["w"].shape == (1, 6)
    assert state.row_var["conv"].shape == (2, 3, 1) and state.col_var["conv"].shape == (2, 1, 5)
    assert state.variance["b"].shape == (5,) and state.variance["s"].shape == ()
    assert state.row_var["b"] is None and state.variance["w"] is None
    # a tree of vectors only: no factors at all (torch keeps no row_var / col_var keys)
    vectors = optim.adafactor().init({"b": jnp.ones(3)})
    assert vectors.row_var is None and vectors.col_var is None


def test_first_step_by_hand():
    """t = 1: beta2_1 = 0 (the estimate is G^2 itself), rho = min(lr, 1), alpha = max(eps2,
    RMS(theta)) rho; a vector's update is G / |G| elementwise, clipped to RMS 1."""
    theta, g = jnp.asarray([3.0, -4.0]), jnp.asarray([0.5, -2.0])
    updates, state = jax.jit(lambda g, theta: optim.adafactor(lr=0.1).update(
        g, optim.adafactor().init(theta), theta))(g, theta)
    rms = np.sqrt((9 + 16) / 2)
    np.testing.assert_allclose(np.asarray(state.variance), [0.25, 4.0], rtol=1e-15)
    np.testing.assert_allclose(np.asarray(updates), -rms * 0.1 * np.sign([0.5, -2.0]),
                               rtol=1e-14)


def test_update_is_jit_and_scan_stable_with_schedules():
    opt = optim.adafactor(lr=lambda k: 0.01 * (1.0 + k.astype(jnp.float32)), weight_decay=0.1)
    params = _tree()
    grads = jax.tree.map(lambda p: jnp.asarray(np.asarray(p) * 0.3 + 0.1), params)

    def step(carry, _):
        p, s = carry
        u, s = opt.update(grads, s, p)
        return (optim.apply_updates(p, u), s), None

    (p_scan, s_scan), _ = jax.jit(lambda carry: jax.lax.scan(step, carry, None, length=4))(
        (params, opt.init(params)))
    p, s, jit_step = params, opt.init(params), jax.jit(step)  # the step jitted on its own
    for _ in range(4):
        (p, s), _ = jit_step((p, s), None)
    for a, b in zip(jax.tree.leaves((p_scan, s_scan)), jax.tree.leaves((p, s)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13)


def test_flat_params_are_updated_per_parameter():
    tree = _tree()
    grads = jax.tree.map(lambda p: jnp.asarray(np.cos(np.asarray(p))), tree)
    opt = optim.adafactor(lr=0.05)
    first = jax.jit(lambda g, p: opt.update(g, opt.init(p), p))
    u_tree, s_tree = first(grads, tree)
    flat = Flat.of(tree)
    u_flat, s_flat = first(flat.like(grads), flat)
    assert isinstance(u_flat, Flat) and u_flat.layout == flat.layout
    for a, b in zip(jax.tree.leaves(u_flat.tree()), jax.tree.leaves(u_tree), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-14, atol=1e-300)
    assert jax.tree.structure(s_flat) == jax.tree.structure(s_tree)


def test_empty_parameter_is_left_alone():
    params = {"e": jnp.zeros((0,)), "w": jnp.ones((2, 2))}
    opt = optim.adafactor()
    updates, _ = jax.jit(lambda g, p: opt.update(g, opt.init(p), p))(
        jax.tree.map(lambda p: jnp.asarray(np.ones_like(p)), params), params)
    assert updates["e"].shape == (0,)
    assert np.all(np.isfinite(np.asarray(updates["w"])))


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(lr=-1.0), "Learning rate should be >= 0 but is: -1.0"),
    (dict(beta2_decay=0.5), "beta2_decay should be <= 0 but is: 0.5"),
    (dict(eps=(-1e-3, 1e-3)), "epsilon1 should be >= 0 but is: -0.001"),
    (dict(eps=(None, -1.0)), "epsilon2 should be >= 0 but is: -1.0"),
    (dict(d=0.5), "Clipping threshold d should be >= 1 but is: 0.5"),
    (dict(weight_decay=-0.1), "weight_decay should be >= 0 but is: -0.1"),
])
def test_bad_hyperparameters_raise_torchs_message(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.adafactor(**kwargs)


def test_complex_params_and_missing_params_raise():
    with pytest.raises(TypeError, match=r"params\['z'\] is complex"):
        optim.adafactor().init({"z": jnp.ones(2, jnp.complex64)})
    opt = optim.adafactor()
    with pytest.raises(ValueError, match="adafactor: update\\(\\) needs `params`"):
        opt.update({"w": jnp.ones(2)}, opt.init({"w": jnp.ones(2)}))


def test_optax_adafactor_is_another_rule():
    """Same gradients, optax's defaults (and with every matrix factored): the trajectories
    are orders of magnitude apart (documented in adafactor's docstring)."""
    rng = np.random.default_rng(1)
    p0 = [jnp.asarray(rng.standard_normal(s)) for s in ((4, 6), (5,))]
    grads = [[jnp.asarray(rng.standard_normal(x.shape) * 3) for x in p0] for _ in range(10)]

    @jax.jit(static_argnums=0)  # one program per rule for the ten steps
    def run(tx):
        ps, s = p0, tx.init(p0)
        for g in grads:
            u, s = tx.update(g, s, ps)
            ps = optim.apply_updates(ps, u)
        return ps

    ours = run(optim.adafactor())
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
        for theirs in (run(optax.adafactor()), run(optax.adafactor(min_dim_size_to_factor=1))):
            for a, b, p in zip(ours, theirs, p0, strict=True):
                moved = np.max(np.abs(np.asarray(a) - np.asarray(p)))
                assert np.max(np.abs(np.asarray(a) - np.asarray(b))) > 10 * moved
