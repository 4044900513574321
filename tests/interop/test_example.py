"""examples/resume_from_torch.py's main() at a tiny size (needs torch)."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "resume_from_torch.py"


def test_resume_from_torch(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("resume_from_torch", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(size=0.15, plot=tmp_path / "resume.png")
    assert len(out["torch"]) == len(out["fnlearn"]) == 3 * 4  # 3 epochs of 4 batches
    assert out["max_rel_diff"] < 1e-10
    assert (tmp_path / "resume.png").read_bytes()[:4] == b"\x89PNG"
    assert "largest relative difference" in capsys.readouterr().out
