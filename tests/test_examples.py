"""Each example's main() at a tiny size (the torch side-by-side lives in
test_examples_torch.py)."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits(tmp_path, capsys):
    results = load("digits").main(size=0.1, plot=tmp_path / "digits.png", progress=False)
    assert list(results) == ["SGD (momentum)", "RMSprop", "Adagrad", "Adam"]
    for r in results.values():  # two epochs: far above chance (accuracy 0.1, loss ln 10 = 2.3)
        assert r["test_accuracy"] > 0.8 and 0 < r["train_loss"] < 2.0
    assert (tmp_path / "digits.png").read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "test accuracy" in out and "Adagrad" in out


@pytest.mark.exhaustive  # the README's demo (digits) runs by default
def test_diabetes(capsys):
    results = load("diabetes").main(size=0.1, progress=False)
    assert list(results) == ["mse_loss", "huber_loss (delta=1)"]
    for r in results.values():  # predicting the training mean gives an RMSE of about 72
        assert r["test_rmse"] < 70 and r["test_mae"] < r["test_rmse"]
    assert "test RMSE" in capsys.readouterr().out


@pytest.mark.exhaustive
def test_breast_cancer(capsys):
    results = load("breast_cancer").main(size=0.1, progress=False)
    assert list(results) == ["unweighted", "pos_weight=1.68"]  # 267 benign / 159 malignant
    for r in results.values():
        assert r["accuracy"] > 0.9 and r["missed"] + r["false_alarms"] < 0.1 * 143
    assert "false alarms" in capsys.readouterr().out
