"""examples/torch_side_by_side.py: torch and fnlearn train the same network identically."""

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from tests.test_examples import load  # noqa: E402


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-13), ("float32", 5e-6)],
                         ids=["float64", "float32"])
def test_torch_side_by_side_trains_the_same(dtype, tol, capsys):
    results = load("torch_side_by_side").main(size=0.1, dtype=dtype)
    assert list(results) == ["SGD", "RMSprop", "Adagrad", "Adam"]
    for name, r in results.items():
        assert r["steps"] == 1797 // 32, name  # one epoch of the 1,797 digits
        assert r["loss"] < tol and r["weights"] < tol, (name, r)
    assert "max |loss diff|" in capsys.readouterr().out
