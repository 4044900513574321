"""Sharded train steps on 4 simulated CPU devices, checked against the one-device run.

Run by tests/distributed/test_sharded.py as one subprocess per group (the XLA flag must be
set before JAX starts, and one process amortises JAX's start-up over many checks)::

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m tests.distributed._checks GROUP

GROUP is ``default`` (a representative set), ``grid`` (every optimizer, XLA rule and fused,
tree and Flat, in the three modes) or ``grid:NAME`` (one optimizer's part of it). Prints one
line per check as it finishes, ``{check name: result dict}`` in JSON; the test file asserts
on the numbers. A check that raises is reported as ``{"error": ...}``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import traceback

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from fnlearn import checkpoint, optim, sharding, train  # noqa: E402
from fnlearn.data import iterate_batches  # noqa: E402

STEPS, BATCH = 20, 16
MODES = ("data_parallel", "zero1", "fsdp")


def loss_fn(p, batch):
    x, y = batch
    h = jnp.tanh(x @ p["w1"] + p["b1"][None]) if "b1" in p else jnp.tanh(x @ p["w1"])
    return jnp.mean((h @ p["w2"] - y) ** 2)


def make_params(dtype, bias=True, hidden=16):
    """hidden=16: 208 parameters; hidden=15: 195, which 4 devices do not divide."""
    k = jax.random.split(jax.random.key(0), 3)
    params = {"w1": jax.random.normal(k[0], (8, hidden), dtype),
              "w2": 0.3 * jax.random.normal(k[1], (hidden, 4), dtype)}
    if bias:
        params["b1"] = 0.1 * jax.random.normal(k[2], (hidden,), dtype)
    return params


def make_data(dtype, nan_at=None):
    kx, ky = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (STEPS * BATCH, 8), dtype)
    y = jax.random.normal(ky, (STEPS * BATCH, 4), dtype)
    if nan_at is not None:
        x = x.at[nan_at * BATCH].set(jnp.nan)
    return [(x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]) for i in range(STEPS)]


def optimizer(name, fused):
    """fnlearn's optimizers, each with a non-default option where it has one."""
    kw = {"fused": True} if fused else {}
    return {
        "sgd": lambda: optim.sgd(0.05, momentum=0.9, nesterov=True, **kw),
        "rmsprop": lambda: optim.rmsprop(1e-2, momentum=0.5, centered=True, **kw),
        "adagrad": lambda: optim.adagrad(0.1, lr_decay=1e-3, **kw),
        "adam": lambda: optim.adam(1e-2, amsgrad=True, **kw),
        "adamw": lambda: optim.adamw(1e-2, **kw),
        "adamax": lambda: optim.adamax(1e-2, **kw),
        "nadam": lambda: optim.nadam(1e-2, **kw),
        "radam": lambda: optim.radam(1e-2, **kw),
        "adadelta": lambda: optim.adadelta(1.0, **kw),
        "asgd": lambda: optim.asgd(1e-2, t0=5, **kw),
        "rprop": lambda: optim.rprop(1e-2, **kw),
        "adafactor": lambda: optim.adafactor(1e-2),
        # Newton-Schulz in float64: the default bfloat16 iteration turns the sharded run's
        # round-off (1e-16, a different summation order) into whole bfloat16 ulps (1e-3)
        "muon": lambda: optim.muon(1e-2, ns_dtype=jnp.float64),
        # host-driven in its own API; make_train_step compiles the whole closure loop
        "lbfgs": lambda: optim.lbfgs(0.5, max_iter=5, history_size=4),
        "lbfgs-wolfe": lambda: optim.lbfgs(max_iter=5, history_size=4,
                                           line_search_fn="strong_wolfe"),
    }[name]()


ELEMENTWISE = ("sgd", "rmsprop", "adagrad", "adam", "adamw", "adamax", "nadam", "radam",
               "adadelta", "asgd", "rprop")
ALL = ELEMENTWISE + ("adafactor", "muon")


def run(opt, plan, *, dtype=jnp.float64, flat=False, accumulate=1, skip=False, nan_at=None,
        bias=True, hidden=16, steps=STEPS):
    state = train.TrainState.create(make_params(dtype, bias, hidden), opt, flat=flat)
    if plan is not None:
        state = plan.put(state)
    step = train.make_train_step(loss_fn, opt, sharding=plan, accumulate_steps=accumulate,
                                 skip_nonfinite=skip)
    for batch in make_data(dtype, nan_at)[:steps]:
        state, _ = step(state, batch)
    return state, step


def rel_err(a, b):
    """The largest, over leaves, of max |a - b| / max |a|."""
    errs = [float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))
                  / max(float(np.max(np.abs(np.asarray(x, np.float64)))), 1e-300))
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True) if np.size(x)]
    return max(errs)


