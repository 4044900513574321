"""Each benchmark script runs end to end at a tiny size (no timing is asserted: benchmarks are
measurements, see benchmarks/README.md)."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import jax
import pytest

BENCH = Path(__file__).parent.parent / "benchmarks"


@pytest.fixture()
def bench(monkeypatch, tmp_path):
    """Benchmarks run as a user runs them: JAX's default config (float32, standard promotion,
    as optax needs), writing their results to a temporary folder."""
    monkeypatch.syspath_prepend(str(BENCH))
    import _common

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    saved = {k: getattr(jax.config, k) for k in
             ("jax_enable_x64", "jax_numpy_dtype_promotion", "jax_numpy_rank_promotion")}
    jax.config.update("jax_enable_x64", False)
    jax.config.update("jax_numpy_dtype_promotion", "standard")
    jax.config.update("jax_numpy_rank_promotion", "allow")
    yield tmp_path
    for k, v in saved.items():
        jax.config.update(k, v)


def _rows(results: Path, name: str) -> list[dict]:
    payload = json.loads((results / f"{name}.json").read_text())
    assert payload["machine"]["jax"]
    return payload["rows"]


@pytest.mark.exhaustive  # the smoke runs of the benchmark scripts: the two smallest by default
def test_update_throughput_runs(bench):
    import update_throughput

    update_throughput.main(["--sizes", "4096", "--leaves", "1,5", "--only", "adam,sgd",
                            "--reps", "1", "--rounds", "2", "--no-torch"])
    rows = _rows(bench, "update_throughput")
    variants = {(r["optimizer"], r["leaves"], r["variant"]) for r in rows}
    assert ("adam", 5, "fnlearn-flat") in variants and ("sgd", 5, "optax") in variants
    if jax.default_backend() == "cpu":  # elsewhere fused=True is the XLA rule: no rows of its own
        assert {("adam", 1, "fnlearn-fused"), ("sgd", 5, "fnlearn-fused-flat")} <= variants
    assert ("sgd", 5, "jax-dispatch") in variants
    assert all(r["ms"] > 0 for r in rows)


def test_xla_ceiling_is_the_c_loop(bench):
    """The accelerator's ceiling (one XLA fusion) computes what ceiling.c computes, for every
    shape of loop in it, and times."""
    import _common
    import numpy as np

    c_loop = _common.Ceiling()
    if c_loop.lib is None:  # seen on a GPU machine's image (its fused=True needs no compiler)
        pytest.skip(f"ceiling.c does not build here: {c_loop.error}")
    n = 1000
    for nin in (2, 3, 4, 5):
        arrays = [np.random.default_rng(i).random(n, dtype=np.float32) for i in range(nin)]
        want = _common.XlaCeiling.body([jax.numpy.asarray(a) for a in arrays], 0.5)
        ptrs = (ctypes.c_void_p * nin)(*[a.ctypes.data for a in arrays])
        c_loop.lib.stream(ptrs, nin, max(1, nin - 1), ctypes.c_size_t(n), ctypes.c_float(0.5))
        got = [arrays[0], *arrays[2:]]
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-6)
    assert _common.XlaCeiling().ms(4096, 4, 3, reps=1) > 0


@pytest.mark.exhaustive  # a whole-step benchmark; smaller smoke tests run by default
def test_peak_memory_runs(bench):
    import peak_memory

    rows = peak_memory.main(["--size", "65536", "--leaves", "5", "--steps", "1"])
    fused = {"fnlearn-fused"} if jax.default_backend() == "cpu" else set()
    assert {r["variant"] for r in rows} == {"grads-only", "fnlearn-flat", "fnlearn-tree", "optax",
                                            "fnlearn-train-step", *fused}
    assert all(r["peak_over_base_mb"] > 0 and r["step_ratio"] > 0 for r in rows)
    assert all(r["ratio_with_compile"] >= r["ratio"] and r["step_compile_mb"] >= 0
               for r in rows)


@pytest.mark.exhaustive  # a whole-step benchmark; smaller smoke tests run by default
def test_train_step_runs(bench):
    import train_step

    rows = train_step.main(["--reps", "1", "--no-torch", "--models", "digits-mlp",
                            "--rounds", "1"])
    assert {r["variant"] for r in rows} >= {"fnlearn", "flax+optax"}
    if jax.default_backend() == "cpu":
        assert {"fnlearn, fused=False", "fnlearn, xnnpack", "flax+optax, xnnpack"} <= {
            r["variant"] for r in rows}


@pytest.mark.exhaustive
def test_train_step_many_leaves_runs(bench):
    import train_step_many_leaves

    rows = train_step_many_leaves.main(["--size", "8192", "--leaves", "4", "--reps", "1"])
    fused = ["fnlearn (tree, fused=False)"] if jax.default_backend() == "cpu" else []
    assert [r["variant"] for r in rows] == ["fnlearn (tree)", *fused, "fnlearn (flat=True)",
                                            "optax (tree)", "loss + grads only (no update)"]


@pytest.mark.exhaustive
@pytest.mark.parametrize("processes", [[], ["--shared"]], ids=["isolated", "shared"])
def test_fused_vs_torch_runs(bench, processes):
    import fused_vs_torch

    rows = fused_vs_torch.main(["--sizes", "4096", "--rounds", "1", "--reps", "1", *processes])
    assert {r["optimizer"] for r in rows} == {"sgd", "adagrad", "adam", "adamw"}
    variants = {r["variant"] for r in rows}
    assert {"fnlearn fused", "fnlearn fused, 20 per call"} <= variants
    assert variants <= {"fnlearn fused", "fnlearn fused, 20 per call", "torch fused"}
    assert all(r["ms"] > 0 for r in rows)


def test_cross_entropy_runs(bench):
    import cross_entropy

    rows = cross_entropy.main(["--shapes", "8x3,4x5", "--reps", "1", "--rounds", "1",
                               "--no-torch"])
    assert [(r["shape"], r["variant"]) for r in rows] == [
        ("8x3", "fnlearn"), ("8x3", "optax"), ("4x5", "fnlearn"), ("4x5", "optax")]
    assert all(r["ms"] > 0 and r["fusions"] > 0 for r in rows)


@pytest.mark.exhaustive  # a whole-step benchmark; smaller smoke tests run by default
def test_train_step_goals_runs(bench):
    import train_step_goals

    rows = train_step_goals.main(["--size", "8192", "--leaves", "3", "--reps", "1",
                                  "--rounds", "1", "--optimizers", "sgd"])
    variants = [(r["group"], r["variant"]) for r in rows]
    assert {("own step", "fnlearn sgd"), ("own step", "fnlearn update_and_apply sgd"),
            ("own step", "optax sgd")} <= set(variants)
    assert {"make_train_step, default", "make_train_step, flat=True", "own step, optax.adam",
            "own step, update_and_apply, kept gradient", "loss+grads, kept"} <= {
                v for _, v in variants}
    assert all(r["step_ms"] > 0 for r in rows)
    stack = train_step_goals.main(["--model", "stack", "--size", "8192", "--leaves", "2",
                                   "--reps", "1", "--rounds", "1", "--no-own"])
    assert all(r["model"] == "stack" and r["step_ms"] > 0 for r in stack)


@pytest.mark.exhaustive  # a whole-step benchmark; smaller smoke tests run by default
def test_transformer_step_runs(bench):
    import transformer_step

    rows = transformer_step.main(["--layers", "1", "--dim", "16", "--heads", "2", "--vocab",
                                  "64", "--seq", "8", "--batch", "2", "--reps", "1",
                                  "--rounds", "1", "--variants", "fnlearn default,flax+optax"])
    assert [r["variant"] for r in rows] == ["fnlearn default", "flax+optax"]
    assert all(r["leaves"] == 6 + 16 and r["step_ms"] > 0 and r["peak_mb"] > 0 for r in rows)
