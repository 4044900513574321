"""``fused=True`` (fnlearn/optim/_fused.py): the fused CPU kernels against torch's reference
trajectories, the XLA path they replace, the in-place contract (no copies when donated), the
named contract with the C++ library, how the library is built and found (never compiled at
run time), and fused=True inside param_groups and optax.chain."""

from __future__ import annotations

import ctypes
import enum
import re
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn import optim, schedules, train
from fnlearn.flat import Flat
from fnlearn.optim import _fused, _fused_build, build_fused
from tests import _xla
from tests._tiers import first_of_each
from tests.optim.cases import all_cases
from tests.optim.test_reference import check_against_reference

FUSED = ("sgd", "adagrad", "adam", "adamw", "rmsprop", "adamax", "nadam", "radam", "adadelta",
         "asgd", "rprop")
on_cpu = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the kernels are CPU kernels")


def _reference_cases():
    for table, case in all_cases():
        if case.name in FUSED:
            for dtype in case.dtypes:
                yield pytest.param(table, case, dtype, id=f"{case.id}-{dtype}")


@pytest.mark.parametrize(("table", "case", "dtype"),
                         first_of_each(_reference_cases(),
                                       lambda table, case, dtype: (case.name, dtype)))
def test_fused_matches_torch_reference(table, case, dtype):
    """Every stored torch configuration of the four optimizers, 50 steps, params and state."""
    check_against_reference(table, case, dtype, fused=True)


CONFIGS = [
    ("sgd", {}),
    ("sgd", dict(momentum=0.9, dampening=0.3, weight_decay=0.1)),
    ("sgd", dict(momentum=0.9, nesterov=True, maximize=True)),
    ("adagrad", dict(lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.2)),
    ("adagrad", dict(maximize=True)),
    ("adam", {}),
    ("adam", dict(amsgrad=True, weight_decay=0.1, maximize=True)),
    ("adam", dict(decoupled_weight_decay=True, weight_decay=0.1)),
    ("adamw", dict(amsgrad=True, maximize=True)),
    ("rmsprop", dict(weight_decay=0.1)),
    ("rmsprop", dict(centered=True, momentum=0.9, maximize=True)),
    ("rmsprop", dict(centered=True)),
    ("rmsprop", dict(momentum=0.5)),
    ("adamax", dict(weight_decay=0.1, maximize=True)),
    ("nadam", dict(weight_decay=0.1)),
    ("nadam", dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("radam", dict(weight_decay=0.1)),  # 4 steps: not rectified yet (rho_t <= 5)
    ("radam", dict(betas=(0.9, 0.5), weight_decay=0.1, decoupled_weight_decay=True)),  # rectified
    ("adadelta", dict(weight_decay=0.1, maximize=True)),
    ("asgd", dict(weight_decay=0.1, t0=2)),  # averaging starts at step 3
    ("rprop", dict(maximize=True)),
    ("rprop", dict(etas=(0.3, 1.5), step_sizes=(1e-3, 0.1))),
]


def _tree(dtype, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"w": (7, 5), "b": (5,), "s": (), "big": (70_000,), "empty": (0, 3)}
    return {k: jnp.asarray(rng.standard_normal(s), dtype) for k, s in shapes.items()}


def _grads(params, i):
    return jax.tree.map(lambda x: jnp.sin(x * (i + 1.5)).astype(x.dtype), params)


_jit_grads = jax.jit(_grads, static_argnums=1)  # one compile, not one per op and leaf shape
_copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))  # fresh buffers to donate


@partial(jax.jit, static_argnums=0)
def _plain_step(opt, p, s, g):
    """The XLA path: ``opt.update`` then ``apply_updates``, one program per optimizer."""
    u, s = opt.update(g, s, p)
    return optim.apply_updates(p, u), s


def _apply_cases():
    for name, kwargs in CONFIGS:
        for dtype in ("float64", "float32", "bfloat16"):
            yield pytest.param(name, kwargs, dtype, id=f"{name}-{kwargs}-{dtype}")


@pytest.mark.parametrize(("name", "kwargs", "dtype"),
                         first_of_each(_apply_cases(),  # each optimizer in float64, each dtype
                                       lambda name, kwargs, dtype:
                                       name if dtype == "float64" else dtype))
