"""Randomized configurations of SGD, RMSprop, Adagrad, Adam and AdamW against live torch.

Each seed draws parameter shapes, every option (booleans included), hyperparameter values and,
where torch reads them from ``param_groups`` at every step, a random per-step sequence for lr,
momentum, weight_decay and betas (set on torch's group before each ``step()``, given to
fnlearn as schedules). Parameters after every step and the final state (key by key) are
compared: float64 rtol 1e-10, float32 rtol 1e-5.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import optim

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

STEPS = 20
SEEDS = range(6)
RTOL = {"float64": 1e-10, "float32": 1e-5}


def _sequence(rng, low, high, log=False):
    """A random per-step value sequence, constant with probability 1/2."""
    if rng.random() < 0.5:
        value = float(np.exp(rng.uniform(np.log(low), np.log(high))) if log
                      else rng.uniform(low, high))
        return np.full(STEPS, value)
    if log:
        return np.exp(rng.uniform(np.log(low), np.log(high), STEPS))
    return rng.uniform(low, high, STEPS)


def draw(name: str, rng) -> tuple[dict, dict]:
    """Constant options and per-step sequences (group keys) of a random configuration."""
    const: dict = {"maximize": bool(rng.random() < 0.3)}
    seq: dict = {"lr": _sequence(rng, 1e-3, 1e-1, log=True)}
    if rng.random() < 0.6:
        seq["weight_decay"] = _sequence(rng, 1e-3, 0.2, log=True)
    if name == "sgd":
        if rng.random() < 0.8:
            seq["momentum"] = _sequence(rng, 0.1, 0.99)
            if rng.random() < 0.4:
                const["nesterov"] = True
            elif rng.random() < 0.6:
                const["dampening"] = float(rng.uniform(0.0, 0.9))
    elif name == "rmsprop":
        const["alpha"] = float(rng.uniform(0.8, 0.999))
        const["eps"] = float(np.exp(rng.uniform(np.log(1e-10), np.log(1e-2))))
        const["centered"] = bool(rng.random() < 0.5)
        if rng.random() < 0.6:
            seq["momentum"] = _sequence(rng, 0.1, 0.95)
    elif name == "adagrad":
        const["lr_decay"] = float(rng.choice([0.0, rng.uniform(0.0, 0.1)]))
        const["initial_accumulator_value"] = float(rng.choice([0.0, rng.uniform(0.0, 1.0)]))
        const["eps"] = float(np.exp(rng.uniform(np.log(1e-12), np.log(1e-2))))
    else:  # adam, adamw
        const["eps"] = float(np.exp(rng.uniform(np.log(1e-10), np.log(1e-3))))
        const["amsgrad"] = bool(rng.random() < 0.5)
        if name == "adam":
            const["decoupled_weight_decay"] = bool(rng.random() < 0.5)
        seq["betas"] = np.stack([_sequence(rng, 0.5, 0.95), _sequence(rng, 0.9, 0.9999)], -1)
    return const, seq


def _schedule(values):
    """A Python float for a constant sequence, else a schedule ``count -> values[count]``."""
    table = np.asarray(values)
    if np.all(table == table[0]):
        return float(table[0])
    return lambda count: jnp.asarray(table)[count]


def fnlearn_kwargs(const: dict, seq: dict) -> dict:
    kwargs = dict(const)
    for key, values in seq.items():
        if key == "betas":
            kwargs["betas"] = (_schedule(values[:, 0]), _schedule(values[:, 1]))
        else:
            kwargs[key] = _schedule(values)
    return kwargs


TORCH = {"sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adam": "Adam",
         "adamw": "AdamW"}


def run_torch(name, const, seq, p0, grads, dtype):
    tdt = getattr(torch, dtype)
    params = [torch.tensor(p, dtype=tdt, requires_grad=True) for p in p0]
    first = {k: (tuple(v[0]) if k == "betas" else float(v[0])) for k, v in seq.items()}
    opt = getattr(torch.optim, TORCH[name])(params, **const, **first)
    trajectory = []
    for k in range(STEPS):
        for key, values in seq.items():
            opt.param_groups[0][key] = tuple(values[k]) if key == "betas" else float(values[k])
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.tensor(g[k], dtype=tdt)
        opt.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory, [dict(opt.state[p]) for p in params]


def run_fnlearn(name, const, seq, p0, grads, dtype):
    opt = getattr(optim, name)(**fnlearn_kwargs(const, seq))
    params = [jnp.asarray(p, dtype) for p in p0]

    def step(carry, g):
        params, state = carry
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
        return (params, state), params

    stacked = [jnp.asarray(g, dtype) for g in grads]
    (_, state), trajectory = jax.jit(lambda p, g: jax.lax.scan(step, (p, opt.init(p)), g))(
        params, stacked)
    return trajectory, state


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(TORCH))
def test_random_configuration_matches_torch(name, seed, dtype):
    rng = np.random.default_rng([seed, list(TORCH).index(name), dtype == "float32"])
    const, seq = draw(name, rng)
    if const.get("nesterov") and "momentum" not in seq:
        const.pop("nesterov")
    shapes = [tuple(rng.integers(1, 4, rng.integers(0, 3))) for _ in range(rng.integers(1, 4))]
    p0 = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [(rng.standard_normal((STEPS, *s))
              * np.exp(rng.uniform(np.log(0.1), np.log(10.0), (STEPS,) + (1,) * len(s))))
             .astype(dtype) for s in shapes]
    torch_traj, torch_state = run_torch(name, const, seq, p0, grads, dtype)
    traj, state = run_fnlearn(name, const, seq, p0, grads, dtype)
    rtol = RTOL[dtype]
    config = f"{name} {const} {sorted(seq)}"
    for i in range(len(shapes)):
        desired = np.stack([t[i] for t in torch_traj])
        scale = float(np.max(np.abs(desired)))
        np.testing.assert_allclose(np.asarray(traj[i]), desired, rtol=rtol, atol=rtol * scale,
                                   err_msg=f"params[{i}] {config}")
        for key, value in torch_state[i].items():
            field = getattr(state, key)
            leaves = jax.tree.leaves(field)
            ours = np.asarray(leaves[i] if len(leaves) == len(shapes) else leaves[0])
            desired = value.detach().numpy()
            np.testing.assert_allclose(ours, desired, rtol=rtol,
                                       atol=rtol * float(np.max(np.abs(desired))),
                                       err_msg=f"state {key}[{i}] {config}")
