"""Live hand-overs against torch: every optimizer (the tables' option combinations, Muon,
LBFGS) and scheduler, torch -> fnlearn and fnlearn -> torch through torch's own
``load_state_dict``; weights of every dtype; whole checkpoint files, the converter command,
a crafted malicious file; flax layouts; the errors a mismatch raises."""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import optim
from fnlearn.interop import torch as it
from fnlearn.interop._optim import torch_defaults
from tests.interop import _digits, _schedulers
from tests.interop._handover import (
    K,
    N,
    as_tree,
    assert_close,
    assert_state_dicts_close,
    cases,
    fnlearn_steps,
    inputs,
    torch_kwargs,
    torch_run,
)
from tests.optim.cases import schedule
from tests.optim.lbfgs_cases import CONFIGS as LBFGS_CONFIGS
from tests.optim.lbfgs_cases import PROBLEMS as LBFGS_PROBLEMS
from tests.optim.lbfgs_cases import loss as lbfgs_loss

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _float64_default():
    # torch's 0-d state tensors (step, eta, mu, mu_product) follow the default dtype
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


ALL = [(t, c, d) for t, c in cases() for d in c.dtypes]
_first: set = set()
FIRST = []
for _t, _c, _d in ALL:
    if _c.torch_name not in _first and _d == "float64":
        _first.add(_c.torch_name)
        FIRST.append((_t, _c, _d))
GRID = [pytest.param(*x, marks=() if x in FIRST else pytest.mark.exhaustive,
                     id=f"{x[1].id}-{x[2]}") for x in ALL]


def _lambda(table, case):
    f = schedule(table, case)
    return None if f is None else [f]


@pytest.mark.parametrize(("table", "case", "dtype"), GRID)
def test_torch_to_fnlearn_to_torch(table, case, dtype):
    """torch K steps -> fnlearn N steps == torch K + N; then back into torch, whose state
    dict equals torch's own after K + N."""
    run = torch_run(table, case, dtype)
    p_k, sd_k, sched_k = run["handover"]
    _, grads = inputs(case)
    params = as_tree(p_k, dtype)
    ts = None if sched_k is None else it.schedule_from_torch(
        sched_k, "LambdaLR", lr_lambdas=_lambda(table, case))
    tx, state = it.optimizer_from_torch(sd_k, params, case.torch_name, schedule=ts)
    params, state = fnlearn_steps(tx, state, params, grads, range(K, K + N), dtype)
    for i, p in enumerate(run["end"][0]):
        assert_close(params[str(i)], p, dtype, f"{case.id} param {i}")
    tparams = [torch.zeros(np.shape(p), dtype=getattr(torch, dtype), requires_grad=True)
               for p in run["end"][0]]
    opt = getattr(torch.optim, case.torch_name)(tparams, **torch_kwargs(case))
    opt.load_state_dict(it.optimizer_to_torch(tx, state, params))
    assert_state_dicts_close(opt.state_dict(), run["end"][1], dtype, case.id)


@pytest.mark.parametrize(("table", "case", "dtype"), GRID)
def test_fnlearn_to_torch(table, case, dtype):
    """fnlearn K steps (optimizer from an OptimizerSpec) -> torch N steps == fnlearn K + N."""
    p0, grads = inputs(case)
    params = as_tree(p0, dtype)
    factor = schedule(table, case)
    group = dict(torch_kwargs(case))
    if factor is not None:
        base = group.get("lr", torch_defaults(case.torch_name)["lr"])
        # the factor of a float count, as torch's LambdaLR computes it from a Python int
        group["lr"] = lambda count: base * factor(jnp.asarray(count, jnp.float64))
    tx = it.OptimizerSpec(case.torch_name, (group,)).build()
    params, state = fnlearn_steps(tx, tx.init(params), params, grads, range(K), dtype)
    sd = it.optimizer_to_torch(tx, state, params)
    sched = None
    if factor is not None:  # torch's LambdaLR at epoch K
        ts = it.schedule_from_torch(_lambda_state(case, factor), "LambdaLR", lr_lambdas=[factor])
        sched = it.schedule_to_torch(ts, K)
    start = ({n: np.asarray(v) for n, v in params.items()}, sd, sched)
    run = torch_run(table, case, dtype, start=start)
    params, state = fnlearn_steps(tx, state, params, grads, range(K, K + N), dtype)
    for i, p in enumerate(run["end"][0]):
        assert_close(params[str(i)], p, dtype, f"{case.id} param {i}")
    assert_state_dicts_close(it.optimizer_to_torch(tx, state, params), run["end"][1], dtype,
                             case.id)


