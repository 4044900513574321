"""``python -m fnlearn.crosscheck``: run the built-in catalogue against optax (and torch).

Prints one table row per (fnlearn configuration, reference): the algorithm, its options, the
optax expression or torch call it is compared with, the largest relative deviation over the
run, the first update where they diverge, and a verdict:

* ``match``: agrees within the dtype's tolerance, as it should;
* ``differs-as-documented``: a known semantic difference (listed under the table);
* ``below-tolerance``: a documented difference too small to see at this dtype (float32);
* ``MISMATCH``: should agree and does not;
* ``UNEXPECTED-MATCH``: documented to differ, but agrees in float64 (the fnlearn side has
  drifted from torch to optax's semantics, or the documentation is stale);
* ``ERROR``: a side raised.

Exits 1 when any row is MISMATCH, UNEXPECTED-MATCH or ERROR, 0 otherwise (2 for bad
arguments).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections import Counter
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from . import _catalogue
from ._compare import OPT_RTOL, TOLERANCES, format_table

_KIND_TITLES = {
    "optimizer": "Optimizers: max |p_fnlearn - p_ref| / displacement over all updates",
    "schedule": "lr schedules (through SGD): max |p_fnlearn - p_ref| / displacement",
    "clip": "Gradient clipping (then SGD lr=1): max |p_fnlearn - p_ref| / displacement",
    "loss": "Losses: max |fnlearn - ref| / max |ref| over the value and the gradients",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fnlearn.crosscheck",
        description="Cross-check every fnlearn optimizer configuration, lr schedule, gradient "
                    "clipping and loss against optax, and against torch when it is installed.",
    )
    p.add_argument("--steps", type=int, default=100,
                   help="optimizer updates per configuration (default 100)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="parameter/input dtype (default float64)")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="only this algorithm or loss (e.g. adam, cross_entropy, '*lr'); "
                        "repeatable; shell-style patterns allowed")
    p.add_argument("--json", metavar="FILE",
                   help="also write the rows, versions and summary as JSON to FILE")
    p.add_argument("--markdown", metavar="FILE",
                   help="also write the tables as Markdown to FILE (the table of "
                        "docs/guides/optax_and_torch.md)")
    p.add_argument("--no-torch", action="store_true",
                   help="skip the torch references even when torch is installed")
    return p


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _fmt(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "-"
    return "0" if x == 0 else f"{x:.1e}"


def render(rows: Sequence[_catalogue.Row], steps: int, dtype: str) -> str:
    """The human-readable report: one table per kind, then the documented differences."""
    out = []
    notes: dict[str, int] = {}
    for kind, title in _KIND_TITLES.items():
        mine = [r for r in rows if r.kind == kind]
        if not mine:
            continue
        body = []
        for r in mine:
            verdict = r.verdict
            if r.reason and r.verdict in (_catalogue.DIFFERS, _catalogue.BELOW,
                                          _catalogue.UNEXPECTED_MATCH):
                verdict += f" [{notes.setdefault(r.reason, len(notes) + 1)}]"
            first = "-" if r.first_divergence is None else str(r.first_divergence)
            row = [r.algorithm, r.options, r.reference, _fmt(r.max_rel), first, verdict]
            body.append(row if kind != "loss" else row[:4] + row[5:])
        header = ["algorithm", "options", "reference", "max rel dev", "first div", "verdict"]
        widths = [None, 34, 58, None, None, None]
        if kind == "loss":
            header, widths = header[:4] + header[5:], widths[:5]
        out += [title, format_table(header, body, widths), ""]
    if notes:
        out.append("Documented differences:")
        out += [f"  [{i}] {reason}" for reason, i in notes.items()]
        out.append("")
    errors = [r for r in rows if r.verdict == _catalogue.ERROR]
    for r in errors:
        out.append(f"ERROR {r.algorithm} ({r.options}) vs {r.reference}: {r.reason}")
    counts = Counter(r.verdict for r in rows)
    tol = (f"rtol {OPT_RTOL[dtype]:g} (optimizers), {TOLERANCES[dtype][0]:g} / "
           f"{TOLERANCES[dtype][1]:g} (loss values / gradients)")
    out.append(f"{len(rows)} comparisons, {steps} updates, {dtype}, {tol}: " + ", ".join(
        f"{counts[v]} {v}" for v in (_catalogue.MATCH, _catalogue.DIFFERS, _catalogue.BELOW,
                                     *_catalogue.FAILING) if counts[v]))
    return "\n".join(out)


def render_markdown(rows: Sequence[_catalogue.Row], steps: int, dtype: str) -> str:
    """The same tables in Markdown, references as code, notes as a numbered list."""
    out = []
    notes: dict[str, int] = {}

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    for kind, title in _KIND_TITLES.items():
        mine = [r for r in rows if r.kind == kind]
        if not mine:
            continue
        out += [f"**{title}**", ""]
        header = ["algorithm", "options", "reference", "max rel dev"]
        header += ["first div"] if kind != "loss" else []
        out += ["| " + " | ".join(header + ["verdict"]) + " |",
                "|" + "---|" * (len(header) + 1)]
        for r in mine:
            verdict = r.verdict
            if r.reason and r.verdict != _catalogue.MATCH:
                verdict += f" [{notes.setdefault(r.reason, len(notes) + 1)}]"
            row = [f"`{r.algorithm}`", cell(r.options), f"`{cell(r.reference)}`", _fmt(r.max_rel)]
            if kind != "loss":
                row.append("-" if r.first_divergence is None else str(r.first_divergence))
            out.append("| " + " | ".join(row + [verdict]) + " |")
        out.append("")
    if notes:
        out += [f"{i}. {cell(reason)}" for reason, i in notes.items()]
        out.append("")
    counts = Counter(r.verdict for r in rows)
    out.append(f"{len(rows)} comparisons, {steps} updates, {dtype}: " + ", ".join(
        f"{counts[v]} {v}" for v in sorted(counts)))
    return "\n".join(out) + "\n"


def to_json(rows: Sequence[_catalogue.Row], settings: _catalogue.Settings, torch: bool,
            seconds: float) -> dict[str, Any]:
    counts = Counter(r.verdict for r in rows)
    return {
        "steps": settings.steps,
        "dtype": settings.dtype,
        "only": list(settings.only),
        "torch": torch,
        "versions": {name: _version(name) for name in ("fnlearn", "jax", "optax", "torch")},
        "python": platform.python_version(),
        "seconds": round(seconds, 2),
        "summary": dict(counts),
        "ok": not any(r.verdict in _catalogue.FAILING for r in rows),
        "rows": [r.to_dict() for r in rows],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fnlearn.crosscheck`` and ``fnlearn-crosscheck``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    names = _catalogue.catalogue_names()
    for pattern in args.only:
        if not any(_catalogue._selected(n, [pattern]) for n in names):
            parser.error(f"--only {pattern!r} matches nothing; names: {', '.join(names)}")
    with_torch = not args.no_torch and _torch_available()
    settings = _catalogue.Settings(steps=args.steps, dtype=args.dtype, only=tuple(args.only),
                                   with_torch=with_torch)
    start = time.perf_counter()
    rows = _catalogue.run(settings)
    seconds = time.perf_counter() - start
    print(render(rows, args.steps, args.dtype))
    refs = "optax and torch " + (_version("torch") or "") if with_torch else (
        "optax only (torch skipped)" if args.no_torch else "optax only (torch not installed)")
    print(f"references: {refs}; {seconds:.1f} s")
    report = to_json(rows, settings, with_torch, seconds)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(render_markdown(rows, args.steps, args.dtype))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