def test_fused_apply_equals_update_then_apply_updates(name, kwargs, dtype):
    """Same numbers as the XLA path up to round-off (bfloat16 takes the XLA rule itself), on a
    tree with a scalar, an empty and a large leaf, jitted with donation."""
    plain = getattr(optim, name)(0.05, **kwargs)
    fused = getattr(optim, name)(0.05, fused=True, **kwargs)
    assert isinstance(fused, optim.FusedGradientTransformation)
    p1 = p2 = _tree(dtype)
    s1, s2 = plain.init(p1), fused.init(p2)
    assert jax.tree.structure(s1) == jax.tree.structure(s2)
    apply = jax.jit(lambda p, s, g: fused.apply(g, s, p), donate_argnums=(0, 1))
    for i in range(4):
        g = _jit_grads(p1, i)
        p1, s1 = _plain_step(plain, p1, s1, g)
        p2, s2 = apply(_copy(p2), s2, g)
    rtol = {"float64": 1e-14, "float32": 2e-6, "bfloat16": 1e-2}[dtype]
    for a, b in zip(jax.tree.leaves((p2, s2)), jax.tree.leaves((p1, s1)), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        if b.size:
            scale = float(np.max(np.abs(np.asarray(b, np.float64))))
            np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                       rtol=rtol, atol=rtol * scale)


@on_cpu
@pytest.mark.parametrize("name", FUSED)
def test_fused_step_is_one_kernel_per_buffer_in_place(name):
    """Donated: one custom call for all leaves (multi-tensor apply), no copy of anything."""
    extra = {"adam": {"amsgrad": True}, "rmsprop": {"centered": True, "momentum": 0.9}}
    opt = getattr(optim, name)(1e-3, fused=True, **extra.get(name, {}))
    params = {"a": jnp.ones(1000, jnp.float32), "b": jnp.ones((10, 10), jnp.float32)}

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(p, s, g):
        return opt.apply(g, s, p)

    hlo = step.lower(params, opt.init(params), params).compile().as_text()
    assert len(re.findall(r"custom_call_target=\"FnlearnFused", hlo)) == 1  # all leaves
    assert not re.findall(r"= f32\[[0-9,]+\]\{[0-9,]*\} copy\(", hlo)


