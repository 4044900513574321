"""Complex parameters: every optimizer treats a complex leaf as two independent reals, as
torch's do (``torch.view_as_real``), and the train step hands it torch's ``.grad`` (the
conjugate of ``jax.grad``'s). Torch-free: a complex run must equal, bit for bit, the run on
the same numbers viewed as real pairs (that real run is the path the torch reference
trajectories check); tests/optim/test_complex_live_torch.py compares with torch itself."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn import optim, train
from fnlearn.optim._base import scalar_dtype
from tests._tiers import each_with_one

#: (optimizer, options): every optimizer, the options that add state or touch the params
CONFIGS = [
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.5, dampening=0.3, maximize=True)),
    ("adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("adam", dict(lr=0.01, betas=(0.8, 0.99), maximize=True, decoupled_weight_decay=True,
                  weight_decay=0.05)),
    ("adamw", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("rmsprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
    ("adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.5, weight_decay=0.01)),
    ("adamax", dict(lr=0.01, weight_decay=0.1)),
    ("nadam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("radam", dict(lr=0.01, weight_decay=0.1)),
    ("adadelta", dict(lr=1.0, weight_decay=0.1, maximize=True)),
    ("asgd", dict(lr=0.01, t0=3.0, weight_decay=0.01)),
    ("rprop", dict(lr=0.01, maximize=True)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CONFIGS)]
SHAPES = ((2, 3), (4,))
STEPS = 8
REAL = {"complex128": "float64", "complex64": "float32"}


def complex_problem(dtype: str, seed: int = 0):
    """Initial params (a list of complex arrays) and a gradient sequence, as numpy."""
    rng = np.random.default_rng(seed)

    def draw(shape, scale=1.0):
        z = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        return (z * scale).astype(dtype)

    p0 = [draw(s) for s in SHAPES]
    grads = [[draw(s, float(np.exp(rng.uniform(-2, 2)))) for s in SHAPES] for _ in range(STEPS)]
    return p0, grads


def view_as_real(z) -> np.ndarray:
    """torch.view_as_real: ``[..., (real, imag)]``."""
    z = np.asarray(z)
    return np.stack([z.real, z.imag], axis=-1)


def run(name: str, kwargs: dict, p0, grads):
    """Eager update + apply_updates over the gradient sequence: (params, state)."""
    opt = getattr(optim, name)(**kwargs)
    params = [jnp.asarray(p) for p in p0]
    state = opt.init(params)
    for g in grads:
        updates, state = opt.update([jnp.asarray(x) for x in g], state, params)
        params = optim.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize(("name", "kwargs", "dtype"), each_with_one(  # each config in one dtype
    [pytest.param(*c, id=i) for c, i in zip(CONFIGS, IDS, strict=True)],
    ["complex128", "complex64"]))
def test_complex_leaf_is_two_independent_reals(name, kwargs, dtype):
    p0, grads = complex_problem(dtype)
    params, state = run(name, kwargs, p0, grads)
    real_params, real_state = run(name, kwargs, [view_as_real(p) for p in p0],
                                  [[view_as_real(g) for g in gs] for gs in grads])
    for ours, real in zip(params, real_params, strict=True):
        assert ours.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(view_as_real(ours), np.asarray(real))
    leaves, real_leaves = jax.tree.leaves(state), jax.tree.leaves(real_state)
    assert len(leaves) == len(real_leaves)
    for ours, real in zip(leaves, real_leaves, strict=True):
        if jnp.iscomplexobj(ours):
            assert ours.dtype == np.dtype(dtype)
            ours = view_as_real(ours)
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(real))


@pytest.mark.parametrize(("name", "value"), [("adagrad", 0.5), ("rprop", 0.01)])
def test_buffers_that_start_at_a_value_start_there_in_both_parts(name, value):
    """torch fills Adagrad's sum and Rprop's step size with ``complex(v, v)`` for a complex
    parameter: zero in the imaginary part would freeze it (Rprop) or change its scale."""
    kwargs = {"initial_accumulator_value": value} if name == "adagrad" else {"lr": value}
    state = getattr(optim, name)(**kwargs).init({"z": jnp.zeros(3, jnp.complex64)})
    buffer = state.sum if name == "adagrad" else state.step_size
    assert buffer["z"].dtype == jnp.complex64
    np.testing.assert_array_equal(view_as_real(buffer["z"]), np.full((3, 2), value, np.float32))


@pytest.mark.parametrize("name", ["sgd", "adam", "adagrad", "rprop"])
def test_fused_apply_takes_complex_leaves_through_the_rule(name):
    """``fused=True`` on a tree with a complex leaf: the kernel takes the float32 leaf, the
    XLA rule (as two reals) the complex one; the result equals the unfused update's."""
    rng = np.random.default_rng(1)
    params = {"w": jnp.asarray(rng.standard_normal(5), jnp.float32),
              "z": jnp.asarray(rng.standard_normal((2, 2)) + 1j * rng.standard_normal((2, 2)),
                               jnp.complex64)}
    grads = jax.tree.map(lambda p: p * 0.5 - 0.1, params)
    fused = getattr(optim, name)(lr=0.01, fused=True)
    plain = getattr(optim, name)(lr=0.01)
    ours = jax.jit(fused.apply)(grads, fused.init(params), params)
    theirs = jax.jit(lambda g, s, p: optim.update_and_apply(plain, g, s, p))(
        grads, plain.init(params), params)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_compute_dtype_of_complex_leaves():
    assert scalar_dtype({"z": jnp.zeros(2, jnp.complex128)}) == np.float64
    assert scalar_dtype({"z": jnp.zeros(2, jnp.complex64)}) == np.float32