_ONE_DEVICE: dict = {}  # one-device final states, by optimizer and run options


def exact(name, mode, *, fused=False, flat=False, clip=False, accumulate=2, dtype=jnp.float64,
          mesh=None, param_specs=None, skip=False, nan_at=None, compiled=False, hidden=16,
          steps=STEPS):
    """The sharded run against the one-device run of the same global batches (a Flat's
    padding is compared as handed back: by gather, which drops it)."""
    opt = optimizer(name, fused)
    if clip:  # clipping is active: the global norm stays above 0.5 throughout
        opt = optax.chain(optim.clip_grad_norm_transform(0.5), opt)
    mesh = mesh or jax.make_mesh((4,), ("data",))
    plan = sharding.Plan(mesh, mode, param_specs=param_specs)
    kw = dict(dtype=dtype, flat=flat, accumulate=accumulate, skip=skip, nan_at=nan_at,
              bias=name != "muon", hidden=hidden, steps=steps)
    key = (name, fused, clip, tuple((k, str(v)) for k, v in kw.items()))
    if key not in _ONE_DEVICE:  # the same for every mode and mesh
        _ONE_DEVICE[key] = run(opt, None, **kw)[0]
    ref = _ONE_DEVICE[key]
    got, step = run(opt, plan, **kw)
    back = sharding.gather(got)
    out = {"err": rel_err(ref, back), "params_err": rel_err(ref.params, back.params),
           "steps": int(got.step), "skipped": int(got.skipped),
           "ref_skipped": int(ref.skipped)}
    out.update(layout(plan, got, step, make_data(dtype)[0], compiled))
    if flat:
        out.update(padding(ref, got, back))
    return out


def padding(ref, got, back):
    """A sharded Flat state: its buffers' lengths and parameter counts, whether the params'
    padding is still exactly zero, and whether what gather hands back has the one-device
    run's shapes (buffers and every parameter view), the padding dropped."""
    lay = got.params.layout
    shapes = lambda tree: [np.shape(x) for x in jax.tree.leaves(tree)]  # noqa: E731
    return {
        "lengths": [lay.length(g) for g in range(len(lay.groups))],
        "used": [lay.used(g) for g in range(len(lay.groups))],
        "tail_zero": all(not np.any(np.asarray(b)[lay.used(g):])
                         for g, b in enumerate(got.params.buffers)),
        "shapes_back": (shapes(back) == shapes(ref)
                        and shapes(back.params.tree()) == shapes(ref.params.tree())),
    }


def flat_checkpoint():
    """A padded, sharded Flat state saved on 4 devices restores onto 1 device (unpadded)
    and onto 4 (padded again, sliced as planned), with the same values."""
    mesh = jax.make_mesh((4,), ("data",))
    opt = optim.adam(1e-2)
    plan = sharding.Plan(mesh, "fsdp")
    state, _ = run(opt, plan, flat=True, hidden=15)
    like = train.TrainState.create(make_params(jnp.float64, hidden=15), opt, flat=True)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint.save(tmp, state, key=None, epoch=1)
        one = checkpoint.restore(tmp, like).state
        four = checkpoint.restore(tmp, plan.put(like)).state
    whole = sharding.gather(state)
    out["to_one_shapes"] = [x.shape for x in jax.tree.leaves(one)] == [
        np.shape(x) for x in jax.tree.leaves(whole)]
    out["to_one_equal"] = all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(one), jax.tree.leaves(whole), strict=True))
    out["to_four_equal"] = all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(four), jax.tree.leaves(state), strict=True))
    out["to_four_shardings"] = all(
        a.sharding.is_equivalent_to(b, a.ndim) for a, b in zip(
            jax.tree.leaves(four), jax.tree.leaves(plan.shardings(plan.put(like))), strict=True))
    return out