def _lambda_state(case, factor):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = getattr(torch.optim, case.torch_name)([p], **torch_kwargs(case))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor).state_dict()


def test_param_groups_with_different_lrs_and_names():
    """Three groups (a frozen leaf, names saved by torch) out of module order."""
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2),
                              torch.nn.Linear(2, 2)).double()
    named = dict(net.named_parameters())
    def groups():  # torch rewrites the dicts it is given
        return [{"params": [("2.weight", named["2.weight"]), ("0.bias", named["0.bias"])],
                 "lr": 0.05},
                {"params": [("0.weight", named["0.weight"])], "lr": 0.01, "weight_decay": 0.1},
                {"params": [("2.bias", named["2.bias"])], "lr": 0.001}]

    opt = torch.optim.AdamW(groups())  # 3.weight and 3.bias: in no group
    rng = np.random.default_rng(0)
    grads = [{n: rng.standard_normal(p.shape) for n, p in named.items()} for _ in range(6)]

    def tstep(g):
        for n, p in named.items():
            p.grad = torch.tensor(g[n])
        opt.step()

    for g in grads[:3]:
        tstep(g)
    params = it.params_from_torch(net).params
    tx, state = it.optimizer_from_torch(opt.state_dict(), params)
    for g in grads[3:]:
        tstep(g)
        gj = it.params_from_torch({n: torch.tensor(v) for n, v in g.items()}).params
        updates, state = tx.update(gj, state, params)
        params = optim.apply_updates(params, updates)
    ref = it.params_from_torch(net).params
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(ref),
                            strict=True):
        assert_close(a, b, "float64", jax.tree_util.keystr(path))
    back = it.optimizer_to_torch(tx, state, params)
    assert [g["lr"] for g in back["param_groups"]] == [0.05, 0.01, 0.001]
    assert back["param_groups"][0]["param_names"] == ["2.weight", "0.bias"]
    opt2 = torch.optim.AdamW(groups())
    opt2.load_state_dict(back)
    assert_state_dicts_close(opt2.state_dict(), opt.state_dict(), "float64", "groups")


def test_muon_handover():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 6, dtype=torch.float64))
    opt = torch.optim.Muon([w], lr=0.02, momentum=0.9)
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal((4, 6)) for _ in range(6)]
    for g in grads[:3]:
        w.grad = torch.tensor(g)
        opt.step()
    params = {"w": jnp.asarray(w.detach().numpy())}
    tx, state = it.optimizer_from_torch(opt.state_dict(), params, "Muon", step=3)
    np.testing.assert_array_equal(state.momentum_buffer["w"],
                                  opt.state[w]["momentum_buffer"].numpy())
    for g in grads[3:]:
        w.grad = torch.tensor(g)
        opt.step()
        updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
        params = optim.apply_updates(params, updates)
    # Newton-Schulz runs in bfloat16 on both sides: tests/optim/test_muon.py's tolerance
    np.testing.assert_allclose(params["w"], w.detach().numpy(), rtol=1e-3, atol=1e-3)
    back = torch.optim.Muon([w], lr=0.02, momentum=0.9)
    back.load_state_dict(it.optimizer_to_torch(tx, state, params))
    np.testing.assert_allclose(back.state[w]["momentum_buffer"].numpy(),
                               state.momentum_buffer["w"], rtol=1e-12)


def test_lbfgs_handover():
    x0 = np.array([-1.2, 1.0, -0.5, 0.8])

    def rosen_t(x):
        return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()

    def rosen(p):
        x = p["x"]
        return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    x = torch.tensor(x0, requires_grad=True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=5, history_size=4, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = rosen_t(x)
        loss.backward()
        return loss

    for _ in range(2):
        opt.step(closure)
    params = {"x": jnp.asarray(x.detach().numpy())}
    tx, state = it.optimizer_from_torch(opt.state_dict(), params, "LBFGS")
    for _ in range(2):
        opt.step(closure)
        _, params, state = tx.step(rosen, params, state)
    np.testing.assert_allclose(params["x"], x.detach().numpy(), rtol=1e-10)
    opt2 = torch.optim.LBFGS([x], lr=1, max_iter=5, history_size=4,
                             line_search_fn="strong_wolfe")
    opt2.load_state_dict(it.optimizer_to_torch(tx, state, params))
    for key in ("func_evals", "n_iter"):
        assert opt2.state[x][key] == opt.state[x][key]
    for a, b in zip(opt2.state[x]["old_dirs"], opt.state[x]["old_dirs"], strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10)


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.id, marks=() if c.id in ("steplr-sgd-momentum", "onecyclelr-sgd")
                 else pytest.mark.exhaustive) for c in _schedulers.CASES])
