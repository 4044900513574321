"""``python -m fnlearn.crosscheck``: passes on the real catalogue, catches planted
disagreements, exit status and JSON (optax references only; the torch side is in
test_torch_side.py)."""

import json
import subprocess
import sys

import jax
import optax
import pytest

import fnlearn.losses
import fnlearn.optim
from fnlearn.crosscheck import _catalogue
from fnlearn.crosscheck.__main__ import main
from fnlearn.crosscheck._optax_map import to_optax

FAILING = {"MISMATCH", "UNEXPECTED-MATCH", "ERROR"}


def run(tmp_path, capsys, *args):
    path = tmp_path / "crosscheck.json"
    code = main([*args, "--no-torch", "--json", str(path)])
    return code, json.loads(path.read_text()), capsys.readouterr().out


@pytest.mark.exhaustive  # the whole catalogue; the planted-difference tests run by default
def test_the_real_catalogue_passes(tmp_path, capsys):
    """Every optax row of the catalogue, float64, 100 updates: what should agree agrees and
    every documented difference shows."""
    code, report, out = run(tmp_path, capsys)
    bad = [r for r in report["rows"] if r["verdict"] in FAILING]
    assert code == 0 and report["ok"] and not bad, "\n".join(map(str, bad))
    verdicts = {r["verdict"] for r in report["rows"]}
    assert verdicts == {"match", "differs-as-documented"}
    kinds = {r["kind"] for r in report["rows"]}
    assert kinds == {"optimizer", "schedule", "clip", "loss"}
    algorithms = {r["algorithm"] for r in report["rows"]}
    assert {"sgd", "rmsprop", "adagrad", "adam", "adamw", "adamax", "nadam", "radam",
            "adadelta", "asgd", "rprop", "clip_grad_norm", "one_cycle_lr",
            "cosine_annealing_lr", "cross_entropy", "triplet_margin_loss"} <= algorithms
    for r in report["rows"]:
        assert r["expected"] in ("match", "differ")
        assert (r["expected"] == "differ") == bool(r["reason"]), r
        assert not r["reference"].startswith("torch")
    assert report["summary"] == {v: sum(r["verdict"] == v for r in report["rows"])
                                 for v in verdicts}
    assert report["steps"] == 100 and report["dtype"] == "float64" and not report["torch"]
    assert report["versions"]["optax"] == optax.__version__
    assert report["versions"]["jax"] == jax.__version__
    assert "Documented differences:" in out and "differs-as-documented [" in out
    assert "comparisons, 100 updates, float64" in out


def _planted_rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                     centered=False, maximize=False):
    """torch's RMSprop with one change: eps inside the sqrt (optax's default placement)."""
    links = [optax.scale(-1.0)] if maximize else []
    if weight_decay:
        links.append(optax.add_decayed_weights(weight_decay))
    links.append(optax.rmsprop(lr, decay=alpha, eps=eps, centered=centered,
                               momentum=momentum or None))
    return optax.chain(*links)


def test_planted_rmsprop_eps_inside_sqrt(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fnlearn.optim, "rmsprop", _planted_rmsprop)
    code, report, out = run(tmp_path, capsys, "--only", "rmsprop", "--steps", "20")
    assert code == 1 and not report["ok"]
    verdicts = [r["verdict"] for r in report["rows"]]
    # every row that should match, and the trap row (optax's defaults) still differs
    assert verdicts.count("MISMATCH") == 7 and verdicts.count("differs-as-documented") == 2
    assert "MISMATCH" in out


def _planted_adagrad(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                     eps=1e-10, *, maximize=False):
    """torch's Adagrad with eps moved inside the sqrt: i.e. optax.adagrad."""
    return to_optax("adagrad", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                    initial_accumulator_value=initial_accumulator_value, eps=eps,
                    maximize=maximize).transform


@pytest.mark.exhaustive
def test_planted_adagrad_eps_inside_sqrt(tmp_path, capsys, monkeypatch):
    """Caught without torch: the documented eps difference vanishes (UNEXPECTED-MATCH)."""
    monkeypatch.setattr(fnlearn.optim, "adagrad", _planted_adagrad)
    code, report, _ = run(tmp_path, capsys, "--only", "adagrad")
    assert code == 1
    unexpected = {r["options"] for r in report["rows"] if r["verdict"] == "UNEXPECTED-MATCH"}
    assert unexpected == {"defaults", "eps=0.01"}


_CROSS_ENTROPY = fnlearn.losses.cross_entropy


