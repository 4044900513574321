"""RMSprop: torch's argument checks, optax as a second oracle, and where optax differs."""

from __future__ import annotations

import inspect

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
        (dict(lr=float("nan")), "Invalid learning rate: nan"),
        (dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
        (dict(momentum=-0.1), "Invalid momentum value: -0.1"),
        (dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
        (dict(alpha=-0.5), "Invalid alpha value: -0.5"),
    ],
    ids=["lr", "lr-nan", "eps", "momentum", "weight_decay", "alpha"],
)
def test_bad_hyperparameters_raise_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        optim.rmsprop(**kwargs)


def test_alpha_above_one_is_accepted_like_torch():
    optim.rmsprop(alpha=1.5)


def test_weight_decay_needs_params():
    opt = optim.rmsprop(weight_decay=0.1)
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="rmsprop.*params"):
        opt.update(params, opt.init(params))


def test_unused_buffers_are_none():
    state = optim.rmsprop().init({"w": jnp.ones(2)})
    assert state.momentum_buffer is None and state.grad_avg is None
    state = optim.rmsprop(momentum=0.9, centered=True).init({"w": jnp.ones(2)})
    assert state.momentum_buffer is not None and state.grad_avg is not None


def _sched(count):
    return 0.01 * (1.0 + (count % 7).astype(jnp.float64) / 3)


def _torch_like(alpha=0.99, eps=1e-8, centered=False, momentum=None, lr=0.01):
    """optax.rmsprop with torch's decay and eps placement (exact for a constant lr)."""
    return optax.rmsprop(lr, decay=alpha, eps=eps, eps_in_sqrt=False, centered=centered,
                         momentum=momentum)


# (fnlearn configuration, the optax expression that computes the same update)
OPTAX_SAME = [
    (dict(), _torch_like()),
    (dict(alpha=0.9, eps=1e-3), _torch_like(alpha=0.9, eps=1e-3)),
    (dict(momentum=0.9), _torch_like(momentum=0.9)),
    (dict(centered=True), _torch_like(centered=True)),
    (dict(centered=True, momentum=0.9), _torch_like(centered=True, momentum=0.9)),
    (dict(weight_decay=0.1, maximize=True),
     optax.chain(optax.scale(-1.0), optax.add_decayed_weights(0.1), _torch_like())),
    # With a changing lr, torch multiplies the buffer by the current lr: reorder the chain.
    (dict(lr=_sched, momentum=0.9),
     optax.chain(optax.scale_by_rms(0.99, 1e-8, eps_in_sqrt=False), optax.trace(0.9),
                 optax.scale_by_learning_rate(_sched))),
    (dict(lr=_sched, momentum=0.9, centered=True, weight_decay=0.05),
     optax.chain(optax.add_decayed_weights(0.05),
                 optax.scale_by_stddev(0.99, 1e-8, eps_in_sqrt=False), optax.trace(0.9),
                 optax.scale_by_learning_rate(_sched))),
]


@pytest.mark.parametrize(("kwargs", "reference"), OPTAX_SAME,
                         ids=["default", "alpha-eps", "momentum", "centered",
                              "centered-momentum", "wd-maximize", "momentum-schedule",
                              "centered-momentum-wd-schedule"])
def test_matches_optax(kwargs, reference):
    p0, grads = problem(seed=21)
    ours, _, _ = trajectory(optim.rmsprop(**{"lr": 0.01, **kwargs}), p0, grads)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
        theirs, _, _ = trajectory(reference, p0, grads)
    assert rel_disp(p0, theirs, ours) < 1e-13


def test_optax_defaults_differ():
    """optax.rmsprop defaults to decay=0.9 (torch alpha=0.99) and eps_in_sqrt=True."""
    defaults = inspect.signature(optax.rmsprop).parameters
    assert defaults["decay"].default == 0.9 and defaults["eps_in_sqrt"].default is True
    p0, grads = problem(seed=22)
    ours, _, _ = trajectory(optim.rmsprop(), p0, grads)
    with jax.numpy_dtype_promotion("standard"):
        theirs, _, _ = trajectory(optax.rmsprop(1e-2), p0, grads)
    assert rel_disp(p0, theirs, ours) > 0.1


@pytest.mark.parametrize(("grad_scale", "low"), [(1.0, 1e-8), (1e-3, 1e-2)],
                         ids=["grads-1", "grads-1e-3"])
def test_optax_eps_in_sqrt_differs(grad_scale, low):
    """eps inside the square root, 1/sqrt(v + eps), versus torch's 1/(sqrt(v) + eps): the
    gap grows as sqrt(v) approaches sqrt(eps) (torch-semantics.md: 4.4e-3 at eps=1e-8)."""
    p0, grads = problem(seed=23, scale=(0.1 * grad_scale, 10.0 * grad_scale))
    ours, _, _ = trajectory(optim.rmsprop(eps=1e-6), p0, grads)
    with jax.numpy_dtype_promotion("standard"):
        theirs, _, _ = trajectory(optax.rmsprop(1e-2, decay=0.99, eps=1e-6), p0, grads)
        exact, _, _ = trajectory(_torch_like(eps=1e-6), p0, grads)
    assert rel_disp(p0, theirs, ours) > low
    assert rel_disp(p0, exact, ours) < 1e-13


def test_optax_rmsprop_momentum_with_a_schedule_differs():
    """optax.rmsprop is chain(scale_by_rms, scale_by_learning_rate, trace): its trace
    accumulates lr_t * g / avg; torch's buffer accumulates g / avg and the current lr
    multiplies it, so the two differ as soon as lr changes (torch-semantics.md: 2.14)."""
    p0, grads = problem(seed=24)
    ours, _, _ = trajectory(optim.rmsprop(lr=_sched, momentum=0.9), p0, grads)
    with jax.numpy_dtype_promotion("standard"):
        theirs, _, _ = trajectory(_torch_like(lr=_sched, momentum=0.9), p0, grads)
    assert rel_disp(p0, theirs, ours) > 0.1


def test_optax_trace_is_minus_lr_times_the_momentum_buffer():
    """For a constant lr the updates agree, and optax's trace state holds -lr * buffer."""
    p0, grads = problem(seed=25, steps=5)
    _, _, ours = trajectory(optim.rmsprop(lr=0.01, momentum=0.9), p0, grads)
    with jax.numpy_dtype_promotion("standard"):
        _, _, theirs = trajectory(_torch_like(momentum=0.9), p0, grads)
    trace = theirs[2].trace
    for b, t in zip(ours.momentum_buffer, trace, strict=True):
        np.testing.assert_allclose(np.asarray(t), -0.01 * np.asarray(b), rtol=1e-13)