def test_scheduler_both_ways(case):
    """torch -> fnlearn: the lrs torch uses next; fnlearn -> torch: schedule_to_torch and
    optimizer_to_torch loaded into fresh torch objects continue as torch's own run."""
    full = _schedulers.run(case)
    h = full["handover"]
    ts = it.schedule_from_torch(h["scheduler"], case.name, optimizer_state_dict=h["optimizer"],
                                lr_lambdas=case.lr_lambdas)
    params = as_tree(h["params"], "float64")
    tx, state = it.optimizer_from_torch(h["optimizer"], params, case.optimizer, schedule=ts)
    _, grads = _schedulers.inputs(case)
    half = case.n // 2
    plateau = ts.plateau[1] if ts.plateau else None
    for k in range(case.k, case.k + half):
        updates, state = tx.update(as_tree([g[k] for g in grads], "float64"), state, params)
        params = optim.apply_updates(params, updates)
        if plateau is not None:
            from tests.interop.test_reference import _set_lr

            plateau = ts.plateau[0].step(plateau, case.metrics[k])
            state = _set_lr(state, plateau.lr)
    start = {"params": [np.asarray(params[str(i)]) for i in range(len(params))],
             "optimizer": it.optimizer_to_torch(tx, state, params),
             "scheduler": it.schedule_to_torch(ts, ts.last_epoch + half, plateau)}
    shifted = copy.copy(case)
    object.__setattr__(shifted, "k", case.k + half)
    object.__setattr__(shifted, "n", case.n - half)
    rest = _schedulers.run(shifted, start=start)
    np.testing.assert_allclose(rest["lrs"], full["lrs"][half:], rtol=1e-12)
    for a, b in zip(rest["params"], full["params"], strict=True):
        assert_close(a, b, "float64", case.id)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_params_round_trip_keeps_dtypes(dtype):
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3),
                              torch.nn.Flatten(), torch.nn.Linear(12, 2)).to(getattr(torch,
                                                                                     dtype))
    net(torch.randn(4, 2, 4, 4, dtype=getattr(torch, dtype)))  # running stats move
    params, buffers = it.params_from_torch(net)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(dtype)}
    assert sorted(buffers["1"]) == ["num_batches_tracked", "running_mean", "running_var"]
    assert set(params["1"]) == {"weight", "bias"}
    assert list(params) == ["0", "1", "3"]
    sd = it.params_to_torch(params, buffers)
    fresh = copy.deepcopy(net)
    for p in fresh.parameters():
        p.data.zero_()
    fresh.load_state_dict(sd, strict=True)
    for (n, a), b in zip(net.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b), n
    # a bare state dict: buffers recognised by name, the same trees
    p2, b2 = it.params_from_torch(net.state_dict())
    assert jax.tree.structure(p2) == jax.tree.structure(params)
    assert jax.tree.structure(b2) == jax.tree.structure(buffers)


def _checkpoint(tmp_path, epochs=1):
    net, opt, sched, _ = _digits.torch_train(epochs)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "epoch": epochs}, path)
    return path