def _planted_cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                           reduce=None, reduction="mean", label_smoothing=0.0):
    """A common porting slip: the smoothing mass spread over the C - 1 wrong classes."""
    import jax.numpy as jnp

    if label_smoothing == 0.0 or target.ndim != input.ndim - 1:
        return _CROSS_ENTROPY(input, target, weight, ignore_index=ignore_index,
                              reduction=reduction)
    c = input.shape[1]
    onehot = jax.nn.one_hot(target, c, axis=1, dtype=input.dtype)
    probs = onehot * (1 - label_smoothing) + (1 - onehot) * label_smoothing / (c - 1)
    return jnp.mean(-(probs * jax.nn.log_softmax(input, axis=1)).sum(1))


def test_planted_label_smoothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fnlearn.losses, "cross_entropy", _planted_cross_entropy)
    code, report, _ = run(tmp_path, capsys, "--only", "cross_entropy")
    assert code == 1
    verdicts = {r["options"]: r["verdict"] for r in report["rows"]}
    assert verdicts == {"defaults": "match", "probability targets": "match",
                        "label_smoothing=0.1": "MISMATCH",
                        "targets with ignore_index=-100": "differs-as-documented"}


def _raises_when_built(**kwargs):
    raise RuntimeError("planted failure")


def _raises_when_traced(**kwargs):
    def update(grads, state, params=None):
        raise RuntimeError("planted failure")

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


@pytest.mark.parametrize("broken", [
    pytest.param(_raises_when_built, id="at-construction"),
    pytest.param(_raises_when_traced, id="under-jit", marks=pytest.mark.exhaustive)])
def test_a_raising_side_is_an_error_row_and_the_rest_still_runs(tmp_path, capsys, monkeypatch,
                                                                 broken):
    monkeypatch.setattr(fnlearn.optim, "adadelta", broken)
    code, report, out = run(tmp_path, capsys, "--only", "adadelta", "--only", "adamax",
                            "--steps", "10")
    assert code == 1
    by_alg = {}
    for r in report["rows"]:
        by_alg.setdefault(r["algorithm"], set()).add(r["verdict"])
    assert by_alg == {"adadelta": {"ERROR"}, "adamax": {"match"}}
    assert "RuntimeError: planted failure" in out


@pytest.mark.exhaustive  # a whole catalogue run each: the planted rmsprop one by default
def test_float32(tmp_path, capsys):
    code, report, out = run(tmp_path, capsys, "--only", "adagrad", "--only", "radam",
                            "--dtype", "float32")
    assert code == 0 and report["dtype"] == "float32", out

    def verdict(algorithm, options, reference):
        (v,) = [r["verdict"] for r in report["rows"] if r["algorithm"] == algorithm
                and r["options"] == options and r["reference"].startswith(reference)]
        return v

    # documented, but below float32's resolution: eps=1e-10 inside the sqrt
    assert verdict("adagrad", "defaults", "optax.adagrad(0.01, initial") == "below-tolerance"
    # exact in float64, not in float32 (optax's float32 rho_t)
    assert verdict("radam", "eps=0.0", "optax.radam(") == "differs-as-documented"


@pytest.mark.parametrize(
    "args, message",
    [(["--only", "lamb"], "matches nothing"), (["--steps", "0"], "--steps must be >= 1"),
     (["--dtype", "float16"], "invalid choice")],
    ids=["unknown-name", "zero-steps", "bad-dtype"],
)
def test_bad_arguments_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_module_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "fnlearn.crosscheck", "--only", "sgd", "--steps", "3",
         "--no-torch"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "optax.sgd(0.01)" in proc.stdout and "references: optax only" in proc.stdout


def test_docs_table_is_the_catalogue():
    """docs/guides/optax_and_torch.md's table lists exactly the command's rows (with torch),
    each with the verdict its expectation gives; regenerate it with --markdown when the
    catalogue changes."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "guides" / "optax_and_torch.md").read_text()
    table = doc.split("## The table, as measured")[1].split("\n## ")[0]
    documented = []
    for line in table.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            verdict = cells[-1].split(" [")[0]
            documented.append((cells[0].strip("`"), cells[1], cells[2].strip("`"), verdict))
    planned = _catalogue.planned_rows(_catalogue.Settings(with_torch=True))
    expected = [(r.algorithm, r.options, r.reference,
                 "match" if r.expected == "match" else "differs-as-documented")
                for r in planned]
    assert documented == expected