def layout(plan, state, step, batch, compiled):
    """Per-device bytes of params and optimizer state (from the addressable shards), against
    the totals; the leaves asked to be split along the data axis that the step's output
    arrays (and, with ``compiled``, the compiled step's output shardings) do not split."""
    n = plan.data_size
    want = plan.shardings(state)
    if compiled:  # a compilation more: only where asked
        out_shardings = step.lower(state, batch).compile().output_shardings[0]
    else:
        out_shardings = jax.tree.map(lambda x: x.sharding, state)
    not_split = []
    leaves = jax.tree_util.tree_leaves_with_path(state)
    for (path, x), w, c in zip(leaves, jax.tree.leaves(want), jax.tree.leaves(out_shardings),
                               strict=True):
        if plan.data_axis in sharding._axes(w.spec):
            shard = w.shard_shape(x.shape)
            if (c.shard_shape(x.shape) != shard or x.addressable_shards[0].data.shape != shard
                    or int(np.prod(shard)) * n > x.size):
                not_split.append(jax.tree_util.keystr(path))

    def per_device(tree):
        arrays = [x for x in jax.tree.leaves(tree) if np.ndim(x) > 0]
        mine = sum(x.addressable_shards[0].data.nbytes for x in arrays)
        return mine, sum(x.nbytes for x in arrays)

    (p_dev, p_all), (s_dev, s_all) = per_device(state.params), per_device(state.opt_state)
    return {"params_device": p_dev, "params_total": p_all, "opt_device": s_dev,
            "opt_total": s_all, "n": n, "not_split": not_split,
            "replicated": plan.replicated_leaves(state)}


def bad_inputs():
    """Each bad input's error message (or "no error")."""
    mesh = jax.make_mesh((4,), ("data",))
    opt = optim.adam(1e-2)
    out = {}

    def message(fn):
        try:
            fn()
        except (ValueError, TypeError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return "no error"

    plan = sharding.Plan(mesh, "zero1")
    state = plan.put(train.TrainState.create(make_params(jnp.float64), opt))
    step = train.make_train_step(loss_fn, opt, sharding=plan)
    x = jnp.ones((18, 8))
    out["batch"] = message(lambda: step(state, (x, jnp.ones((18, 4)))))
    acc = train.make_train_step(loss_fn, opt, sharding=plan, accumulate_steps=4)
    out["micro_batch"] = message(lambda: acc(state, (jnp.ones((8, 8)), jnp.ones((8, 4)))))
    out["axis"] = message(lambda: sharding.Plan(mesh, "zero1", data_axis="batch"))
    out["spec_axis"] = message(lambda: sharding.Plan(mesh, param_specs={"w1": P("model")}))
    out["mode"] = message(lambda: sharding.Plan(mesh, "zero3"))
    too_long = sharding.Plan(mesh, param_specs={"w1": None, "w2": None, "b1": P(None, "data")})
    out["spec_rank"] = message(lambda: too_long.put(state))
    odd = sharding.Plan(mesh, param_specs={"w1": None, "w2": P(None, "data"), "b1": None})
    out["spec_divide"] = message(
        lambda: odd.put(train.TrainState.create(
            {"w1": jnp.ones((8, 16)), "w2": jnp.ones((16, 6)), "b1": jnp.ones(16)}, opt)))
    out["spec_structure"] = message(lambda: sharding.Plan(mesh, param_specs={"w1": None}).put(
        state))
    unplaced = jax.device_put(train.TrainState.create(make_params(jnp.float64), opt),
                              jax.devices()[1])
    out["unplaced"] = message(lambda: step(unplaced, make_data(jnp.float64)[0]))
    unpadded = train.TrainState.create(make_params(jnp.float64, hidden=15), opt, flat=True)
    out["flat_unpadded"] = message(lambda: step(unpadded, make_data(jnp.float64)[0]))
    rows = (jnp.ones((18, 2)),)
    out["iterate_batch_size"] = message(lambda: iterate_batches(rows, 6, sharding=plan.batch))
    out["iterate_last"] = message(lambda: iterate_batches(rows, 8, sharding=plan.batch))
    out["state_after"] = int(state.step)  # still usable: nothing above ran a step
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint.save(tmp, {"w": jnp.ones((6, 4))}, key=None, epoch=1)
        like = {"w": jax.ShapeDtypeStruct((6, 4), jnp.float64,
                                          sharding=plan.batch)}  # 6 rows over 4 devices
        try:
            checkpoint.restore(tmp, like)
            out["checkpoint"] = "no error"
        except checkpoint.CheckpointError as exc:
            out["checkpoint"] = f"CheckpointError: {exc}"
    return out


def batches():
    """iterate_batches on the mesh gives the same batches as without, each split over it."""
    plan = sharding.Plan(jax.make_mesh((4,), ("data",)), "zero1")
    data = (jnp.arange(40.0).reshape(20, 2), jnp.arange(20))
    kw = dict(shuffle=True, key=jax.random.key(0), drop_last=True)
    plain = list(iterate_batches(data, 8, **kw))
    split = list(iterate_batches(data, 8, sharding=plan.batch, **kw))
    return {
        "count": [len(plain), len(split)],
        "equal": all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(plain),
                                                          jax.tree.leaves(split), strict=True)),
        "split": all(x.sharding == plan.batch and x.addressable_shards[0].data.shape[0] == 2
                     for x in jax.tree.leaves(split)),
    }


