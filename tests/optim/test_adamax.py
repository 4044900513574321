"""Adamax: torch's argument checks, and optax.adamax as a second oracle (same update)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest

from fnlearn import optim
from tests.optim._trajectory import problem, rel_disp, trajectory


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(lr=-1.0), "Invalid learning rate: -1.0"),
        (dict(lr=float("nan")), "Invalid learning rate: nan"),
        (dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
        (dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
        (dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
        (dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    ],
    ids=["lr", "lr-nan", "eps", "beta1", "beta2", "weight_decay"],
)
def test_bad_hyperparameters_raise_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        optim.adamax(**kwargs)


def test_weight_decay_needs_params():
    opt = optim.adamax(weight_decay=0.1)
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="adamax.*params"):
        opt.update(params, opt.init(params))


def _sched(count):
    return 0.05 * 0.9 ** count.astype(jnp.float64)


# (fnlearn configuration, the optax expression that computes the same update)
OPTAX_SAME = [
    (dict(), optax.adamax(2e-3, 0.9, 0.999, 1e-8)),
    (dict(lr=0.01, betas=(0.8, 0.99), eps=1e-3), optax.adamax(0.01, 0.8, 0.99, 1e-3)),
    (dict(lr=0.01, weight_decay=0.1, maximize=True),
     optax.chain(optax.scale(-1.0), optax.add_decayed_weights(0.1), optax.adamax(0.01))),
    (dict(lr=_sched), optax.adamax(_sched)),
]


@pytest.mark.parametrize(("kwargs", "reference"), OPTAX_SAME,
                         ids=["default", "betas-eps", "wd-maximize", "schedule"])
def test_matches_optax_adamax(kwargs, reference):
    p0, grads = problem(seed=1)
    ours, _, _ = trajectory(optim.adamax(**kwargs), p0, grads)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
        theirs, _, _ = trajectory(reference, p0, grads)
    assert rel_disp(p0, theirs, ours) < 1e-12
