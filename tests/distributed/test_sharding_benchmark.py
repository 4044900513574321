"""benchmarks/sharding.py end to end at a tiny size on 4 simulated devices (a subprocess: the
device count is fixed when JAX starts); no time is asserted, the byte counts are."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import _xla

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.exhaustive  # a measurement script: kept out of the default run's time budget
def test_sharding_benchmark_runs(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "benchmarks")!r})
        import _common, sharding
        _common.RESULTS = __import__("pathlib").Path({str(tmp_path)!r})
        sharding.main(width=16, depth=2, batch=8, reps=2)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=_xla.env(devices=4),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["mode"]: r for r in json.loads((tmp_path / "sharding.json").read_text())["rows"]}
    assert list(rows) == ["data_parallel", "zero1", "fsdp"]
    dp = rows["data_parallel"]
    # one all-reduce of every gradient (and the loss) in one combined op: the ideal
    assert dp["detail"]["all-reduce"]["operand_bytes"] >= dp["params_MB"] * 1e6
    assert abs(dp["ring_MB"] - dp["ideal_ring_MB"]) < 1e-4
    for mode in ("data_parallel", "zero1", "fsdp"):
        assert rows[mode]["state_MB_per_device"] == rows[mode]["ideal_state_MB"]
    assert "all-gather" in rows["zero1"]["detail"]  # the updated params' slices
    assert "| zero1 | 4 |" in proc.stdout
