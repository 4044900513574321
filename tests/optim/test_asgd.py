"""ASGD: torch's argument checks and its eta / mu / ax bookkeeping (optax has no ASGD)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import optim
from tests.optim._trajectory import problem, trajectory


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(lr=-1.0), "Invalid learning rate: -1.0"),
        (dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    ],
    ids=["lr", "weight_decay"],
)
def test_bad_hyperparameters_raise_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        optim.asgd(**kwargs)


def test_update_needs_params():
    opt = optim.asgd()
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="asgd.*params"):
        opt.update(params, opt.init(params))


def test_ax_copies_params_until_t0_then_averages():
    """mu_t = 1/max(1, t - t0) is used by update t+1: ax is a copy of the params up to step
    t0 + 2, then the running mean of the params from step t0 + 2 on."""
    t0, steps = 3.0, 10
    p0, grads = problem(seed=7, steps=steps)
    params, _, state = trajectory(optim.asgd(lr=0.05, lambd=1e-2, t0=t0), p0, grads)
    for p, ax in zip(params, state.ax, strict=True):
        np.testing.assert_allclose(ax, np.mean(p[int(t0) + 1:], axis=0), rtol=1e-13)
    _, _, state4 = trajectory(optim.asgd(lr=0.05, lambd=1e-2, t0=t0), p0, [g[:5] for g in grads])
    for p, ax in zip(params, state4.ax, strict=True):
        np.testing.assert_array_equal(ax, p[4])  # step t0 + 2 = 5: still a copy


def test_default_t0_never_averages():
    p0, grads = problem(seed=8, steps=5)
    params, _, state = trajectory(optim.asgd(), p0, grads)
    for p, ax in zip(params, state.ax, strict=True):
        np.testing.assert_array_equal(ax, p[-1])


def test_eta_and_mu_follow_torch_and_lag_one_update():
    """The k-th update uses the eta computed at the end of update k-1 from that update's lr:
    with a schedule lr(k), update 2 still steps with lr(0) / (1 + lambd lr(0))**alpha."""
    lr0, lambd, alpha, t0 = 0.1, 0.5, 0.75, 1.0
    schedule = lambda count: lr0 * (1 + count.astype(jnp.float64))  # noqa: E731
    opt = optim.asgd(lr=schedule, lambd=lambd, alpha=alpha, t0=t0)
    theta = [jnp.array([1.0, -2.0])]
    g1, g2 = [jnp.array([0.5, 0.25])], [jnp.array([-1.0, 3.0])]
    state = opt.init(theta)
    assert state.eta == lr0 and state.mu == 1
    u1, state = opt.update(g1, state, theta)
    np.testing.assert_allclose(u1[0], -lr0 * lambd * theta[0] - lr0 * g1[0], rtol=1e-15)
    eta1 = lr0 / (1 + lambd * lr0 * 1) ** alpha
    np.testing.assert_allclose(state.eta, eta1, rtol=1e-15)
    assert state.mu == 1  # 1 / max(1, 1 - t0)
    theta = optim.apply_updates(theta, u1)
    u2, state = opt.update(g2, state, theta)
    np.testing.assert_allclose(u2[0], -eta1 * lambd * theta[0] - eta1 * g2[0], rtol=1e-15)
    lr1 = 2 * lr0
    np.testing.assert_allclose(state.eta, lr1 / (1 + lambd * lr1 * 2) ** alpha, rtol=1e-15)
    assert state.mu == 1  # 1 / max(1, 2 - t0)
    _, state = opt.update(g2, state, optim.apply_updates(theta, u2))
    np.testing.assert_allclose(state.mu, 1 / 2)  # 1 / max(1, 3 - t0)
