"""The torch side of fnlearn.crosscheck: torch.optim classes, schedulers and clipping, torch
loss functions and modules, and the command's torch rows (live torch)."""

import functools
import json

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import fnlearn.crosscheck as cc  # noqa: E402
import fnlearn.losses  # noqa: E402
from fnlearn import losses, optim, schedules  # noqa: E402
from fnlearn.crosscheck.__main__ import main  # noqa: E402

PARAMS = {"w": jnp.linspace(-0.5, 0.5, 6).reshape(2, 3), "b": jnp.zeros(3)}


@pytest.mark.parametrize(
    "spec",
    [cc.TorchOptimizer(torch.optim.Adam, lr=1e-3, amsgrad=True),
     (torch.optim.Adam, dict(lr=1e-3, amsgrad=True))],
    ids=["TorchOptimizer", "tuple"],
)
def test_amsgrad_fnlearn_matches_torch_optax_does_not(spec):
    r = cc.compare(optim.adam(amsgrad=True), spec, PARAMS, steps=50)
    assert r.verdict == "match" and r.b == "torch.optim.Adam(lr=0.001, amsgrad=True)"
    assert cc.compare(optax.amsgrad(1e-3), spec, PARAMS, steps=50).verdict == "differ"


def test_bare_class_uses_torch_defaults_in_float32():
    r = cc.compare(optim.adamw(), torch.optim.AdamW, PARAMS, dtype="float32")
    assert r.verdict == "match" and r.dtype == "float32"


def test_scheduler_and_clipping_around_the_step():
    """A typical torch loop: clip_grad_norm_, step, scheduler.step()."""
    spec = cc.TorchOptimizer(
        torch.optim.SGD, lr=0.1, momentum=0.9, clip_grad_norm=1.0,
        scheduler=lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=0.1, total_steps=40, cycle_momentum=False))
    mine = optax.chain(optim.clip_grad_norm_transform(1.0),
                       optim.sgd(lr=schedules.one_cycle_lr(0.1, total_steps=40), momentum=0.9))
    assert cc.compare(mine, spec, PARAMS, steps=40).verdict == "match"
    ported = optax.chain(optax.clip_by_global_norm(1.0),
                         optax.sgd(optax.cosine_onecycle_schedule(40, 0.1), momentum=0.9))
    assert cc.compare(ported, spec, PARAMS, steps=40).verdict == "differ"
    assert "clip_grad_norm_(1.0)" in repr(spec) and "scheduler" in repr(spec)


def test_torch_on_both_sides():
    r = cc.compare(torch.optim.RMSprop, (torch.optim.RMSprop, dict(lr=0.01)), PARAMS, steps=5)
    assert r.verdict == "match" and r.max_abs == 0.0


X = np.random.default_rng(0).standard_normal((6, 5))
Y = np.array([0, -100, 2, 3, -100, 1])
W = np.array([0.5, 1.0, 2.0, 1.5, 0.7])


def _planted_ce(x, y, w, eps=0.2):
    """The label-smoothing mean taken over every row, ignored targets included."""
    lp = jax.nn.log_softmax(x, axis=1)
    nll = losses.cross_entropy(x, y, weight=w)
    return (1 - eps) * nll + eps / x.shape[1] * (-(lp * w[None, :]).sum(1)).mean()


def test_cross_entropy_smoothing_with_ignored_targets_against_torch():
    ref = cc.TorchFunction(lambda x, y, w: F.cross_entropy(x, y, w, label_smoothing=0.2))
    mine = cc.compare_losses(
        lambda x, y, w: losses.cross_entropy(x, y, w, label_smoothing=0.2), ref, X, Y, W)
    assert mine.verdict == "match", str(mine)
    planted = cc.compare_losses(_planted_ce, ref, X, Y, W)
    assert planted.verdict == "differ"


@pytest.mark.parametrize(
    "torch_fn",
    [functools.partial(F.cross_entropy, label_smoothing=0.1),
     torch.nn.CrossEntropyLoss(label_smoothing=0.1)],
    ids=["functional-partial", "module"],
)
def test_torch_callables_are_recognised(torch_fn):
    y = np.array([0, 4, 2, 3, 1, 1])
    r = cc.compare_losses(functools.partial(losses.cross_entropy, label_smoothing=0.1),
                          torch_fn, X, y, dtype="float32")
    assert r.verdict == "match"


def test_all_ignored_mean_is_nan_with_zero_gradient_on_both_sides():
    y = np.full(6, -100)
    r = cc.compare_losses(losses.cross_entropy, F.cross_entropy, X, y)
    assert r.verdict == "match"
    naive = cc.compare_losses(lambda x, y: jnp.nan * x.sum(), F.cross_entropy, X, y)
    assert naive.ok == (True, False)  # value nan on both sides, gradient nan vs 0


_CROSS_ENTROPY = fnlearn.losses.cross_entropy


def _planted_ce_module(input, target, weight=None, size_average=None, ignore_index=-100,
                       reduce=None, reduction="mean", label_smoothing=0.0):
    if label_smoothing == 0.0 or weight is None:
        return _CROSS_ENTROPY(input, target, weight, ignore_index=ignore_index,
                                            reduction=reduction,
                                            label_smoothing=label_smoothing)
    return _planted_ce(input, target, weight, label_smoothing)


def test_command_with_torch(tmp_path, capsys, monkeypatch):
    path = tmp_path / "cc.json"
    code = main(["--only", "adam", "--only", "cross_entropy", "--json", str(path)])
    report = json.loads(path.read_text())
    out = capsys.readouterr().out
    assert code == 0 and report["ok"] and report["torch"], out
    torch_rows = [r for r in report["rows"] if r["reference"].startswith("torch")]
    assert len(torch_rows) == 7 + 6 and all(r["verdict"] == "match" for r in torch_rows)
    assert "torch.optim.Adam(amsgrad=True)" in out
    monkeypatch.setattr(fnlearn.losses, "cross_entropy", _planted_ce_module)
    code = main(["--only", "cross_entropy", "--json", str(path)])
    rows = json.loads(path.read_text())["rows"]
    assert code == 1
    bad = [(r["options"], r["reference"]) for r in rows if r["verdict"] == "MISMATCH"]
    assert bad == [("weight, ignore_index, label_smoothing=0.2",
                    "torch.nn.functional.cross_entropy")]


def test_docs_snippets_run():
    """Every Python block of docs/guides/optax_and_torch.md runs, in order, in one namespace."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "guides" / "optax_and_torch.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) >= 10
    namespace: dict = {}
    previous = torch.get_default_dtype()
    try:
        for i, block in enumerate(blocks):
            exec(compile(block, f"docs/guides/optax_and_torch.md block {i}", "exec"), namespace)
    finally:
        torch.set_default_dtype(previous)
