"""param_groups / freeze: torch's param_groups as one transformation with one state pytree.

Oracle: each group's optimizer run on its own sub-tree (exactly what torch does per group;
the optimizers themselves are checked against torch elsewhere, and the whole setup against
torch in test_groups_live_torch.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn import optim
from fnlearn.optim import FROZEN, freeze, param_groups


def _params():
    rng = np.random.default_rng(0)
    return {
        "backbone": {"w": jnp.asarray(rng.standard_normal((3, 2))),
                     "b": jnp.asarray(rng.standard_normal(2))},
        "norm": {"scale": jnp.asarray(rng.standard_normal(2))},
        "head": {"w": jnp.asarray(rng.standard_normal((2, 1))),
                 "b": jnp.asarray(rng.standard_normal(1))},
    }


def _grads(k):
    rng = np.random.default_rng(100 + k)
    return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape)), _params())


def _path(path):
    return jax.tree_util.keystr(path)


def _run(opt, params, steps=3, keys=None):
    """``steps`` jitted updates with the gradients _grads(k) (restricted to ``keys``)."""
    state = opt.init(params)

    @jax.jit
    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    for k in range(steps):
        grads = _grads(k) if keys is None else _sub(_grads(k), keys)
        params, state = step(params, state, grads)
    return params, state


def _sub(tree, keys):
    return {k: tree[k] for k in keys}


def test_no_weight_decay_on_biases_and_norm_scales():
    """torch: AdamW([{'params': weights, 'weight_decay': 0.05},
    {'params': biases_and_norms, 'weight_decay': 0.0}], lr=1e-2)."""
    params = _params()
    labels = jax.tree.map(lambda p: "decay" if p.ndim >= 2 else "no_decay", params)
    opt = param_groups({"decay": optim.adamw(1e-2, weight_decay=0.05),
                        "no_decay": optim.adamw(1e-2, weight_decay=0.0)}, labels)
    got, _ = _run(opt, params)

    # oracle: each optimizer alone on its leaves
    flat, treedef = jax.tree.flatten(params)
    flat_labels = treedef.flatten_up_to(labels)
    for label, wd in (("decay", 0.05), ("no_decay", 0.0)):
        idx = [i for i, lab in enumerate(flat_labels) if lab == label]
        alone = optim.adamw(1e-2, weight_decay=wd)
        sub = [flat[i] for i in idx]
        state = alone.init(sub)
        update = jax.jit(alone.update)
        for k in range(3):
            g = treedef.flatten_up_to(_grads(k))
            updates, state = update([g[i] for i in idx], state, sub)
            sub = optim.apply_updates(sub, updates)
        got_flat = jax.tree.leaves(got)
        for j, i in enumerate(idx):
            np.testing.assert_allclose(np.asarray(got_flat[i]), np.asarray(sub[j]), rtol=1e-14)
    # decay matters: with one group for everything the biases would differ
    everything, _ = _run(optim.adamw(1e-2, weight_decay=0.05), params)
    assert not np.allclose(np.asarray(everything["head"]["b"]), np.asarray(got["head"]["b"]))


def test_smaller_lr_for_a_backbone_with_a_label_function():
    """Labels from a function of the tree (paths): backbone lr 1e-3, the rest 1e-1."""
    params = _params()

    def label_fn(tree):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: "backbone" if _path(path).startswith("['backbone']") else "rest",
            tree)

    opt = param_groups({"backbone": optim.sgd(1e-3, momentum=0.9),
                        "rest": optim.sgd(1e-1, momentum=0.9)}, label_fn)
    got, state = _run(opt, params)
    back, _ = _run(optim.sgd(1e-3, momentum=0.9), _sub(params, ["backbone"]), keys=["backbone"])
    rest, _ = _run(optim.sgd(1e-1, momentum=0.9), _sub(params, ["norm", "head"]),
                   keys=["norm", "head"])

    def check(ours, theirs):
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-14)

    check(_sub(got, ["backbone"]), back)
    check(_sub(got, ["norm", "head"]), rest)


def test_labels_may_be_a_prefix_tree():
    params = _params()
    labels = {"backbone": "frozen", "norm": "train", "head": "train"}
    got, _ = _run(param_groups({"train": optim.sgd(0.1)}, labels), params)
    np.testing.assert_array_equal(np.asarray(got["backbone"]["w"]),
                                  np.asarray(params["backbone"]["w"]))
    assert not np.allclose(np.asarray(got["head"]["w"]), np.asarray(params["head"]["w"]))


@pytest.mark.parametrize("how", ["frozen-label", "none-group"])
def test_frozen_params_get_zero_updates_and_no_state(how):
    params = _params()
    if how == "frozen-label":
        groups = {"train": optim.adam(1e-2)}
        frozen_label = FROZEN
    else:
        groups = {"train": optim.adam(1e-2), "fixed": None}
        frozen_label = "fixed"
    labels = {"backbone": frozen_label, "norm": "train", "head": "train"}
    opt = param_groups(groups, labels)
    state = opt.init(params)
    updates, new_state = opt.update(_grads(0), state, params)
    for u in jax.tree.leaves(updates["backbone"]):
        np.testing.assert_array_equal(np.asarray(u), 0.0)
    assert all(np.any(np.asarray(u) != 0) for u in jax.tree.leaves(updates["head"]))
    # no buffers for the frozen leaves: Adam's state holds exactly the trainable elements
    adam_state = state.inner_states["train"].inner_state
    trainable = sum(x.size for x in jax.tree.leaves(_sub(params, ["norm", "head"])))
    assert sum(x.size for x in jax.tree.leaves(adam_state.exp_avg)) == trainable
    assert sum(x.size for x in jax.tree.leaves(adam_state.exp_avg_sq)) == trainable
    assert isinstance(adam_state.exp_avg["backbone"], optax.MaskedNode)
    frozen_state = jax.tree.leaves(state.inner_states[frozen_label])
    assert frozen_state == []
    # one state pytree, stable across updates
    assert jax.tree.structure(new_state) == jax.tree.structure(state)


def test_freeze_helper_with_mask_and_mask_function():
    params = _params()
    mask = {"backbone": True, "norm": False, "head": False}
    got, state = _run(freeze(optim.adam(1e-2), mask), params)
    np.testing.assert_array_equal(np.asarray(got["backbone"]["b"]),
                                  np.asarray(params["backbone"]["b"]))
    alone, _ = _run(optim.adam(1e-2), _sub(params, ["norm", "head"]), keys=["norm", "head"])
    for a, b in zip(jax.tree.leaves(_sub(got, ["norm", "head"])), jax.tree.leaves(alone),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-14)
    # a function of the tree: freeze every 1-d leaf
    got2, _ = _run(freeze(optim.sgd(0.1), lambda t: jax.tree.map(lambda p: p.ndim == 1, t)),
                   params)
    np.testing.assert_array_equal(np.asarray(got2["norm"]["scale"]),
                                  np.asarray(params["norm"]["scale"]))
    assert not np.allclose(np.asarray(got2["head"]["w"]), np.asarray(params["head"]["w"]))


def test_per_group_runtime_lr_without_recompiling():
    """torch: optimizer.param_groups[1]['lr'] = x. Here: inject_hyperparams in a group."""
    params = _params()
    labels = {"backbone": "backbone", "norm": "head", "head": "head"}
    opt = param_groups({"backbone": optax.inject_hyperparams(optim.sgd)(lr=1e-3),
                        "head": optax.inject_hyperparams(optim.sgd)(lr=1e-1)}, labels)
    state = opt.init(params)
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(None)
        updates, state = opt.update(grads, state, params)
        return updates, state

    grads = jax.tree.map(jnp.ones_like, params)
    updates, state = step(params, state, grads)
    assert float(updates["head"]["w"][0, 0]) == pytest.approx(-0.1)
    head = state.inner_states["head"]
    head = head._replace(inner_state=optim.set_hyperparam(head.inner_state, "lr", 0.5))
    state = state._replace(inner_states={**state.inner_states, "head": head})
    updates, state = step(params, state, grads)
    assert float(updates["head"]["w"][0, 0]) == pytest.approx(-0.5)
    assert float(updates["backbone"]["w"][0, 0]) == pytest.approx(-1e-3)
    assert len(traces) == 1


def test_unknown_label_and_bad_groups_raise():
    params = _params()
    opt = param_groups({"a": optim.sgd(0.1)}, jax.tree.map(lambda _: "b", params))
    with pytest.raises(ValueError, match="labels \\['b'\\] have no group"):
        opt.init(params)
    with pytest.raises(ValueError, match="non-empty mapping"):
        param_groups({}, "a")
    with pytest.raises(TypeError, match="group 'a' must be a GradientTransformation or None"):
        param_groups({"a": 0.1}, "a")
    # update checks the labels too (a label function of the gradients)
    opt = param_groups({"a": optim.sgd(0.1)},
                       lambda t: jax.tree.map(lambda p: "a" if p.ndim == 2 else "c", t))
    with pytest.raises(ValueError, match="'c'"):
        opt.init(params)
