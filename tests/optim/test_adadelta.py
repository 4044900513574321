"""Adadelta: torch's argument checks, and optax.adadelta as a second oracle (same update)."""

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
        (dict(rho=1.5), "Invalid rho value: 1.5"),
        (dict(rho=-0.1), "Invalid rho value: -0.1"),
        (dict(eps=-1e-6), "Invalid epsilon value: -1e-06"),
        (dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    ],
    ids=["lr", "rho-above-1", "rho-negative", "eps", "weight_decay"],
)
def test_bad_hyperparameters_raise_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        optim.adadelta(**kwargs)


def test_rho_bounds_are_allowed_like_torch():
    """torch checks 0 <= rho <= 1 (closed): rho=1 freezes the averages, leaving
    delta = sqrt(eps)/sqrt(eps) * g, i.e. plain SGD with step lr."""
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 3.0])}
    opt = optim.adadelta(lr=0.1, rho=1.0)
    updates, state = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * grads["w"], rtol=1e-15)
    assert not np.any(state.square_avg["w"]) and not np.any(state.acc_delta["w"])
    optim.adadelta(rho=0.0)


def test_weight_decay_needs_params():
    opt = optim.adadelta(weight_decay=0.1)
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="adadelta.*params"):
        opt.update(params, opt.init(params))


def _sched(count):
    return 0.5 * 0.9 ** count.astype(jnp.float64)


# (fnlearn configuration, the optax expression that computes the same update)
OPTAX_SAME = [
    (dict(), optax.adadelta(learning_rate=1.0, rho=0.9, eps=1e-6)),
    (dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1),
     optax.adadelta(learning_rate=0.5, rho=0.8, eps=1e-4, weight_decay=0.1)),
    (dict(weight_decay=0.1, maximize=True),
     optax.chain(optax.scale(-1.0), optax.adadelta(learning_rate=1.0, weight_decay=0.1))),
    (dict(lr=_sched), optax.adadelta(learning_rate=_sched)),
]


@pytest.mark.parametrize(("kwargs", "reference"), OPTAX_SAME,
                         ids=["default", "rho-eps-wd", "wd-maximize", "schedule"])
def test_matches_optax_adadelta(kwargs, reference):
    p0, grads = problem(seed=2)
    ours, _, _ = trajectory(optim.adadelta(**kwargs), p0, grads)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
        theirs, _, _ = trajectory(reference, p0, grads)
    assert rel_disp(p0, theirs, ours) < 1e-12