def test_digits_checkpoint_file_both_ways(tmp_path):
    """torch epoch 1 -> file -> fnlearn (flax) epoch 2 == torch's epoch 2; fnlearn's state
    saved back -> torch epoch 3 == torch's uninterrupted epochs 1-3."""
    path = _checkpoint(tmp_path)
    ckpt = it.load_torch_checkpoint(path)
    assert ckpt.extra == {"epoch": 1}
    model = _digits.flax_model()
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 64), jnp.float64))
    layout = it.flax_layout(_digits.torch_model(), variables)
    state, losses = _digits.fnlearn_epoch(ckpt, layout, epoch=1)
    *_, torch_losses = _digits.torch_train(2)
    np.testing.assert_allclose(losses, torch_losses[len(losses):], rtol=1e-10)
    # back to torch
    back = state._replace(params=layout.params_to_torch(state.params),
                          opt_state=layout.state_to_torch(state.opt_state))
    out = it.save_torch_checkpoint(tmp_path / "back.pt", back, ckpt.optimizer,
                                   schedule=ckpt.schedule, handover_step=ckpt.handover_step,
                                   extra={"epoch": 2})
    saved = torch.load(out, weights_only=True)
    *_, third = _digits.torch_train(1, start=saved, first_epoch=2)
    *_, reference = _digits.torch_train(3)
    np.testing.assert_allclose(third, reference[-len(third):], rtol=1e-10)


