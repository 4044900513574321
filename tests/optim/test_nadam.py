"""NAdam: torch's argument checks, the mu_product state, and why optax.nadam differs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn import optim
from tests.optim._trajectory import problem, rel_disp, trajectory


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(lr=-1.0), "Invalid learning rate: -1.0"),
        (dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
        (dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
        (dict(betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
        (dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
        (dict(momentum_decay=-4e-3), "Invalid momentum_decay value: -0.004"),
    ],
    ids=["lr", "eps", "beta1", "beta2", "weight_decay", "momentum_decay"],
)
def test_bad_hyperparameters_raise_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        optim.nadam(**kwargs)


@pytest.mark.parametrize("decoupled", [False, True], ids=["l2", "decoupled"])
def test_weight_decay_needs_params(decoupled):
    opt = optim.nadam(weight_decay=0.1, decoupled_weight_decay=decoupled)
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="nadam.*params"):
        opt.update(params, opt.init(params))


def test_mu_product_is_the_product_of_the_momentum_schedule():
    """state.mu_product = prod_{i<=t} beta1 (1 - 0.5 * 0.96**(i psi)), one scalar (torch keeps
    the same value per parameter)."""
    b1, psi, steps = 0.8, 0.05, 7
    p0, grads = problem(seed=3, steps=steps)
    _, _, state = trajectory(optim.nadam(betas=(b1, 0.99), momentum_decay=psi), p0, grads)
    i = np.arange(1, steps + 1)
    expected = np.prod(b1 * (1 - 0.5 * 0.96 ** (i * psi)))
    assert state.step == steps and state.mu_product.shape == ()
    np.testing.assert_allclose(state.mu_product, expected, rtol=1e-14)


def test_decoupled_weight_decay_with_zero_gradient_is_a_pure_decay():
    params = {"w": jnp.array([1.0, -2.0])}
    opt = optim.nadam(lr=0.1, weight_decay=0.5, decoupled_weight_decay=True)
    updates, _ = opt.update({"w": jnp.zeros(2)}, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * params["w"], rtol=1e-15)


@pytest.mark.parametrize("momentum_decay", [4e-3, 0.0], ids=["default", "momentum_decay-0"])
def test_optax_nadam_differs_by_the_momentum_schedule(momentum_decay):
    """optax.nadam is Adam with a Nesterov step and a constant beta1; torch's NAdam uses
    mu_t = beta1 (1 - 0.5 * 0.96**(t psi)), which tends to beta1 only as t psi grows (with
    psi = 0 it is beta1 / 2 forever). The trajectories differ at the scale of the
    displacement itself (rel_disp ~1.2 here, ~1.3 in torch-semantics.md's measurement)."""
    p0, grads = problem(seed=4)
    ours, _, _ = trajectory(optim.nadam(momentum_decay=momentum_decay), p0, grads)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
        theirs, _, _ = trajectory(optax.nadam(2e-3), p0, grads)
    assert rel_disp(p0, theirs, ours) > 0.5


def test_optax_nadam_is_the_limit_of_an_infinite_momentum_decay():
    """The reason, shown: with psi = 1e3, 0.96**(t psi) underflows, mu_t = mu_{t+1} = beta1,
    mu_product = beta1**t, and torch's update becomes optax's Nesterov-Adam update exactly."""
    p0, grads = problem(seed=4)
    kwargs = dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-4, weight_decay=0.1, maximize=True)
    ours, _, _ = trajectory(optim.nadam(momentum_decay=1e3, **kwargs), p0, grads)
    reference = optax.chain(optax.scale(-1.0), optax.add_decayed_weights(0.1),
                            optax.nadam(1e-2, 0.8, 0.99, 1e-4))
    with jax.numpy_dtype_promotion("standard"):
        theirs, _, _ = trajectory(reference, p0, grads)
    assert rel_disp(p0, theirs, ours) < 1e-12