@on_cpu
def test_update_after_the_loss_needs_no_copy_of_a_penalized_parameter():
    """A user's own step whose loss reads the weights outside their gradients' chain (a
    penalty ``sum(w ** 2)``): without an order XLA copies each weight before the in-place
    kernel overwrites it; ``update_and_apply(..., after=loss)`` orders the kernel after the
    loss, with no copy and the same numbers bit for bit."""
    params = {f"w{i}": jnp.full((16, 16), 0.1 * (i + 1), jnp.float32) for i in range(3)}

    def loss(p, x):
        return sum(jnp.sum(w ** 2) for w in p.values()) + jnp.mean(x)

    opt = optim.adam(lr=0.01)

    def own_step(ordered):
        def step(p, s, x):
            value, grads = jax.value_and_grad(loss)(p, x)
            p, s = optim.update_and_apply(opt, grads, s, p, after=value if ordered else None)
            return p, s, value
        return jax.jit(step, donate_argnums=(0, 1))

    x = jnp.ones(4, jnp.float32)
    copies = {}
    for ordered in (False, True):
        hlo = own_step(ordered).lower(params, opt.init(params), x).compile().as_text()
        assert "FnlearnFused" in hlo
        copies[ordered] = len(re.findall(r"= f32\[16,16\]\{[0-9,]+\} copy\(", hlo))
    assert copies == {False: 6, True: 0}  # two per weight without the order
    got = want = (params, opt.init(params))
    for _ in range(3):
        *got, _ = own_step(True)(*jax.tree.map(jnp.copy, got), x)
        *want, _ = own_step(False)(*jax.tree.map(jnp.copy, want), x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@on_cpu
def test_many_leaves_are_split_over_several_in_place_kernel_calls(monkeypatch):
    """More leaves than LEAVES_PER_CALL: ceil(leaves / LEAVES_PER_CALL) custom calls (XLA's
    CPU fusion pass is superlinear in one call's aliased operands), still no copy, and the
    XLA path's numbers."""
    monkeypatch.setattr(_fused, "LEAVES_PER_CALL", 4)
    rng = np.random.default_rng(2)
    params = {f"p{i}": jnp.asarray(rng.standard_normal(3 + i), jnp.float32) for i in range(10)}
    plain, fused = optim.adam(0.1, amsgrad=True), optim.adam(0.1, amsgrad=True, fused=True)
    # donated inputs in the order of the outputs: JAX pairs them by shape, first come first
    step = jax.jit(lambda p, s, g: fused.apply(g, s, p), donate_argnums=(0, 1))
    grads = _jit_grads(params, 0)
    hlo = step.lower(params, fused.init(params), grads).compile().as_text()
    assert len(re.findall(r"custom_call_target=\"FnlearnFused", hlo)) == 3
    assert not re.findall(r"= f32\[[0-9,]+\]\{[0-9,]*\} copy\(", hlo)
    p1, s1 = _plain_step(plain, params, jax.jit(plain.init)(params), grads)
    p2, s2 = step(_copy(params), jax.jit(fused.init)(params), grads)
    for a, b in zip(jax.tree.leaves((p2, s2)), jax.tree.leaves((p1, s1)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("dtypes", [
    ("float32", "bfloat16"), pytest.param(("float64", "float32"), marks=pytest.mark.exhaustive)])
def test_mixed_dtype_trees_split_between_the_kernel_and_the_xla_rule(dtypes):
    """Leaves of the step's compute dtype go to the kernel, the others to the XLA rule."""
    rng = np.random.default_rng(1)
    params = {"a": jnp.asarray(rng.standard_normal(300), dtypes[0]),
              "b": jnp.asarray(rng.standard_normal((4, 5)), dtypes[1]),
              "c": jnp.asarray(rng.standard_normal(7), dtypes[0])}
    plain, fused = optim.adam(0.1, amsgrad=True), optim.adam(0.1, amsgrad=True, fused=True)
    s1, s2, p1, p2 = plain.init(params), fused.init(params), params, params
    apply = jax.jit(fused.apply)
    for i in range(3):
        g = _jit_grads(p1, i)
        p1, s1 = _plain_step(plain, p1, s1, g)
        p2, s2 = apply(g, s2, p2)
    for a, b in zip(jax.tree.leaves((p2, s2)), jax.tree.leaves((p1, s1)), strict=True):
        assert a.dtype == b.dtype
        tol = 1e-2 if a.dtype == jnp.bfloat16 else 2e-6
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                   rtol=tol, atol=tol * np.max(np.abs(np.asarray(b, np.float64))))


def test_fused_with_a_schedule_and_flat_params():
    """A traced lr (schedule) and Flat params give the XLA path's numbers."""
    lr = schedules.cosine_annealing_lr(0.1, T_max=5)
    plain, fused = optim.adamw(lr), optim.adamw(lr, fused=True)
    tree = _tree("float32")
    flat = Flat.of(tree)
    s1, s2 = plain.init(tree), fused.init(flat)
    p1, p2 = tree, flat
    apply = jax.jit(fused.apply)
    for i in range(5):
        g = _jit_grads(p1, i)
        p1, s1 = _plain_step(plain, p1, s1, g)
        p2, s2 = apply(flat.like(g), s2, p2)
    for a, b in zip(jax.tree.leaves(p2.tree()), jax.tree.leaves(p1), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-7)


def test_make_train_step_uses_the_fused_apply():
    """The step runs the kernel (on CPU) by default (fused=None) and with fused=True, never
    with fused=False, and trains as the unfused optimizer does. The default optimizer is a
    plain optax transformation whose own update is the XLA rule, without a warning."""
    rng = np.random.default_rng(0)
    x, y = jnp.asarray(rng.standard_normal((16, 4))), jnp.asarray(rng.standard_normal((16, 1)))
    params = {"w": jnp.zeros((4, 1)), "b": jnp.zeros((1, 1))}

    def loss_fn(p, batch):
        return jnp.mean((batch[0] @ p["w"] + p["b"] - batch[1]) ** 2)

    out = []
    for fused in (False, None, True):
        opt = optim.sgd(0.1, momentum=0.9, fused=fused)
        step = train.make_train_step(loss_fn, opt)
        state = train.TrainState.create(params, opt)
        if jax.default_backend() == "cpu":
            hlo = step.lower(state, (x, y)).compile().as_text()
            assert ("FnlearnFusedSgd" in hlo) == (fused is not False), fused
        for _ in range(5):
            state, metrics = step(state, (x, y))
        out.append((state.params, metrics["loss"]))
    for fused in out[1:]:
        for a, b in zip(jax.tree.leaves(fused), jax.tree.leaves(out[0]), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    default = optim.sgd(0.1, momentum=0.9)
    assert type(default) is optax.GradientTransformation
    assert optim.fused_apply_of(default) is not None
    assert optim.fused_apply_of(optim.sgd(0.1, fused=False)) is None
    assert optim.fused_apply_of(optax.chain(default)) is None
    own = jax.jit(lambda p, s, g: optim.apply_updates(p, default.update(g, s, p)[0]))
    assert "FnlearnFused" not in own.lower(params, default.init(params), params).as_text()


@on_cpu
def test_vmapped_apply_equals_the_xla_path():
    """An ensemble under vmap: shared scalars take one kernel call for the batch, per-member
    scalars (a vmapped state's step) one call per member; both give the XLA path's numbers."""
    rng = np.random.default_rng(3)
    params = {"a": jnp.asarray(rng.standard_normal((3, 5)), jnp.float32),
              "b": jnp.asarray(rng.standard_normal(3), jnp.float32)}
    grads = _jit_grads(params, 0)
    for fused, plain, calls in [(optim.rprop(0.1, fused=True), optim.rprop(0.1), 1),
                                (optim.adam(0.1, amsgrad=True, fused=True),
                                 optim.adam(0.1, amsgrad=True), 3)]:
        step = jax.jit(jax.vmap(lambda p, s, g, f=fused: f.apply(g, s, p)))
        states = jax.jit(jax.vmap(fused.init))(params)
        hlo = step.lower(params, states, grads).compile().as_text()
        assert len(re.findall(r"custom_call_target=\"FnlearnFused", hlo)) == calls
        got = step(params, states, grads)

        def ref(p, s, g, opt=plain):
            u, s = opt.update(g, s, p)
            return optim.apply_updates(p, u), s

        want = jax.jit(lambda p, g, ref=ref, opt=plain: jax.vmap(ref)(p, jax.vmap(opt.init)(p),
                                                                       g))(params, grads)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-7)


def test_differentiating_the_fused_apply_names_the_alternative():
    params = {"w": jnp.ones(3)}

    def new_w(lr):
        opt = optim.adam(lr, fused=True)
        return jnp.sum(opt.apply(params, opt.init(params), params)[0]["w"])

    if jax.default_backend() == "cpu":
        with pytest.raises(TypeError, match="update \\+ apply_updates"):
            jax.grad(new_w)(0.1)
    else:  # the XLA rule: differentiable
        assert jnp.isfinite(jax.grad(new_w)(0.1))


SHARDED_SCRIPT = """
import re, jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from fnlearn import optim, train

assert jax.device_count() == 2
mesh = Mesh(np.array(jax.devices()), ("d",))
rng = np.random.default_rng(0)
specs = {"w": P("d"), "v": P(None, "d"), "b": P()}
params = {k: jax.device_put(jnp.asarray(rng.standard_normal(s), jnp.float32),
                            NamedSharding(mesh, specs[k]))
          for k, s in {"w": (8, 3), "v": (3, 8), "b": (4,)}.items()}
for name, kw in [("adam", dict(amsgrad=True)), ("sgd", dict(momentum=0.9)), ("rprop", {})]:
    fused, plain = getattr(optim, name)(0.1, fused=True, **kw), getattr(optim, name)(0.1, **kw)
    step = jax.jit(lambda p, s, g: optim.update_and_apply(fused, g, s, p), donate_argnums=(0, 1))
    p1, s1, p0, s0 = jax.tree.map(jnp.copy, params), fused.init(params), params, plain.init(params)
    hlo = step.lower(p1, s1, params).compile().as_text()
    assert "FnlearnFused" in hlo and "all-gather" not in hlo, name
    for i in range(3):
        g = jax.tree.map(lambda x: jnp.sin(x * (i + 1.5)), p0)
        p1, s1 = step(p1, s1, g)
        u, s0 = plain.update(g, s0, p0)
        p0 = optim.apply_updates(p0, u)
    for k in params:
        assert p1[k].sharding.spec == P(*specs[k]), (name, k, p1[k].sharding)
        np.testing.assert_allclose(p1[k], p0[k], rtol=2e-6, atol=2e-7)

# a data-parallel train step: params and optimizer state stay sharded
x = jax.device_put(jnp.asarray(rng.standard_normal((16, 8)), jnp.float32),
                   NamedSharding(mesh, P("d")))
opt = optim.adam(0.1, fused=True)
state = train.TrainState.create({"w": params["w"]}, opt)
step = train.make_train_step(lambda p, xb: jnp.mean((xb @ p["w"]) ** 2), opt)
for _ in range(2):
    state, metrics = step(state, x)
assert state.params["w"].sharding.spec == P("d"), state.params["w"].sharding
assert state.opt_state.exp_avg["w"].sharding.spec == P("d")
print("ok")
"""


@on_cpu
def test_sharded_params_are_updated_shard_by_shard():
    """Over two CPU devices the kernel runs on each device's shards (custom_partitioning):
    no all-gather, the params keep their sharding, the XLA path's numbers."""
    env = _xla.env(devices=2)
    proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_fused_errors_name_the_argument(monkeypatch, tmp_path):
    with pytest.raises(TypeError, match="fused"):
        optim.adam(fused=1)
    opt = optim.sgd(0.1, fused=True)
    with pytest.raises(ValueError, match="params"):
        opt.apply({"w": jnp.ones(2)}, opt.init({"w": jnp.ones(2)}))
    # scalars are named: the kernel's own NamedTuple or a TypeError naming it
    sgd = _fused.SgdScalars(*[jnp.float32(0)] * 4)
    with pytest.raises(TypeError, match="AdamScalars"):
        _fused.fused_apply(_fused.Kernel.ADAM, 0, sgd, lambda *a: a, {}, {}, ())
    # the build command without a compiler: an error that says what to do
    monkeypatch.setenv("CXX", "fnlearn-no-such-compiler")
    with pytest.raises(RuntimeError, match="set CXX"):
        _fused_build.compile_library(tmp_path / "k.so")


def test_the_build_finds_the_ffi_headers_where_jax_does_without_importing_it():
    assert _fused_build.ffi_include_dir() == Path(jax.ffi.include_dir())
    assert (_fused_build.ffi_include_dir() / "xla" / "ffi" / "api" / "ffi.h").is_file()


def test_a_failed_build_leaves_no_library_behind(monkeypatch, tmp_path):
    monkeypatch.setenv("FNLEARN_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    with pytest.raises(RuntimeError, match="failed"):
        _fused_build.build()
    assert not list(tmp_path.glob("*.so"))


@pytest.mark.exhaustive  # a full compile of the kernels: tens of seconds
def test_the_build_command_builds_into_an_empty_cache(monkeypatch, tmp_path, capsys):
    """``python -m fnlearn.optim.build_fused``: one library in the cache, stamped with the
    source it was built from, exporting the kernels and the contract; again: from the cache."""
    monkeypatch.setenv("FNLEARN_CACHE", str(tmp_path))
    path = build_fused.main([])
    assert capsys.readouterr().out.strip() == str(path)
    assert list(tmp_path.glob("fused-*.so")) == [path]
    stamp = path.stat().st_mtime_ns
    assert _fused_build.build() == path and path.stat().st_mtime_ns == stamp
    lib = ctypes.CDLL(str(path))
    assert all(hasattr(lib, kernel.symbol) for kernel in _fused.Kernel)
    assert _fused.read_contract(lib) == _fused.expected_contract()


def test_the_build_command_keeps_a_cached_library(monkeypatch, tmp_path, capsys):
    """The command on a cache that holds this source's library: that path, no compiler run
    (CXX fails if called); ``--force`` runs it."""
    library = _library()[0]
    monkeypatch.setenv("FNLEARN_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")
    shutil.copy(library, _fused_build.cache_path())
    assert build_fused.main([]) == _fused_build.cache_path()
    assert capsys.readouterr().out.strip() == str(_fused_build.cache_path())
    with pytest.raises(RuntimeError, match="failed"):
        build_fused.main(["--force"])


def _library():
    found = _fused.find_library()
    assert found is not None, "tests/conftest.py builds the kernel library"
    return found


def test_a_contract_mismatch_is_an_error_at_load(monkeypatch):
    """The Python tables (scalar names in order, flag bits, kernel numbers) against what the
    real library exports: any difference raises when the library is loaded."""
    path, _, exported = _library()
    _fused.check_contract(exported, _fused.expected_contract(), path)  # as shipped: agree

    class SgdOneShort(NamedTuple):  # a scalar missing: the loop would read past the buffer
        gamma: jax.Array
        lam: jax.Array
        mu: jax.Array

    class AdagradSwapped(NamedTuple):  # same count, another order: wrong numbers
        lam: jax.Array
        clr: jax.Array
        epsilon: jax.Array

    for kernel, table, message in [(_fused.Kernel.SGD, SgdOneShort, "kernel 0: .*one_minus_tau"),
                                   (_fused.Kernel.ADAGRAD, AdagradSwapped, "kernel 1")]:
        with monkeypatch.context() as m:
            m.setitem(_fused.SCALARS, kernel, table)
            with pytest.raises(RuntimeError, match=message):
                _fused.find_library()
    flags = enum.IntFlag("Flag", {**{f.name: f.value for f in _fused.Flag}, "NESTEROV": 128})
    monkeypatch.setattr(_fused, "Flag", flags)
    with pytest.raises(RuntimeError, match="flag NESTEROV: library 8, Python 128"):
        _fused.find_library()


NO_COMPILER_SCRIPT = """
import shutil, subprocess, sys, warnings
import jax, jax.numpy as jnp, numpy as np
from fnlearn import optim, train
from fnlearn.optim import _fused, _fused_build

_fused_build.packaged_paths = lambda: []  # as if installed without a compiler
ran = []
subprocess.Popen.__init__ = lambda self, *a, **k: ran.append(a) or 1 / 0  # no compiler run
x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 3)), jnp.float32)


def train_3_steps(fused):
    opt = optim.adam(0.1, fused=fused)
    step = train.make_train_step(lambda p, xb: jnp.mean((xb @ p["w"]) ** 2), opt)
    state = train.TrainState.create({"w": jnp.ones((3, 2), jnp.float32)}, opt)
    for _ in range(3):
        state, _ = step(state, x)
    return state.params["w"], "FnlearnFused" in step.lower(state, x).compile().as_text()


plain, _ = train_3_steps(False)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    default, kernel = train_3_steps(None)
print("default", kernel, np.array_equal(default, plain), [str(w.message) for w in caught])
for phase in ("empty cache", "cached library"):
    if phase == "cached library":
        shutil.copy(sys.argv[1], _fused_build.cache_path())
        _fused._register.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fused, kernel = train_3_steps(True)
    np.testing.assert_allclose(fused, plain, rtol=2e-6)  # the kernel: up to round-off
    print(phase, kernel, len(ran), np.array_equal(fused, plain),
          [w.category.__name__ + ": " + str(w.message) for w in caught])
"""


@on_cpu
def test_without_a_compiler_fused_trains_and_a_cached_library_is_used(tmp_path):
    """No compiler on PATH, CXX missing, nothing installed. An empty cache: the default
    (fused=None) trains with the XLA rule's numbers without a word; fused=True does too, after
    one warning naming the build command. A library in the cache: found and run (its custom
    call in the step), no warning."""
    env = _xla.env(PATH=str(Path(sys.executable).parent), CXX="/nonexistent/c++",
                   FNLEARN_CACHE=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", NO_COMPILER_SCRIPT, str(_library()[0])],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    default, empty, cached = proc.stdout.strip().splitlines()[-3:]
    assert default == "default False True []", default
    assert empty.startswith("empty cache False 0 True ['RuntimeWarning: fused=True: the fused "
                            "CPU kernel library is not built"), empty
    assert empty.count("Warning:") == 1 and "python -m fnlearn.optim.build_fused" in empty
    assert re.fullmatch(r"cached library True 0 (True|False) \[\]", cached), cached


def test_another_backend_never_loads_or_builds_the_library(monkeypatch):
    """Where the default backend is not the CPU (a GPU) every leaf takes the XLA rule: no
    library is looked for, loaded or built, and nothing warns."""
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(_fused, "load", lambda *a: pytest.fail("looked for a library"))
    monkeypatch.setattr(_fused_build, "compile_library", lambda *a: pytest.fail("compiled"))
    params = {"w": jnp.linspace(-1, 1, 6, dtype=jnp.float32)}
    fused, plain = optim.adam(0.1, fused=True), optim.adam(0.1)
    step = jax.jit(lambda p, s, g: fused.apply(g, s, p))
    assert "FnlearnFused" not in step.lower(params, fused.init(params), params).as_text()
    plain_step = jax.jit(lambda p, s, g: optim.update_and_apply(plain, g, s, p))
    np.testing.assert_array_equal(step(params, fused.init(params), params)[0]["w"],
                                  plain_step(params, plain.init(params), params)[0]["w"])


@on_cpu
def test_param_groups_carry_the_fused_apply():
    """A fused group runs its kernel on its own leaves, a plain group its update, a frozen one
    nothing: the unfused param_groups' numbers and state, in one in-place jitted step."""
    rng = np.random.default_rng(4)
    params = {"w": jnp.asarray(rng.standard_normal((4, 3)), jnp.float32),
              "b": jnp.asarray(rng.standard_normal(3), jnp.float32),
              "e": jnp.asarray(rng.standard_normal(5), jnp.float32),
              "h": {"v": jnp.asarray(rng.standard_normal(6), jnp.float32)}}
    labels = {"w": "adam", "b": "sgd", "e": "frozen", "h": "adam"}

    def groups(fused):
        return optim.param_groups({"adam": optim.adam(0.1, amsgrad=True, fused=fused),
                                   "sgd": optim.sgd(0.1, momentum=0.9, fused=False)}, labels)

    plain, fused = groups(False), groups(True)
    assert isinstance(fused, optim.FusedGradientTransformation)
    assert not isinstance(plain, optim.FusedGradientTransformation)
    step = jax.jit(lambda p, s, g: optim.update_and_apply(fused, g, s, p), donate_argnums=(0, 1))
    p1, s1, p2, s2 = params, plain.init(params), jax.tree.map(jnp.copy, params), fused.init(params)
    hlo = step.lower(p2, s2, params).compile().as_text()
    assert re.findall(r"custom_call_target=\"FnlearnFused(\w+)\"", hlo) == ["Adam"]
    plain_step = jax.jit(lambda p, s, g: optim.update_and_apply(plain, g, s, p))
    for i in range(3):
        g = _grads(params, i)
        p1, s1 = plain_step(p1, s1, g)
        p2, s2 = step(p2, s2, g)
    assert jax.tree.structure(s2) == jax.tree.structure(s1)
    np.testing.assert_array_equal(p2["e"], params["e"])
    for a, b in zip(jax.tree.leaves((p2, s2)), jax.tree.leaves((p1, s1)), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)
    # default (fused=None) groups: a plain transformation whose update carries each group's
    # kernel
    default = optim.param_groups({"adam": optim.adam(0.1, amsgrad=True),
                                  "sgd": optim.sgd(0.1, momentum=0.9)}, labels)
    assert type(default) is optax.GradientTransformation
    step = jax.jit(lambda p, s, g: optim.update_and_apply(default, g, s, p))
    hlo = step.lower(params, default.init(params), params).compile().as_text()
    assert sorted(re.findall(r"custom_call_target=\"FnlearnFused(\w+)\"", hlo)) == ["Adam", "Sgd"]


def test_optax_chain_around_a_fused_optimizer_warns_once():
    """optax.chain keeps init and update only: the fused optimizer's update says, once, that
    the step is not fused; the numbers are the unfused optimizer's."""
    params = {"w": jnp.arange(3.0, dtype=jnp.float32)}
    chained = optax.chain(optax.clip_by_global_norm(1.0), optim.adam(0.1, fused=True))
    reference = optax.chain(optax.clip_by_global_norm(1.0), optim.adam(0.1))
    state, ref_state = chained.init(params), reference.init(params)
    with pytest.warns(UserWarning, match="optax.chain") as caught:
        updates, state = jax.jit(chained.update)(params, state, params)
    assert len(caught) == 1
    updates, state = chained.update(params, state, params)  # once per optimizer
    for _ in range(2):
        ref_updates, ref_state = jax.jit(reference.update)(params, ref_state, params)
    np.testing.assert_array_equal(updates["w"], ref_updates["w"])