def test_converter_command_then_fit_resumes(tmp_path):
    from fnlearn.losses import cross_entropy
    from fnlearn.train import fit, make_train_step

    path = _checkpoint(tmp_path)
    out = tmp_path / "fnlearn-ckpt"
    r = subprocess.run([sys.executable, "-m", "fnlearn.interop.torch", str(path), str(out),
                        "--x64"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    restored = it.restore_converted(out)
    assert restored.epoch == 1 and restored.extra == {"epoch": 1}
    direct = it.load_torch_checkpoint(path)
    for a, b in zip(jax.tree.leaves(restored.state), jax.tree.leaves(direct.state), strict=True):
        np.testing.assert_array_equal(a, b)
    x, y = _digits.data()
    net = _digits.torch_model()

    def loss_fn(p, batch):  # the torch layout, as a plain function
        h = jnp.tanh(batch[0] @ p["0"]["weight"].T + p["0"]["bias"][None])
        return cross_entropy(h @ p["2"]["weight"].T + p["2"]["bias"][None], batch[1])

    del net
    step = make_train_step(loss_fn, restored.optimizer)
    _, history = fit(step, restored.state, (x, y), epochs=2, batch_size=_digits.BATCH,
                     shuffle=False, start_epoch=restored.epoch, progress=False)
    # torch's second epoch in the same (unshuffled) order
    ckpt = torch.load(path, weights_only=True)
    tnet = _digits.torch_model()
    tnet.load_state_dict(ckpt["model"])
    topt = torch.optim.Adam(tnet.parameters(), lr=1e-2)
    topt.load_state_dict(ckpt["optimizer"])
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=10, gamma=0.8)
    tsched.load_state_dict(ckpt["scheduler"])
    losses = []
    for i in range(0, len(x), _digits.BATCH):
        loss = torch.nn.functional.cross_entropy(tnet(torch.from_numpy(x[i:i + _digits.BATCH])),
                                                 torch.from_numpy(y[i:i + _digits.BATCH]))
        topt.zero_grad()
        loss.backward()
        topt.step()
        tsched.step()
        losses.append(loss.item())
    np.testing.assert_allclose(history.loss, losses, rtol=1e-10)


class _Evil:
    def __reduce__(self):
        return (subprocess.call, (["touch", "/tmp/fnlearn-pwned"],))


def test_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Evil()}, f)
    torch.save({"model": {"w": torch.ones(1)}, "payload": _Evil()}, tmp_path / "evil2.pt")
    for p in (path, tmp_path / "evil2.pt"):
        with pytest.raises(it.UnsafeCheckpointError, match="weights_only"):
            it.load_torch_checkpoint(p)
    r = subprocess.run([sys.executable, "-m", "fnlearn.interop.torch", str(path),
                        str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 2 and "refusing to load" in r.stderr


def test_mismatches_raise_naming_what_differs(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    weights = it.params_from_torch(net)
    params = weights.params
    with pytest.raises(ValueError, match="4 parameters, params has 3 leaves"):
        it.optimizer_from_torch(sd, {"0": params["0"], "1": {"weight": params["1"]["weight"]}})
    bad = jax.tree.map(lambda x: x, params)  # keys now sorted: torch's order given by names
    bad["1"]["weight"] = jnp.zeros((1, 3), jnp.float64)
    with pytest.raises(ValueError, match=r"'1.weight' has shape \(1, 2\) in torch"):
        it.optimizer_from_torch(sd, bad, names=weights.names)
    bad["1"]["weight"] = params["1"]["weight"].astype(jnp.float32)  # torch's is float64
    with pytest.raises(ValueError, match="'1.weight' is float64 in torch but the param"):
        it.optimizer_from_torch(sd, bad, names=weights.names)
    with pytest.raises(ValueError, match="'betas'.* is this state dict torch.optim.SGD's"):
        it.optimizer_from_torch(sd, params, "SGD")
    sgd = torch.optim.SGD(net.parameters(), momentum=0.9)
    sgd.step()
    with pytest.raises(ValueError, match=r"'momentum'.* is this state dict torch.optim.Adam's"):
        it.optimizer_from_torch(sgd.state_dict(), params, "Adam")
    missing = copy.deepcopy(sd)
    del missing["state"][2]["exp_avg_sq"]
    with pytest.raises(ValueError, match="'1.weight' lacks 'exp_avg_sq'"):
        it.optimizer_from_torch(missing, params)
    path = tmp_path / "c.pt"
    torch.save({"model": net.state_dict(), "opt": sd}, path)
    with pytest.raises(KeyError, match=r"no optimizer entry 'optimizer'; its entries: \['model'"):
        it.load_torch_checkpoint(path)
    it.load_torch_checkpoint(path, optimizer_key="opt")
    wrong = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="unmatched torch layers"):
        it.flax_layout(torch.nn.Sequential(wrong, torch.nn.Linear(2, 1)),
                       {"params": {"Dense_0": {"kernel": jnp.zeros((3, 2)),
                                               "bias": jnp.zeros(2)}}})


def test_flax_layouts_compute_what_torch_computes():
    import flax.linen as nn

    class Flax(nn.Module):
        @nn.compact
        def __call__(self, x, tokens):
            h = nn.Conv(4, (3, 3), padding=1, param_dtype=jnp.float64)(x)
            h = nn.BatchNorm(use_running_average=True, param_dtype=jnp.float64,
                             epsilon=1e-5)(h)
            h = nn.GroupNorm(num_groups=2, epsilon=1e-5, param_dtype=jnp.float64)(h)
            h = h.reshape(h.shape[0], -1)
            h = nn.Dense(8, param_dtype=jnp.float64)(h)
            h = nn.LayerNorm(epsilon=1e-5, param_dtype=jnp.float64)(h)
            e = nn.Embed(5, 8, param_dtype=jnp.float64)(tokens)
            return h + e

    class Torch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(4)
            self.gn = torch.nn.GroupNorm(2, 4)
            self.fc = torch.nn.Linear(4 * 5 * 5, 8)
            self.ln = torch.nn.LayerNorm(8)
            self.emb = torch.nn.Embedding(5, 8)

        def forward(self, x, tokens):
            h = self.gn(self.bn(self.conv(x)))
            h = self.ln(self.fc(h.permute(0, 2, 3, 1).flatten(1)))
            return h + self.emb(tokens)

    tnet = Torch().double()
    with torch.no_grad():
        for p in tnet.parameters():
            p.normal_()
        tnet.bn.running_mean.normal_()
        tnet.bn.running_var.uniform_(0.5, 2)
    tnet.eval()
    x = np.random.default_rng(0).standard_normal((3, 2, 5, 5))
    tokens = np.array([0, 3, 4])
    model = Flax()
    # flax keeps BatchNorm's statistics in float32 whatever the param dtype: mixed dtypes
    with jax.numpy_dtype_promotion("standard"):
        variables = model.init(jax.random.key(0), jnp.zeros((3, 5, 5, 2)), jnp.asarray(tokens))
        layout = it.flax_layout(tnet, variables)
        params, buffers = it.params_from_torch(tnet)
        flax_vars = {"params": layout.params_to_flax(params),
                     "batch_stats": layout.batch_stats_to_flax(buffers)}
        got = model.apply(flax_vars, jnp.asarray(x.transpose(0, 2, 3, 1)), jnp.asarray(tokens))
    want = tnet(torch.from_numpy(x), torch.from_numpy(tokens)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    again = layout.params_to_torch(flax_vars["params"])
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)
    stats = layout.batch_stats_to_torch(flax_vars["batch_stats"])
    assert json.dumps(sorted(stats["bn"])) == json.dumps(sorted(buffers["bn"]))


@pytest.mark.parametrize("which", ["onecycle-adam", "plateau-sgd"])
def test_converted_directory_rebuilds_schedules(tmp_path, which):
    """convert + restore_converted: OneCycleLR's cycled beta1 and ReduceLROnPlateau's injected
    lr come back; the next update equals the one from the torch file itself."""
    net = torch.nn.Linear(4, 2)
    if which == "onecycle-adam":
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=20)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1)
    for _ in range(3):
        net(torch.ones(2, 4)).sum().backward()
        opt.step()
        sched.step(*([1.0] if which == "plateau-sgd" else []))
    path = tmp_path / "c.pt"
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "epoch": 3}, path)
    it.convert(path, tmp_path / "out")
    restored = it.restore_converted(tmp_path / "out")
    direct = it.load_torch_checkpoint(path)
    assert restored.epoch == 3 and restored.schedule.name == direct.schedule.name
    grads = jax.tree.map(jnp.ones_like, direct.state.params)
    got, _ = restored.optimizer.update(grads, restored.state.opt_state, restored.state.params)
    want, _ = direct.optimizer.update(grads, direct.state.opt_state, direct.state.params)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("config", [
    pytest.param(c, marks=() if c in ("default", "wolfe-history-max_iter")
                 else pytest.mark.exhaustive) for c in LBFGS_CONFIGS])
