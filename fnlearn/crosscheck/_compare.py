"""Run two optimizers side by side on identical gradients and report how far their parameters
drift apart; also the deviation measures, tolerances and dtype setup that the loss comparison
(``_compare_losses``) shares.

The JAX sides of one comparison run in a single jitted ``lax.scan`` (one compile for both);
torch sides run eagerly in numpy/torch. Deviations are measured in float64 numpy.
"""

from __future__ import annotations

import contextlib
import math
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._typing import Params
from ..optim import apply_updates
from . import _torch

#: Default relative tolerance of optimizer parameters (deviation / displacement), by dtype.
#: float32: rounding of ~1e-7 per step, relative to |p| rather than to the (smaller)
#: displacement, accumulates over 100 steps to 1e-5..1e-4 of the displacement.
OPT_RTOL = {"float64": 1e-10, "float32": 1e-4}

#: Default relative tolerances of losses by dtype: (values, gradients).
TOLERANCES = {"float64": (1e-10, 1e-10), "float32": (1e-5, 2e-5)}

#: Default log-uniform range of the per-step gradient scale of generated gradients.
GRAD_SCALE = (0.1, 10.0)


# --------------------------------------------------------------------------------------------
# deviations


def _deviation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a - b|`` elementwise, with nan == nan (same place) counting as agreement and a nan
    on one side only (or an inf against a finite value) counting as an infinite deviation."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        d = np.abs(a - b)
    both_nan = np.isnan(a) & np.isnan(b)
    same_inf = np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b))
    d = np.where(both_nan | same_inf, 0.0, d)
    return np.where(np.isnan(d), np.inf, d)


