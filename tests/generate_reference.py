"""Regenerate the committed torch reference data (needs torch): one entry point, by table.

    python -m tests.generate_reference              # every table
    python -m tests.generate_reference core muon    # only these
    python -m tests.generate_reference --list       # the table names

Each table is written by the generator beside its cases (``tests/losses``,
``tests/optim``, ``tests/schedules/generate_reference.py``) into the ``reference/`` folder next
to it; the tests read those files and need no torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def generators() -> dict[str, Callable[[], None]]:
    """Table name -> a function writing that table's ``.npz``."""
    from tests.interop import generate_reference as interop
    from tests.losses import cases as loss_cases
    from tests.losses import generate_reference as losses
    from tests.optim import cases as optim_cases
    from tests.optim import generate_reference as optim
    from tests.optim.generate_lbfgs_reference import generate as lbfgs
    from tests.optim.generate_muon_reference import generate as muon
    from tests.optim.generate_swa_utils_reference import generate as swa_utils
    from tests.schedules.generate_reference import generate as schedules

    table: dict[str, Callable[[], None]] = {}

    def add(name: str, fn: Callable[[], None]) -> None:
        if name in table:
            raise ValueError(f"two reference tables are named {name!r}")
        table[name] = fn

    for name in loss_cases.tables():
        add(name, lambda name=name: losses.generate([name]))
    for name in optim_cases.tables():
        add(name, lambda name=name: optim.generate([name]))
    add("muon", muon)
    add("lbfgs", lbfgs)
    add("swa_utils", swa_utils)
    add("schedules", schedules)  # and plateau.npz: ReduceLROnPlateau's cases
    for name in ("handover", "schedulers", "digits"):  # torch jobs handed over to fnlearn
        add(name, lambda name=name: interop.generate([name]))
    return table


def main(argv: list[str]) -> None:
    table = generators()
    if argv == ["--list"]:
        print("\n".join(table))
        return
    unknown = sorted(set(argv) - set(table))
    if unknown:
        raise SystemExit(f"unknown table(s) {unknown}; the tables are {sorted(table)}")
    for name in argv or table:
        table[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