def test_lbfgs_handover_through_compiled_steps(config):
    """torch's LBFGS for K steps -> optimizer_from_torch -> make_train_step for N (the state
    left as LBFGSArrays) -> optimizer_to_torch -> a fresh torch LBFGS for M: torch's own
    K + N + M run (params, counters and the history, f64 1e-10)."""
    from fnlearn.train import TrainState, make_train_step

    problem, k, n, m = "least-squares", 2, 2, 3
    kw = LBFGS_CONFIGS[config]

    def torch_lbfgs(values):
        ps = {name: torch.tensor(np.asarray(v), dtype=torch.float64, requires_grad=True)
              for name, v in values.items()}
        opt = torch.optim.LBFGS([ps[name] for name in sorted(ps)], **kw)

        def closure():
            opt.zero_grad()
            value = lbfgs_loss(problem, ps, torch)
            value.backward()
            return value

        return ps, opt, closure

    ps, opt, closure = torch_lbfgs(LBFGS_PROBLEMS[problem])
    for _ in range(k):
        opt.step(closure)
    params = {name: jnp.asarray(p.detach().numpy()) for name, p in ps.items()}
    tx, state = it.optimizer_from_torch(opt.state_dict(), params, "LBFGS")
    step = make_train_step(lambda p, batch: lbfgs_loss(problem, p, jnp), tx)
    train_state = TrainState.create(params, tx)._replace(opt_state=state)
    for _ in range(n):
        train_state, _ = step(train_state, jnp.zeros(1))
        opt.step(closure)
    ps2, opt2, closure2 = torch_lbfgs(train_state.params)
    opt2.load_state_dict(it.optimizer_to_torch(tx, train_state.opt_state, train_state.params))
    for _ in range(m):
        opt.step(closure)
        opt2.step(closure2)
    for name in ps:
        np.testing.assert_allclose(ps2[name].detach().numpy(), ps[name].detach().numpy(),
                                   rtol=1e-10, atol=1e-12, err_msg=name)
    ours, theirs = opt2.state[ps2["b"]], opt.state[ps["b"]]
    for key in ("func_evals", "n_iter"):
        assert ours[key] == theirs[key], key
    # y and s are differences of nearby gradients and iterates (near the optimum, of 1e-4 of
    # the gradient's first size): each within 1e-10 of the problem's scale, the gradient's at
    # the start for y; ro = 1/(y.s) by its relative error
    start = {name: jnp.asarray(v) for name, v in LBFGS_PROBLEMS[problem].items()}
    grad_scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(
        jax.grad(lambda p: lbfgs_loss(problem, p, jnp))(start)))
    x_scale = max(np.max(np.abs(p.detach().numpy())) for p in ps.values())
    for key, scale in (("old_dirs", grad_scale), ("old_stps", x_scale), ("ro", None)):
        assert len(ours[key]) == len(theirs[key]), key
        a = np.stack([np.asarray(x) for x in ours[key]])
        b = np.stack([np.asarray(x) for x in theirs[key]])
        if scale is None:
            np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=key)
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * scale, err_msg=key)
