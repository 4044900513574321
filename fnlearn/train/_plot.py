"""Loss curves of one or several training runs, as a PNG (matplotlib, no pyplot)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._validate import require_extra

if TYPE_CHECKING:
    from ._loop import History


def plot_histories(
    histories: Mapping[str, History], path: str | Path, *, title: str | None = None
) -> Path:
    """Plot several runs' losses on one log-scale figure (e.g. one curve per optimizer).

    Each run draws its per-step loss faintly, its per-epoch mean training loss as a line, and
    its per-epoch validation loss dashed when recorded. Needs matplotlib
    (``pip install "fnlearn[train]"``); writes a PNG.
    """
    # the Figure class, not pyplot: no GUI backend, no global state
    Figure = require_extra("matplotlib.figure", "plot_histories").Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, history) in enumerate(histories.items()):
        color = f"C{i}"
        steps = np.arange(1, len(history.loss) + 1)
        ax.plot(steps, history.loss, color=color, alpha=0.25, linewidth=0.8)
        ends = [e["step"] for e in history.epochs]
        ax.plot(ends, [e["train_loss"] for e in history.epochs], color=color, marker="o",
                markersize=3, label=f"{name} (train, epoch mean)")
        if history.epochs and "val_loss" in history.epochs[0]:
            ax.plot(ends, [e["val_loss"] for e in history.epochs], color=color, linestyle="--",
                    label=f"{name} (validation)")
    if all(v > 0 for h in histories.values() for v in h.loss):
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title=title or "")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    return Path(path)
