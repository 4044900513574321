"""param_groups against torch's param_groups (``pytest -m torch``): AdamW with a weight-decay
group, a no-decay group for biases and norm scales, a smaller-lr backbone group, and a frozen
parameter; and SGD groups whose lr one group changes at run time."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from fnlearn import optim  # noqa: E402

pytestmark = pytest.mark.torch

SHAPES = {"backbone_w": (3, 2), "backbone_b": (2,), "norm_scale": (2,), "head_w": (2, 1),
          "head_b": (1,), "embed": (4, 2)}
LABELS = {"backbone_w": "backbone", "backbone_b": "no_decay", "norm_scale": "no_decay",
          "head_w": "decay", "head_b": "no_decay", "embed": "frozen"}


def _data(steps):
    rng = np.random.default_rng(0)
    init = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(steps)]
    return init, grads


def _torch_run(init, grads, make_opt, on_step=None):
    params = {k: torch.tensor(v, requires_grad=LABELS[k] != "frozen") for k, v in init.items()}
    opt = make_opt(params)
    for k, g in enumerate(grads):
        for name, p in params.items():
            p.grad = None if LABELS[name] == "frozen" else torch.tensor(g[name])
        opt.step()
        if on_step is not None:
            on_step(opt, k)
    return {k: p.detach().numpy() for k, p in params.items()}


def _ours_run(init, grads, opt, on_step=None):
    params = {k: jnp.asarray(v) for k, v in init.items()}
    state = opt.init(params)
    step = jax.jit(lambda p, s, g: opt.update(g, s, p))
    for k, g in enumerate(grads):
        updates, state = step(params, state, {n: jnp.asarray(v) for n, v in g.items()})
        params = optim.apply_updates(params, updates)
        if on_step is not None:
            state = on_step(state, k)
    return params


def test_adamw_groups_and_frozen_match_torch():
    init, grads = _data(15)

    def make(params):
        by = lambda label: [p for n, p in params.items() if LABELS[n] == label]  # noqa: E731
        return torch.optim.AdamW([
            {"params": by("decay"), "weight_decay": 0.05},
            {"params": by("no_decay"), "weight_decay": 0.0},
            {"params": by("backbone"), "lr": 1e-3},
        ], lr=1e-2, weight_decay=0.05)

    want = _torch_run(init, grads, make)
    got = _ours_run(init, grads, optim.param_groups({
        "decay": optim.adamw(1e-2, weight_decay=0.05),
        "no_decay": optim.adamw(1e-2, weight_decay=0.0),
        "backbone": optim.adamw(1e-3, weight_decay=0.05),
    }, LABELS))
    for name in SHAPES:
        np.testing.assert_allclose(np.asarray(got[name]), want[name], rtol=1e-10, atol=1e-14,
                                   err_msg=name)
    np.testing.assert_array_equal(np.asarray(got["embed"]), init["embed"])


def test_sgd_group_lr_changed_at_runtime_matches_torch():
    """torch: optimizer.param_groups[1]['lr'] *= 0.5 after every step."""
    init, grads = _data(8)
    labels = {k: ("frozen" if v == "frozen" else ("a" if v == "backbone" else "b"))
              for k, v in LABELS.items()}

    def make(params):
        a = [p for n, p in params.items() if labels[n] == "a"]
        b = [p for n, p in params.items() if labels[n] == "b"]
        return torch.optim.SGD([{"params": a}, {"params": b, "lr": 0.2}], lr=0.1, momentum=0.9)

    def halve_torch(opt, k):
        opt.param_groups[1]["lr"] *= 0.5

    def halve_ours(state, k):
        inner = state.inner_states["b"]
        lr = inner.inner_state.hyperparams["lr"] * 0.5
        inner = inner._replace(inner_state=optim.set_hyperparam(inner.inner_state, "lr", lr))
        return state._replace(inner_states={**state.inner_states, "b": inner})

    want = _torch_run(init, grads, make, halve_torch)
    opt = optim.param_groups({"a": optim.sgd(0.1, momentum=0.9),
                              "b": optax.inject_hyperparams(optim.sgd)(lr=0.2, momentum=0.9)},
                             labels)
    got = _ours_run(init, grads, opt, halve_ours)
    for name in SHAPES:
        np.testing.assert_allclose(np.asarray(got[name]), want[name], rtol=1e-10, atol=1e-14,
                                   err_msg=name)
