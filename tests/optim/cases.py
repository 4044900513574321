"""Optimizer case tables: the configurations checked against torch reference trajectories.

One table per torch.optim algorithm, named after it (``tests/optim/tables/<name>.py``; Adam's
holds AdamW's cases too). How to add a table:

1. Write ``tests/optim/tables/<name>.py`` with ``CASES: list[OptCase]`` (see
   ``tests._reference.OptCase``): ``name`` is the ``fnlearn.optim`` factory, ``torch_name``
   the ``torch.optim`` class, ``kwargs`` go to both (``torch_kwargs`` overrides torch's).
   Case ids are unique within a table and readable (``"adam-amsgrad-wd"``).
2. For a changing lr, set ``lr_schedule="<fn>"`` naming a function ``k -> factor`` defined in
   that module. Use only arithmetic operators (``0.9 ** k``, ``1 / (1 + k)``, ``k % 5``): it is
   called with a Python int by torch's ``LambdaLR`` and with a float JAX array by fnlearn, where
   ``lr`` becomes ``lambda count: base_lr * factor(count)`` (``base_lr`` = ``kwargs["lr"]`` or
   the factory's default).
3. Add ``<name>`` to ``TABLE_MODULES`` below, then run
   ``python -m tests.generate_reference <name>`` (needs torch) to write
   ``tests/optim/reference/<name>.npz``. ``test_reference.py`` and ``test_battery.py`` pick
   the table up with no further edits.

The state comparison maps each torch state key (``opt.state[p][key]``) onto the fnlearn state
field of the same name: a field with one leaf per parameter is compared leaf by leaf, a field
that is a single scalar (``step``, NAdam's ``mu_product``) is compared with every parameter's
torch value.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from typing import Any

import jax.numpy as jnp
import numpy as np

from fnlearn import optim
from tests._reference import OptCase

TABLE_MODULES = ("sgd", "rmsprop", "adagrad", "adam", "adamax", "nadam", "radam", "adadelta",
                 "asgd", "rprop", "adafactor")

#: The parameter shapes every reference trajectory uses (a list pytree, torch's param order).
SHAPES = ((2, 3), (3,))


def state_steps(case: OptCase) -> tuple[int, ...]:
    """The steps after which torch's state is stored: the first, the 10th, the last."""
    return tuple(sorted({t for t in (1, 10, case.steps) if t <= case.steps}))


def pack(arrays, lead: int = 0) -> np.ndarray:
    """Concatenate arrays (one per parameter), each flattened after its first ``lead`` axes."""
    return np.concatenate([np.reshape(a, np.shape(a)[:lead] + (-1,)) for a in arrays], axis=-1)


def unpack(vector: np.ndarray, shapes=SHAPES) -> list[np.ndarray]:
    """Split the last axis of ``vector`` into one array per shape (inverse of ``pack``)."""
    out, start = [], 0
    lead = vector.shape[:-1]
    for s in shapes:
        size = int(np.prod(s))
        out.append(vector[..., start:start + size].reshape(*lead, *s))
        start += size
    return out


def _module(table: str):
    return importlib.import_module(f"tests.optim.tables.{table}")


def tables() -> dict[str, list[OptCase]]:
    """Every optimizer table, by name."""
    return {name: _module(name).CASES for name in TABLE_MODULES}


def all_cases() -> Iterator[tuple[str, OptCase]]:
    """``(table, case)`` for every case of every table."""
    for table, cases in tables().items():
        for case in cases:
            yield table, case


def schedule(table: str, case: OptCase):
    """The case's factor function ``k -> factor`` or None."""
    return None if case.lr_schedule is None else getattr(_module(table), case.lr_schedule)


def base_lr(case: OptCase) -> float:
    """The case's lr: ``kwargs["lr"]`` or the fnlearn factory's default."""
    factory = getattr(optim, case.name)
    return case.kwargs.get("lr", inspect.signature(factory).parameters["lr"].default)


def fnlearn_kwargs(table: str, case: OptCase, dtype: str) -> dict:
    """The case's fnlearn kwargs, with ``lr`` a schedule ``count -> lr`` for schedule cases.

    The count is converted to ``dtype`` before the factor function sees it, so that the lr is
    computed in the dtype of the run (float64: the same as torch's Python-float lr).
    """
    kwargs = dict(case.kwargs)
    factor = schedule(table, case)
    if factor is not None:
        lr0 = base_lr(case)
        kwargs["lr"] = lambda count: lr0 * factor(jnp.asarray(count, dtype))
    return kwargs


def make(table: str, case: OptCase, dtype: str = "float64",
         **extra: Any) -> optim.GradientTransformation:
    """The fnlearn optimizer of a case (``extra``: more keyword arguments, e.g. ``fused``)."""
    return getattr(optim, case.name)(**fnlearn_kwargs(table, case, dtype), **extra)