def _finite_max(x: np.ndarray) -> float:
    """max |x| over the finite entries (0 when there are none)."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    x = x[np.isfinite(x)]
    return float(x.max()) if x.size else 0.0


def _rel(abs_dev: float, scale: float) -> float:
    if abs_dev == 0.0:
        return 0.0
    return abs_dev / scale if scale > 0.0 else math.inf


def _num(x: float) -> float | str:
    """A float for JSON: non-finite values become the strings 'inf', '-inf', 'nan'."""
    x = float(x)
    return x if math.isfinite(x) else str(x)


def _fmt(x: float) -> str:
    return f"{x:.2e}" if math.isfinite(x) and x != 0.0 else ("0" if x == 0.0 else str(x))


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                 max_widths: Sequence[int | None] | None = None) -> str:
    """A plain-text table with left-aligned columns; a cell wider than its column's entry in
    ``max_widths`` wraps onto continuation lines (at spaces or after commas)."""
    max_widths = max_widths or [None] * len(header)

    def wrap(text: str, width: int | None) -> list[str]:
        if width is None or len(text) <= width:
            return [text]
        return textwrap.wrap(text, width, break_on_hyphens=False, subsequent_indent="  ") or [""]

    cells = [[wrap(str(c), w) for c, w in zip(r, max_widths, strict=True)] for r in rows]
    widths = [max([len(h)] + [len(line) for r in cells for line in r[i]])
              for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for r in cells:
        for k in range(max(len(c) for c in r)):
            lines.append("  ".join((c[k] if k < len(c) else "").ljust(w)
                                   for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# reports


@dataclass(frozen=True)
class Report:
    """Result of :func:`compare`: how far two optimizers' parameters drift apart.

    ``abs_dev[k, i]`` is ``max |p_a - p_b|`` over the entries of leaf ``i`` after update
    ``k + 1``; ``rel_dev[k, i]`` divides it by the leaf's displacement from its initial value,
    ``max(|p_a - p_0|_inf, |p_b - p_0|_inf)``, so it reads as "fraction of the distance
    travelled" and does not depend on the size of the parameters themselves. A step diverges
    when ``abs_dev > atol + rtol * displacement`` for some leaf; ``first_divergence`` is the
    first such update (1-based: 1 is the state after the first update) or ``None``.
    """

    a: str
    b: str
    leaves: tuple[str, ...]
    abs_dev: np.ndarray
    rel_dev: np.ndarray
    diverged: np.ndarray
    dtype: str
    rtol: float
    atol: float

    @property
    def steps(self) -> int:
        return int(self.abs_dev.shape[0])

    @property
    def max_abs(self) -> float:
        return float(self.abs_dev.max()) if self.abs_dev.size else 0.0

    @property
    def max_rel(self) -> float:
        return float(self.rel_dev.max()) if self.rel_dev.size else 0.0

    @property
    def first_divergence(self) -> int | None:
        hit = np.flatnonzero(self.diverged.any(axis=1))
        return int(hit[0]) + 1 if hit.size else None

    @property
    def agree(self) -> bool:
        return self.first_divergence is None

    @property
    def verdict(self) -> str:
        """``'match'`` or ``'differ'``."""
        return "match" if self.agree else "differ"

    def _summary(self) -> str:
        if self.agree:
            return f"match (max rel deviation {_fmt(self.max_rel)} <= rtol {self.rtol:g})"
        return (f"differ from update {self.first_divergence} "
                f"(max rel deviation {_fmt(self.max_rel)} > rtol {self.rtol:g})")

    def __str__(self) -> str:
        head = [
            f"a: {self.a}",
            f"b: {self.b}",
            f"{self.steps} updates, {self.dtype}, tolerance |a - b| <= {self.atol:g} + "
            f"{self.rtol:g} * displacement",
            f"verdict: {self._summary()}",
            "",
        ]
        leaf_rows = []
        for i, name in enumerate(self.leaves):
            hit = np.flatnonzero(self.diverged[:, i])
            leaf_rows.append([name or "(root)", _fmt(self.abs_dev[:, i].max()),
                              _fmt(self.rel_dev[:, i].max()), str(hit[0] + 1) if hit.size else "-"])
        table = format_table(["leaf", "max abs", "max rel", "first diverging update"], leaf_rows)
        marks = sorted({k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, self.steps)
                        if k <= self.steps} | ({self.first_divergence} - {None}))
        step_rows = [[str(k), _fmt(self.abs_dev[k - 1].max()), _fmt(self.rel_dev[k - 1].max())]
                     for k in marks]
        steps = format_table(["update", "max abs", "max rel"], step_rows)
        return "\n".join(head) + table + "\n\n" + steps

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (non-finite numbers as the strings 'inf' / 'nan')."""
        return {
            "kind": "optimizer",
            "a": self.a,
            "b": self.b,
            "steps": self.steps,
            "dtype": self.dtype,
            "rtol": self.rtol,
            "atol": self.atol,
            "verdict": self.verdict,
            "first_divergence": self.first_divergence,
            "max_abs": _num(self.max_abs),
            "max_rel": _num(self.max_rel),
            "leaves": list(self.leaves),
            "abs_dev": [[_num(x) for x in row] for row in self.abs_dev],
            "rel_dev": [[_num(x) for x in row] for row in self.rel_dev],
        }


# --------------------------------------------------------------------------------------------
# dtype, params and gradients


def check_dtype(dtype: Any) -> str:
    """The canonical name of a supported comparison dtype ('float64' or 'float32')."""
    name = np.dtype(dtype).name if dtype is not None else None
    if name not in TOLERANCES:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return name


@contextlib.contextmanager
def precision(dtype: str) -> Iterator[None]:
    """The JAX settings a comparison runs under.

    float64 comparisons run with x64 enabled, float32 ones with x64 disabled, as a float32
    training script runs (optax then computes its step-count scalars such as ``b2**t`` in
    float32 too); the setting is restored afterwards. Type promotion is JAX's standard one:
    optax itself mixes Python floats with int32 step counts (``1 - b1**count``), which
    ``jax_numpy_dtype_promotion='strict'`` refuses.
    """
    with contextlib.ExitStack() as stack:
        want = dtype == "float64"
        if bool(jax.config.jax_enable_x64) != want:
            stack.enter_context(jax.enable_x64(want))
        stack.enter_context(jax.numpy_dtype_promotion("standard"))
        yield


