"""Rprop: torch's argument checks, the sign-driven step sizes, and optax.rprop's lagged step."""

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
        (dict(etas=(0.5, 0.9)), "Invalid eta values: 0.5, 0.9"),
        (dict(etas=(0.0, 1.2)), "Invalid eta values: 0.0, 1.2"),
        (dict(etas=(1.0, 1.2)), "Invalid eta values: 1.0, 1.2"),
    ],
    ids=["lr", "etaplus-below-1", "etaminus-0", "etaminus-1"],
)
def test_bad_hyperparameters_raise_like_torch(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        optim.rprop(**kwargs)


@pytest.mark.parametrize(
    ("step_sizes", "expected_updates", "expected_step_sizes"),
    [
        ((1e-6, 50), [-0.1, -0.12, 0.0, 0.06, 0.072], [0.1, 0.12, 0.06, 0.06, 0.072]),
        ((0.07, 0.11), [-0.1, -0.11, 0.0, 0.07, 0.084], [0.1, 0.11, 0.07, 0.07, 0.084]),
    ],
    ids=["unclamped", "clamped"],
)
def test_step_sizes_follow_the_gradient_signs(step_sizes, expected_updates, expected_step_sizes):
    """Gradients +1, +1, -1, -1, -1 with lr 0.1: same sign grows the step (x1.2), a flip
    shrinks it (x0.5), skips the update and stores prev = 0, so the next step keeps the size."""
    opt = optim.rprop(lr=0.1, step_sizes=step_sizes)
    params = [jnp.zeros(1)]
    state = opt.init(params)
    for g, u_expected, s_expected in zip([1.0, 1.0, -1.0, -1.0, -1.0], expected_updates,
                                         expected_step_sizes, strict=True):
        updates, state = opt.update([jnp.array([g])], state)
        np.testing.assert_allclose(updates[0], [u_expected], rtol=1e-14, atol=0)
        np.testing.assert_allclose(state.step_size[0], [s_expected], rtol=1e-14)
        assert state.prev[0][0] == (0.0 if u_expected == 0 else g)


def test_lr_only_sets_the_initial_step_size():
    """As in torch, lr enters only through the initial step size: a schedule acts through
    its first value."""
    p0, grads = problem(seed=9, steps=10)
    schedule = lambda count: 0.05 * (1 + count.astype(jnp.float64))  # noqa: E731
    scheduled, _, _ = trajectory(optim.rprop(lr=schedule), p0, grads)
    constant, _, _ = trajectory(optim.rprop(lr=0.05), p0, grads)
    for a, b in zip(scheduled, constant, strict=True):
        np.testing.assert_array_equal(a, b)


def test_optax_rprop_emits_the_previous_step():
    """optax.rprop's first update is 0 and each later update is the step stored at the previous
    call (where it is not zeroed by a sign flip): torch's update, one step late."""
    p0, grads = problem(seed=10, steps=20)
    ours, our_updates, _ = trajectory(optim.rprop(), p0, grads)
    with jax.numpy_dtype_promotion("standard"):
        theirs, their_updates, _ = trajectory(optax.rprop(1e-2), p0, grads)
    for mine, other in zip(our_updates, their_updates, strict=True):
        mine, other = np.asarray(mine), np.asarray(other)
        assert not np.any(other[0]) and np.all(mine[0])
        emitted = other[1:] != 0
        assert np.mean(emitted) > 0.3
        np.testing.assert_array_equal(other[1:][emitted], mine[:-1][emitted])
    assert rel_disp(p0, theirs, ours) > 0.5


# torch 2.13 (CPU, float64), Rprop(lr=0.01) from p = [1, 2, 3] with these gradients: torch's
# sign(nan) is 0, so a NaN gradient leaves its parameter and step size as they are and only
# `prev` holds the NaN (which the next step's sign reads as 0 again)
NAN_GRADS = [[0.5, -0.5, 1.0], [np.nan, 0.3, -1.0], [0.2, 0.1, 0.4]]
TORCH_PARAMS = [[0.99, 2.01, 2.99], [0.99, 2.01, 2.99], [0.98, 2.005, 2.985]]
TORCH_STEP_SIZES = [[0.01, 0.01, 0.01], [0.01, 0.005, 0.005], [0.01, 0.005, 0.005]]


@pytest.mark.parametrize("fused", [False, True], ids=["xla", "fused"])
def test_a_nan_gradient_moves_nothing_as_in_torch(fused):
    opt = optim.rprop(lr=0.01, fused=fused)
    params = {"w": jnp.array([1.0, 2.0, 3.0], jnp.float64)}
    state = opt.init(params)
    step = jax.jit(opt.apply if fused else
                   lambda g, s, p: (lambda u, s: (optim.apply_updates(p, u), s))(
                       *opt.update(g, s, p)))
    for g, want_p, want_size in zip(NAN_GRADS, TORCH_PARAMS, TORCH_STEP_SIZES, strict=True):
        params, state = step({"w": jnp.asarray(g, jnp.float64)}, state, params)
        np.testing.assert_allclose(params["w"], want_p, rtol=1e-12)
        np.testing.assert_allclose(state.step_size["w"], want_size, rtol=1e-12)
    assert np.isnan(state.prev["w"]).tolist() == [False, False, False]


@pytest.mark.torch
def test_a_nan_gradient_matches_live_torch():
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    opt = torch.optim.Rprop([p], lr=0.01)
    for g, want_p, want_size in zip(NAN_GRADS, TORCH_PARAMS, TORCH_STEP_SIZES, strict=True):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        np.testing.assert_allclose(p.detach().numpy(), want_p, rtol=1e-12)
        np.testing.assert_allclose(opt.state[p]["step_size"].numpy(), want_size, rtol=1e-12)
