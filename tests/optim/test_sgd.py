"""SGD: torch's argument checks, optax as a second oracle, and the dampening difference."""

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
        (dict(momentum=-0.5), "Invalid momentum value: -0.5"),
        (dict(weight_decay=-1e-4), "Invalid weight_decay value: -0.0001"),
        (dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
        (dict(momentum=0.9, dampening=0.1, nesterov=True),
         "Nesterov momentum requires a momentum and zero dampening"),
    ],
    ids=["lr", "momentum", "weight_decay", "nesterov-no-momentum", "nesterov-dampening"],
)
def test_bad_hyperparameters_raise_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        optim.sgd(**kwargs)


def test_unvalidated_arguments_are_accepted_like_torch():
    """torch checks neither dampening nor momentum > 1."""
    optim.sgd(momentum=1.5, dampening=-5.0)


def test_weight_decay_needs_params():
    opt = optim.sgd(weight_decay=0.1)
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="sgd.*params"):
        opt.update(params, opt.init(params))


def test_unused_buffer_is_none_and_first_buffer_is_the_gradient():
    params = {"w": jnp.array([1.0, 2.0])}
    assert optim.sgd().init(params).momentum_buffer is None
    opt = optim.sgd(lr=0.1, momentum=0.9, dampening=0.7)
    g = {"w": jnp.array([0.5, -3.0])}
    _, state = opt.update(g, opt.init(params), params)
    np.testing.assert_array_equal(state.momentum_buffer["w"], g["w"])  # dampening skipped
    _, state = opt.update(g, state, params)
    np.testing.assert_allclose(state.momentum_buffer["w"], (0.9 + 0.3) * g["w"], rtol=1e-15)


def _sched(count):
    return 0.05 * (1.0 + (count % 7).astype(jnp.float64) / 3)


# (fnlearn configuration, the optax expression that computes the same update)
OPTAX_SAME = [
    (dict(lr=0.05), optax.sgd(0.05)),
    (dict(lr=0.05, momentum=0.9), optax.sgd(0.05, momentum=0.9)),
    (dict(lr=0.05, momentum=0.9, nesterov=True), optax.sgd(0.05, momentum=0.9, nesterov=True)),
    (dict(lr=0.05, weight_decay=0.1), optax.chain(optax.add_decayed_weights(0.1), optax.sgd(0.05))),
    (dict(lr=0.05, maximize=True), optax.chain(optax.scale(-1.0), optax.sgd(0.05))),
    (dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True),
     optax.chain(optax.scale(-1.0), optax.add_decayed_weights(0.1),
                 optax.sgd(0.05, momentum=0.9, nesterov=True))),
    (dict(lr=_sched, momentum=0.9), optax.sgd(_sched, momentum=0.9)),
]


@pytest.mark.parametrize(("kwargs", "reference"), OPTAX_SAME,
                         ids=["default", "momentum", "nesterov", "wd", "maximize",
                              "nesterov-wd-maximize", "momentum-schedule"])
def test_matches_optax(kwargs, reference):
    p0, grads = problem(seed=11)
    ours, _, _ = trajectory(optim.sgd(**kwargs), p0, grads)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
        theirs, _, _ = trajectory(reference, p0, grads)
    assert rel_disp(p0, theirs, ours) < 1e-13


@pytest.mark.parametrize(
    ("dampening", "reference"),
    [(0.5, optax.chain(optax.scale(0.5), optax.trace(0.9), optax.scale(-0.05))),
     (0.9, optax.chain(optax.ema(0.9, debias=False), optax.scale(-0.05)))],
    ids=["dampening-0.5-trace", "dampening-0.9-ema"],
)
def test_optax_cannot_express_dampening(dampening, reference):
    """torch's first buffer is the undampened gradient, later ones add (1 - d) g; optax's trace
    starts at 0 and its ema dampens the first step too, so the closest chains differ at the
    scale of the displacement (torch-semantics.md: rel_disp 0.51 and 1.30)."""
    p0, grads = problem(seed=12)
    ours, our_updates, _ = trajectory(optim.sgd(lr=0.05, momentum=0.9, dampening=dampening),
                                      p0, grads)
    with jax.numpy_dtype_promotion("standard"):
        theirs, their_updates, _ = trajectory(reference, p0, grads)
    assert rel_disp(p0, theirs, ours) > 0.2
    # The reason: the first update is -lr * g, which the dampened optax chain scales by 1 - d.
    g1 = np.asarray(grads[0][0])
    np.testing.assert_allclose(our_updates[0][0], -0.05 * g1, rtol=1e-15)
    np.testing.assert_allclose(their_updates[0][0], -0.05 * (1 - dampening) * g1, rtol=1e-15)


def test_array_momentum_equal_to_zero_skips_the_buffer_like_torch():
    """torch skips the buffer when momentum == 0 (so dampening has no effect); an array
    momentum (e.g. from optax.inject_hyperparams) keeps fnlearn's buffer but undamped, so the
    update is the plain gradient step."""
    p0, grads = problem(seed=13, steps=5)
    ours, _, _ = trajectory(optim.sgd(lr=0.05, momentum=jnp.asarray(0.0), dampening=0.5),
                            p0, grads)
    plain, _, _ = trajectory(optim.sgd(lr=0.05), p0, grads)
    for a, b in zip(ours, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)