def test_train_step_hands_the_optimizer_torchs_gradient():
    """loss = sum |z - t|^2: torch's ``z.grad`` is ``2 (z - t)`` (jax.grad returns its
    conjugate), so one SGD step moves z to ``z - 2 lr (z - t)``, towards t."""
    z0 = jnp.asarray([1.0 + 2.0j, -0.5 + 0.25j], jnp.complex128)
    target = jnp.asarray([0.5 - 1.0j, 2.0 + 0.0j], jnp.complex128)

    def loss_fn(params, batch):
        return jnp.sum(jnp.abs(params["z"] - batch) ** 2)

    lr = 0.1
    step = train.make_train_step(loss_fn, optim.sgd(lr=lr), donate=False)
    state, _ = step(train.TrainState.create({"z": z0}, optim.sgd(lr=lr)), target)
    np.testing.assert_allclose(np.asarray(state.params["z"]),
                               np.asarray(z0 - 2 * lr * (z0 - target)), rtol=1e-15)
    for _ in range(60):  # and it converges
        state, metrics = step(state, target)
    assert float(metrics["loss"]) < 1e-10


def test_optax_adam_differs_on_complex_leaves_and_split_real_and_imaginary_matches():
    """optax's adaptive rules take ``|g|^2`` of a complex gradient (one second moment per
    complex element); torch, and fnlearn, one per real part. ``optax.contrib.
    split_real_and_imaginary`` runs optax on the two real parts: torch's numbers."""
    p0, grads = complex_problem("complex128")
    ours, _ = run("adam", dict(lr=0.01), p0, grads)

    @jax.jit(static_argnums=0)  # one program per rule for the whole sequence
    def run_optax(opt):
        params = [jnp.asarray(p) for p in p0]
        state = opt.init(params)
        for g in grads:
            updates, state = opt.update([jnp.asarray(x) for x in g], state, params)
            params = optax.apply_updates(params, updates)
        return params

    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
        split = run_optax(optax.contrib.split_real_and_imaginary(optax.adam(0.01)))
        plain = run_optax(optax.adam(0.01))
    for a, b, c in zip(ours, split, plain, strict=True):
        scale = np.max(np.abs(np.asarray(a)))
        assert np.max(np.abs(np.asarray(a) - np.asarray(b))) / scale < 1e-12
        assert np.max(np.abs(np.asarray(a) - np.asarray(c))) / scale > 1e-3


def test_clip_grad_norm_takes_the_modulus_of_complex_leaves():
    """torch: ``vector_norm`` of a complex tensor is the norm of ``|z|``; both parts are
    scaled by the same coefficient. (Values checked against torch by hand: 5.9372...)"""
    grads = {"z": jnp.asarray([3 + 4j, 1 - 2j, 0.5j], jnp.complex128),
             "w": jnp.asarray([1.0, -2.0], jnp.float64)}
    total = np.sqrt(25 + 5 + 0.25 + 1 + 4)
    clipped, norm = optim.clip_grad_norm(grads, 1.0)
    np.testing.assert_allclose(float(norm), total, rtol=1e-15)
    coef = 1.0 / (total + 1e-6)
    assert clipped["z"].dtype == jnp.complex128
    np.testing.assert_allclose(np.asarray(clipped["z"]), np.asarray(grads["z"]) * coef,
                               rtol=1e-15)
    inf_norm = optim.get_total_norm({"z": grads["z"]}, norm_type="inf")
    np.testing.assert_allclose(float(inf_norm), 5.0, rtol=1e-15)


def test_clip_grad_value_rejects_complex_leaves_as_torch_does():
    with pytest.raises(NotImplementedError, match=r"grads\['z'\] is complex"):
        optim.clip_grad_value({"z": jnp.ones(2, jnp.complex64)}, 1.0)


def test_flat_layout_keeps_complex_leaves_complex():
    """``TrainState.create(..., flat=True)`` packs a complex leaf in a complex buffer; the
    step (conjugated gradient, rule on real pairs) equals the tree layout's."""
    rng = np.random.default_rng(2)
    params = {"w": jnp.asarray(rng.standard_normal(3)),
              "z": jnp.asarray(rng.standard_normal((2, 2)) + 1j * rng.standard_normal((2, 2)))}

    def loss_fn(p, target):
        return jnp.sum(jnp.abs(p["z"] - target) ** 2) + jnp.sum(p["w"] ** 2)

    target = jnp.full((2, 2), 1 - 1j, jnp.complex128)
    finals = []
    for flat in (False, True):
        opt = optim.adam(lr=0.1)
        step = train.make_train_step(loss_fn, opt, donate=False)
        state = train.TrainState.create(params, opt, flat=flat)
        for _ in range(5):
            state, _ = step(state, target)
        finals.append(state.params.tree() if flat else state.params)
    assert finals[1]["z"].dtype == jnp.complex128
    for k in params:
        np.testing.assert_allclose(np.asarray(finals[1][k]), np.asarray(finals[0][k]),
                                   rtol=1e-14)
