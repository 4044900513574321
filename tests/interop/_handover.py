"""Hand-over runs shared by the reference generator, the default tests and the live tests.

A run: parameters ``p0`` (the optimizer tables' shapes, torch's order) and ``K + N`` gradients;
torch takes K steps and its state dict is handed over; torch's K + N steps are the oracle for
the N steps continued on the other side. State dicts are stored with NumPy arrays, so the
default run (no torch) checks both conversions: torch's state after K steps -> fnlearn -> N
steps == torch's K + N; fnlearn's K steps -> torch layout == torch's state after K steps.
"""

from __future__ import annotations

import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import optim
from fnlearn.interop._params import to_numpy
from tests._reference import OptCase, seed_of
from tests.optim.cases import SHAPES, all_cases, schedule

K, N = 3, 3
RTOL = {"float64": 1e-10, "float32": 1e-5}


def inputs(case: OptCase) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``p0`` (one array per shape) and ``K + N`` gradients per parameter (float64)."""
    rng = np.random.default_rng(seed_of(case.id + "|handover"))
    p0 = [rng.standard_normal(s) for s in SHAPES]
    grads = [rng.standard_normal((K + N, *s)) * np.exp(rng.uniform(-1, 1)) for s in SHAPES]
    return p0, grads


def as_tree(arrays: list[Any], dtype: str) -> dict[str, jax.Array]:
    """The params pytree: ``{"0": ..., "1": ...}`` (torch's order is the dicts' order)."""
    return {str(i): jnp.asarray(np.asarray(a), dtype) for i, a in enumerate(arrays)}


def torch_kwargs(case: OptCase) -> dict:
    return dict(case.kwargs if case.torch_kwargs is None else case.torch_kwargs)


def cases() -> list[tuple[str, OptCase]]:
    """Every case of the optimizer tables (LBFGS and Muon have their own tests)."""
    return list(all_cases())


# --- state dicts as plain data --------------------------------------------------------------


def encode_state_dict(sd: dict, prefix: str) -> dict[str, np.ndarray]:
    """An optimizer state dict as two npz entries: every tensor/array concatenated into
    ``prefix|data`` (float64 holds float32 exactly), and a JSON string with the groups, the
    plain values and each array's place (offset, shape, dtype)."""
    chunks, offset = [], 0
    plain = {"param_groups": sd["param_groups"], "state": {}}
    for i, s in sd["state"].items():
        plain["state"][str(i)] = entry = {}
        for key, v in s.items():
            if v is None or isinstance(v, (int, float)):
                entry[key] = v
            elif isinstance(v, list):  # LBFGS's histories
                entry[key] = {"list": [_place(x, chunks, offset + sum(c.size for c in chunks))
                                       for x in v]}
            else:
                entry[key] = {"array": _place(v, chunks, offset)}
            offset = sum(c.size for c in chunks)
    data = np.concatenate(chunks) if chunks else np.zeros(0)
    return {f"{prefix}|data": data,
            f"{prefix}|json": text(json.dumps(plain, default=_json_default))}


def text(s: str) -> np.ndarray:
    """A string as a uint8 npz entry (a NumPy str array takes 4 bytes a character)."""
    return np.frombuffer(s.encode(), np.uint8)


def untext(a: np.ndarray) -> str:
    return bytes(np.asarray(a, np.uint8)).decode()


def _place(v: Any, chunks: list, offset: int) -> list | None:
    if v is None:
        return None
    a = _numpy(v)
    chunks.append(a.astype(np.float64).ravel())
    return [offset, list(a.shape), str(a.dtype)]