def _leaf_names(params: Params) -> tuple[str, ...]:
    paths = jax.tree_util.tree_flatten_with_path(params)[0]
    return tuple(jax.tree_util.keystr(path) for path, _ in paths)


def _cast_params(params: Params, dtype: str) -> Params:
    def cast(x: Any) -> jax.Array:
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"params: every leaf must be a floating array, got dtype {x.dtype}")
        return x.astype(dtype)

    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError("params: the pytree has no array leaves")
    return jax.tree.map(cast, params)


def _as_key(key: Any) -> jax.Array:
    if key is None:
        return jax.random.PRNGKey(0)
    if isinstance(key, (int, np.integer)):
        return jax.random.PRNGKey(int(key))
    return key


def make_grads(
    params: Params, steps: int, key: Any = None, scale: tuple[float, float] = GRAD_SCALE
) -> Params:
    """A seeded gradient sequence for ``params``: each leaf stacked over ``steps``.

    Each step's gradient is a standard normal draw times a per-step, per-leaf scale drawn
    log-uniformly from ``scale`` (so updates see both small and large gradients, which is
    where eps placements show), in the dtype of each leaf.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    lo, hi = scale
    if not 0 < lo <= hi:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(_as_key(key), 2 * len(leaves))
    out = []
    for i, p in enumerate(leaves):
        z = jax.random.normal(keys[2 * i], (steps, *p.shape), dtype=p.dtype)
        u = jax.random.uniform(keys[2 * i + 1], (steps,), dtype=p.dtype)
        s = jnp.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u)
        out.append(z * s.reshape((steps,) + (1,) * p.ndim))
    return treedef.unflatten(out)


def resolve_grads(
    params: Params, grads: Any, steps: int | None, key: Any, scale: tuple[float, float]
) -> tuple[Params, int]:
    """The gradient sequence (leaves stacked over steps) and the number of steps."""
    if grads is None:
        steps = 100 if steps is None else steps
        return make_grads(params, steps, key, scale), steps
    if callable(grads):
        steps = 100 if steps is None else steps
        seq = [grads(k) for k in range(steps)]
        try:
            stacked = jax.tree.map(lambda p, *g: jnp.stack(g).astype(p.dtype), params, *seq)
        except ValueError as e:
            raise ValueError(f"grads(step) must return a pytree shaped like params: {e}") from e
        return stacked, steps
    try:
        leaves = jax.tree.structure(params).flatten_up_to(grads)
    except (ValueError, TypeError) as e:
        raise ValueError(
            "grads must have params' tree structure, each leaf stacked over steps"
        ) from e
    p_leaves, treedef = jax.tree.flatten(params)
    out = []
    length = None
    for p, g in zip(p_leaves, leaves, strict=True):
        g = jnp.asarray(g)
        if g.shape[1:] != p.shape or g.ndim != p.ndim + 1:
            raise ValueError(
                f"grads: a leaf has shape {g.shape}, expected (steps, *{p.shape}) "
                "(gradients stacked over steps on a leading axis)"
            )
        if length is not None and g.shape[0] != length:
            raise ValueError("grads: every leaf must have the same number of steps")
        length = g.shape[0]
        out.append(g.astype(p.dtype))
    if steps is None:
        steps = length
    if not 1 <= steps <= length:
        raise ValueError(f"steps={steps} but grads hold {length} steps")
    return treedef.unflatten([g[:steps] for g in out]), steps


# --------------------------------------------------------------------------------------------
# running sides


def _is_transform(side: Any) -> bool:
    return callable(getattr(side, "init", None)) and callable(getattr(side, "update", None))


def check_side(side: Any, name: str) -> None:
    if _is_transform(side) or _torch.is_torch_optimizer(side):
        return
    raise TypeError(
        f"{name} must be an optax/fnlearn GradientTransformation or a torch.optim class "
        f"(TorchOptimizer(cls, **kwargs) or (cls, kwargs)), got {side!r}"
    )


def jax_trajectories(
    transforms: Sequence[Any], params: Params, grads: Params
) -> list[list[np.ndarray]]:
    """Parameter trajectories of several GradientTransformations over one gradient sequence.

    All transforms run in ONE jitted ``lax.scan`` (a single compile), each with its own state;
    returns, per transform, per leaf, the parameters after each update ``(steps, *shape)``.
    """
    if not transforms:
        return []

    def run(params: Params, grads: Params) -> list[Params]:
        def body(carry: list, g: Params) -> tuple[list, list]:
            out = []
            for t, (p, s) in zip(transforms, carry, strict=True):
                u, s = t.update(g, s, p)
                out.append((apply_updates(p, u), s))
            return out, [p for p, _ in out]

        init = [(params, t.init(params)) for t in transforms]
        return jax.lax.scan(body, init, grads)[1]

    trajs = jax.jit(run)(params, grads)
    return [[np.asarray(x, dtype=np.float64) for x in jax.tree.leaves(t)] for t in trajs]


def side_name(side: Any, given: str | None, default: str) -> str:
    if given is not None:
        return given
    if _torch.is_torch_optimizer(side):
        return repr(_torch.as_torch_optimizer(side))
    return default


def trajectories(
    sides: Sequence[Any], params: Params, grads: Params, dtype: str
) -> list[list[np.ndarray]]:
    """Trajectories of a mix of JAX and torch sides (JAX ones batched in one compile)."""
    jax_idx = [i for i, s in enumerate(sides) if not _torch.is_torch_optimizer(s)]
    out: list[Any] = [None] * len(sides)
    for i, traj in zip(jax_idx, jax_trajectories([sides[i] for i in jax_idx], params, grads),
                       strict=True):
        out[i] = traj
    p0 = [np.asarray(p) for p in jax.tree.leaves(params)]
    g = [np.asarray(x) for x in jax.tree.leaves(grads)]
    for i, s in enumerate(sides):
        if out[i] is None:
            out[i] = _torch.run_optimizer(_torch.as_torch_optimizer(s), p0, g, dtype)
    return out


def report_from(
    traj_a: Sequence[np.ndarray],
    traj_b: Sequence[np.ndarray],
    p0: Sequence[np.ndarray],
    *,
    a: str,
    b: str,
    leaves: tuple[str, ...],
    dtype: str,
    rtol: float,
    atol: float,
) -> Report:
    """Build a :class:`Report` from two trajectories (lists of ``(steps, *shape)`` leaves)."""
    steps = traj_a[0].shape[0]
    abs_dev = np.zeros((steps, len(leaves)))
    rel_dev = np.zeros((steps, len(leaves)))
    diverged = np.zeros((steps, len(leaves)), dtype=bool)
    for i, (ta, tb, p) in enumerate(zip(traj_a, traj_b, p0, strict=True)):
        if ta.shape != tb.shape:
            raise ValueError(f"leaf {leaves[i]}: trajectories have shapes {ta.shape}, {tb.shape}")
        dev = _deviation(ta, tb).reshape(steps, -1)
        disp_a = np.abs(ta - np.asarray(p, dtype=np.float64)).reshape(steps, -1)
        disp_b = np.abs(tb - np.asarray(p, dtype=np.float64)).reshape(steps, -1)
        disp = np.where(np.isfinite(disp_a), disp_a, 0.0).max(axis=1, initial=0.0)
        disp = np.maximum(disp, np.where(np.isfinite(disp_b), disp_b, 0.0).max(axis=1, initial=0.0))
        d = dev.max(axis=1, initial=0.0)
        abs_dev[:, i] = d
        rel_dev[:, i] = [_rel(x, y) for x, y in zip(d, disp, strict=True)]
        diverged[:, i] = d > atol + rtol * disp
    return Report(a=a, b=b, leaves=leaves, abs_dev=abs_dev, rel_dev=rel_dev, diverged=diverged,
                  dtype=dtype, rtol=rtol, atol=atol)


def compare(
    a: Any,
    b: Any,
    params: Params,
    *,
    steps: int | None = None,
    grads: Any = None,
    key: Any = None,
    dtype: Any = "float64",
    rtol: float | None = None,
    atol: float = 0.0,
    scale: tuple[float, float] = GRAD_SCALE,
    names: tuple[str | None, str | None] = (None, None),
) -> Report:
    """Run two optimizers side by side on the same gradient sequence and compare parameters.

    Each side is an fnlearn optimizer, any optax ``GradientTransformation`` (a chain, an
    ``inject_hyperparams``...), or, when torch is installed, a torch.optim configuration:
    ``TorchOptimizer(torch.optim.Adam, lr=1e-3, amsgrad=True)``, the tuple
    ``(torch.optim.Adam, dict(lr=1e-3, amsgrad=True))`` or a bare class (torch's defaults).
    Both sides start from ``params`` and receive identical gradients at every step, so any
    difference in the parameters comes from the update rules alone.

    Args:
      a, b: the two optimizers.
      params: the initial parameters, a pytree of floating arrays (cast to ``dtype``).
      steps: number of updates (default 100, or the length of stacked ``grads``).
      grads: ``None`` for a seeded sequence (normal draws times a log-uniform per-step scale
        in ``scale``); a pytree like ``params`` with each leaf stacked over steps on a leading
        axis; or a callable ``step -> grads`` (``step = 0, 1, ...``).
      key: a ``jax.random`` key or an int seed for the generated gradients (default 0).
      dtype: ``'float64'`` (default; runs with x64 enabled) or ``'float32'`` (with x64
        disabled, as float32 training runs); the x64 setting is restored afterwards.
      rtol, atol: divergence threshold ``|p_a - p_b| > atol + rtol * displacement``; ``rtol``
        defaults to 1e-10 in float64 and 1e-4 in float32 (see ``OPT_RTOL``).
      scale: the log-uniform range of the generated gradients' per-step scale.
      names: labels of the two sides in the report (torch sides are named automatically).

    Returns:
      A :class:`Report`: per update and per leaf, the max absolute and relative deviation,
      the first diverging update, a verdict; ``print(report)`` shows a table and
      ``report.to_dict()`` is JSON-able.

    Example::

        >>> import jax.numpy as jnp
        >>> import optax, fnlearn.crosscheck as cc
        >>> r = cc.compare(optax.rmsprop(1e-2, decay=0.99, eps_in_sqrt=False),
        ...                optax.rmsprop(1e-2, decay=0.99), {"w": jnp.zeros(3)}, steps=20)
        >>> r.verdict, r.first_divergence
        ('differ', 1)
    """
    check_side(a, "a")
    check_side(b, "b")
    dtype = check_dtype(dtype)
    rtol = OPT_RTOL[dtype] if rtol is None else float(rtol)
    with precision(dtype):
        params = _cast_params(params, dtype)
        grads, steps = resolve_grads(params, grads, steps, key, scale)
        traj_a, traj_b = trajectories([a, b], params, grads, dtype)
        p0 = [np.asarray(p, dtype=np.float64) for p in jax.tree.leaves(params)]
    return report_from(traj_a, traj_b, p0, a=side_name(a, names[0], "a"),
                       b=side_name(b, names[1], "b"), leaves=_leaf_names(params), dtype=dtype,
                       rtol=rtol, atol=float(atol))
