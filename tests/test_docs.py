"""The documentation's code runs: every ```python block of the docs/ pages, and every docstring
example of fnlearn (``>>>``), each as a user would run it (a fresh interpreter with JAX's
default config, not this suite's strict x64 one).

A page's blocks run in order in one namespace. A block whose first line is ``# PyTorch`` needs
torch: without torch the page's other blocks run alone, so they must not depend on it; the
``torch``-marked test runs the whole page.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
TORCH_MARK = "# PyTorch"
# Pages whose blocks another test runs: the optax/torch page is run in order by
# tests/crosscheck/test_torch_side.py (it needs torch in every block).
RUN_ELSEWHERE = {"guides/optax_and_torch.md"}


def _blocks(page: Path) -> list[str]:
    return [textwrap.dedent(b) for b in
            re.findall(r"^[ \t]*```python\n(.*?)^[ \t]*```", page.read_text(), re.S | re.M)]


def _pages() -> list[str]:
    return sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")
                  if "_build" not in p.parts and _blocks(p))


def _user_env() -> dict[str, str]:
    """This environment without the variables that would change JAX's default config."""
    config = ("JAX_ENABLE_X64", "JAX_NUMPY_DTYPE_PROMOTION", "JAX_NUMPY_RANK_PROMOTION")
    return {k: v for k, v in os.environ.items() if k not in config}


def _run(blocks: list[str], tmp_path: Path, name: str) -> None:
    script = tmp_path / (name.replace("/", "_") + ".py")
    script.write_text("\n\n".join(blocks))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=600, env=_user_env())
    assert out.returncode == 0, f"{name}:\n{out.stderr[-4000:]}"


def _torch_pages() -> list[str]:
    return [p for p in _pages() if p not in RUN_ELSEWHERE
            and any(b.startswith(TORCH_MARK) for b in _blocks(DOCS / p))]


def test_pages_found():
    """The collection below sees the guides (a renamed folder would silently run nothing)."""
    pages = _pages()
    assert "guides/porting.md" in pages and RUN_ELSEWHERE | LONG <= set(pages)
    assert "guides/porting.md" in _torch_pages()


#: pages whose code trains or checkpoints for seconds: CI's exhaustive tier runs them
LONG = {"guides/checkpoints.md", "guides/performance.md"}


@pytest.mark.parametrize("page", [
    pytest.param(p, marks=(pytest.mark.exhaustive,) if p in LONG else ())
    for p in _pages() if p not in RUN_ELSEWHERE])
def test_page_runs_without_torch(page, tmp_path):
    """The page's blocks minus the PyTorch ones: what a user without torch can run. Where torch
    is installed, a page with PyTorch blocks runs once, whole, in the test below."""
    if page in _torch_pages() and importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed: test_page_runs_with_torch runs this page whole")
    blocks = [b for b in _blocks(DOCS / page) if not b.startswith(TORCH_MARK)]
    assert blocks, f"{page}: every block needs torch; nothing would run without it"
    _run(blocks, tmp_path, page)


@pytest.mark.torch
@pytest.mark.parametrize("page", _torch_pages())
def test_page_runs_with_torch(page, tmp_path):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (pip install -e '.[torch]')")
    _run(_blocks(DOCS / page), tmp_path, page)


def _doctests(*args: str) -> str:
    """pytest's doctest runner over ``args`` in a subprocess: JAX's defaults, float32, as the
    examples' outputs are written; its output."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--doctest-modules", *args, "-q",
         "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=ROOT, timeout=900, env=_user_env())
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    return out.stdout


@pytest.mark.exhaustive  # every docstring example of the package (30 s)
def test_docstring_examples():
    """Every ``>>>`` example in fnlearn's docstrings but fnlearn.interop's (they convert torch
    objects: test_docstring_examples_of_interop runs them where torch is installed)."""
    out = _doctests("fnlearn", "--ignore=fnlearn/interop")
    assert re.search(r"\b\d{2,} passed", out), out[-2000:]


@pytest.mark.torch
def test_docstring_examples_of_interop():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (pip install -e '.[torch]')")
    out = _doctests("fnlearn/interop")
    assert re.search(r"\b\d+ passed", out), out[-2000:]


def test_api_reference_lists_every_public_module():
    """The API reference (docs/_api.py, read by the autosummary template) reaches every public
    module, and documents exactly the names of each ``__all__``. Needs the docs extra (CI runs
    this file again after installing it)."""
    import importlib

    pytest.importorskip("sphinx", reason="the docs extra: pip install -e '.[docs]'")

    sys.path.insert(0, str(DOCS))
    try:
        import _api
    finally:
        sys.path.remove(str(DOCS))
    catalogue = _api.catalogue("fnlearn")
    expected = {"fnlearn.losses", "fnlearn.optim", "fnlearn.optim.swa_utils",
                "fnlearn.schedules", "fnlearn.train", "fnlearn.data", "fnlearn.checkpoint",
                "fnlearn.flat", "fnlearn.crosscheck"}
    assert expected <= set(catalogue)
    for name, entry in catalogue.items():
        module = importlib.import_module(name)
        if hasattr(module, "__all__"):
            documented = {n for n, _ in entry["members"]}
            names = {n for n in module.__all__ if f"{name}.{n}" not in catalogue}
            assert documented == names, name


def test_performance_page_and_result_files_agree():
    """benchmarks/README.md names only result files that exist, and every file in
    benchmarks/results/ is named there (directly or by a ``*`` pattern)."""
    import fnmatch

    page = (ROOT / "benchmarks" / "README.md").read_text()
    named = set(re.findall(r"results/([\w*]+\.\w+)", page))
    files = {p.name for p in (ROOT / "benchmarks" / "results").iterdir()}
    assert {n for n in named if "*" not in n} <= files
    assert all(any(fnmatch.fnmatch(f, n) for n in named) for f in files), \
        sorted(f for f in files if not any(fnmatch.fnmatch(f, n) for n in named))