def checkpoints():
    """A sharded state saved on 4 devices restores onto 1, and a 1-device one onto 4."""
    mesh = jax.make_mesh((4,), ("data",))
    opt = optim.adam(1e-2)
    plan = sharding.Plan(mesh, "fsdp")
    state, _ = run(opt, plan)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint.save(tmp, state, key=jax.random.key(3), epoch=1)
        like = train.TrainState.create(make_params(jnp.float64), opt)
        one, key, epoch = checkpoint.restore(tmp, like)
        out["to_one_equal"] = all(
            np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(one),
                                                 strict=True))
        out["to_one_devices"] = sorted({len(x.devices()) for x in jax.tree.leaves(one)})
        out["available"] = checkpoint.available(tmp)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint.save(tmp, one, key=None, epoch=2)
        back = checkpoint.restore(tmp, plan.put(like)).state
        out["to_four_equal"] = all(
            np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(back),
                                                 strict=True))
        out["to_four_shardings"] = all(
            a.sharding.is_equivalent_to(b, a.ndim)
            for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(plan.shardings(like)),
                            strict=True))
    return out


def default_checks():
    model = jax.make_mesh((2, 2), ("data", "model"))
    specs = {"w1": P(None, "model"), "w2": P("model"), "b1": P("model")}
    return {
        "zero1-adamw-fused-flat": lambda: exact("adamw", "zero1", fused=True, flat=True,
                                                compiled=True),
        "zero1-adam-f32-skip": lambda: exact("adam", "zero1", dtype=jnp.float32, clip=True,
                                             skip=True, nan_at=5, accumulate=1),
        "fsdp-adafactor-clip": lambda: exact("adafactor", "fsdp", clip=True),
        "fsdp-muon": lambda: exact("muon", "fsdp"),
        "fsdp-model-adam-fused": lambda: exact("adam", "fsdp", fused=True, mesh=model,
                                               param_specs=specs, compiled=True),
        # 195 parameters: each Flat buffer padded to 196, 49 elements per device
        "zero1-adam-flat-odd": lambda: exact("adam", "zero1", flat=True, clip=True, hidden=15,
                                             compiled=True),
        "zero1-adagrad-fused-flat-odd": lambda: exact("adagrad", "zero1", fused=True,
                                                      flat=True, hidden=15),
        "fsdp-rprop-fused-flat-odd": lambda: exact("rprop", "fsdp", fused=True, flat=True,
                                                   hidden=15, compiled=True),
        "fsdp-adafactor-flat-odd": lambda: exact("adafactor", "fsdp", flat=True, clip=True,
                                                 hidden=15),
        "flat-checkpoint": flat_checkpoint,
        # L-BFGS: 5 steps (its history multiplies round-off about 1.5x per step)
        "data_parallel-lbfgs": lambda: exact("lbfgs", "data_parallel", accumulate=1, steps=5),
        "zero1-lbfgs": lambda: exact("lbfgs", "zero1", accumulate=1, steps=5),
        "data_parallel-lbfgs-wolfe": lambda: exact("lbfgs-wolfe", "data_parallel",
                                                   accumulate=1, steps=5),
        "bad": bad_inputs,
        "batches": batches,
        "checkpoint": checkpoints,
    }


def grid_checks(names=ALL):
    checks = {}
    for name in names:
        for mode in MODES:
            for fused in (False, True) if name in ELEMENTWISE else (False,):
                for flat in (False, True):
                    tag = f"{mode}-{name}{'-fused' if fused else ''}{'-flat' if flat else ''}"
                    checks[tag] = (lambda name=name, mode=mode, fused=fused, flat=flat:
                                   exact(name, mode, fused=fused, flat=flat, clip=not fused))
                    if not fused and not flat:
                        checks[tag + "-f32"] = (lambda name=name, mode=mode: exact(
                            name, mode, dtype=jnp.float32, clip=True))
                    if flat and mode != "data_parallel" and name != "muon":  # muon: 12 H
                        checks[tag + "-odd"] = (lambda name=name, mode=mode, fused=fused:
                                                exact(name, mode, fused=fused, flat=True,
                                                      clip=not fused, hidden=15))
    return checks


def main(group):
    """One line per check, ``{name: result}`` as JSON, printed as soon as it is done."""
    if group.startswith("grid:"):  # one optimizer's part of the grid
        checks = grid_checks(tuple(group.split(":", 1)[1].split(",")))
    else:
        checks = {"default": default_checks, "grid": grid_checks}[group]()
    for name, check in checks.items():
        try:
            result = check()
        except Exception:  # reported, so one failure does not hide the other checks
            result = {"error": traceback.format_exc()[-3000:]}
        print(json.dumps({name: result}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
