"""The README as a first visit reads it: its Python examples run as written (in a fresh
interpreter with JAX's defaults, as a user would run them), its links lead somewhere, and its
first commands are the ones CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_python_blocks_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "README.md has no python example"
    script = tmp_path / "readme_examples.py"
    script.write_text("\n\n".join(blocks))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_readme_links_exist():
    """Every relative link (into the docs, the benchmarks page) names a file of the repository."""
    targets = [t for t in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    if "://" not in t]
    assert "docs/guides/porting.md" in targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, missing


def test_first_commands_are_what_ci_runs():
    """.ci/run takes the test command from the README's first indented lines: the example
    command and the test command come first, as a first visit runs them."""
    first = [line[4:] for line in README.splitlines()[2:4]]
    assert first[0].startswith("python3 -m venv .venv") and "examples/digits.py" in first[0]
    assert re.match(r"python3 -m venv .* pytest", first[1])
    ci = (ROOT / ".ci" / "run").read_text()
    assert "grep -m1 -E '^    python3 -m venv .* pytest' README.md" in ci