def decode_state_dict(stored: dict[str, np.ndarray], prefix: str) -> dict:
    plain = json.loads(untext(stored[f"{prefix}|json"]))
    data = stored[f"{prefix}|data"]

    def array(place: list | None) -> np.ndarray | None:
        if place is None:
            return None
        start, shape, dtype = place
        return data[start:start + int(np.prod(shape))].reshape(shape).astype(dtype)

    state = {}
    for i, s in plain["state"].items():
        state[int(i)] = {k: array(v["array"]) if isinstance(v, dict) and "array" in v
                         else [array(x) for x in v["list"]] if isinstance(v, dict)
                         else v for k, v in s.items()}
    groups = [{k: tuple(v) if isinstance(v, list) and k not in ("params", "param_names")
               else v for k, v in g.items()} for g in plain["param_groups"]]
    return {"state": state, "param_groups": groups}


def _numpy(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):
        return to_numpy(v)
    return np.asarray(v)


def _json_default(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not JSON: {type(x).__name__}")


# --- comparisons ----------------------------------------------------------------------------


def assert_close(actual: Any, expected: Any, dtype: str, what: str) -> None:
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    # elements near a cancellation are held to the array's scale
    scale = float(np.max(np.abs(e))) if e.size else 0.0
    np.testing.assert_allclose(a, e, rtol=RTOL[dtype], atol=RTOL[dtype] * scale * 1e-1,
                               err_msg=what)


def assert_state_dicts_close(actual: dict, expected: dict, dtype: str, what: str) -> None:
    """Every per-parameter state key of torch's layout, both ways (no key missing)."""
    assert set(actual["state"]) == set(expected["state"]), f"{what}: params with state differ"
    for i, s in expected["state"].items():
        got = actual["state"][i]
        assert set(got) - {"al"} == set(s) - {"al"}, f"{what}: param {i} keys {sorted(got)} " \
            f"!= torch's {sorted(s)}"
        for key, v in s.items():
            if key == "al" or v is None:
                assert key == "al" or got[key] is None, f"{what}: {i}/{key}"
                continue
            assert_close(_numpy(got[key]), _numpy(v), dtype, f"{what}: param {i} {key!r}")


def fnlearn_steps(tx: Any, state: Any, params: dict, grads: list[np.ndarray], steps: range,
                  dtype: str) -> tuple[dict, Any]:
    for k in steps:
        g = as_tree([gr[k] for gr in grads], dtype)
        updates, state = tx.update(g, state, params)
        params = optim.apply_updates(params, updates)
    return params, state


# --- torch side (imports torch) -------------------------------------------------------------


def torch_run(table: str, case: OptCase, dtype: str, *, steps: int = K + N,
              handover: int = K, start: tuple[dict, dict] | None = None) -> dict[str, Any]:
    """torch from ``p0`` (or from ``start`` = (params, state dict)), recording the state dict
    and scheduler state after ``handover`` steps and the params and state after ``steps``."""
    import torch

    p0, grads = inputs(case)
    tdt = getattr(torch, dtype)
    if start is not None:
        p0 = [np.asarray(start[0][str(i)], np.float64) for i in range(len(SHAPES))]
    params = [torch.tensor(p.astype(dtype), dtype=tdt, requires_grad=True) for p in p0]
    opt = getattr(torch.optim, case.torch_name)(params, **torch_kwargs(case))
    factor = schedule(table, case)
    sched = None if factor is None else torch.optim.lr_scheduler.LambdaLR(opt, factor)
    if start is not None:
        opt.load_state_dict(start[1])
        if sched is not None:
            sched.load_state_dict(start[2])
    out: dict[str, Any] = {}
    first = handover if start is not None else 0
    for k in range(first, steps):
        if k == handover and start is None:
            out["handover"] = (
                [p.detach().numpy().copy() for p in params],
                _copy_sd(opt.state_dict()),
                None if sched is None else sched.state_dict())
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.tensor(g[k].astype(dtype), dtype=tdt)
        opt.step()
        if sched is not None:
            sched.step()
    out["end"] = ([p.detach().numpy().copy() for p in params], _copy_sd(opt.state_dict()))
    return out


def _copy_sd(sd: dict) -> dict:
    import copy

    return copy.deepcopy(sd)
