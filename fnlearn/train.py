"""Training: a train state pytree, a jit-compiled train step, an eval step, and ``fit``.

The seed's PyTorch loop::

    for x, y in iterate_batches(data, batch_size=32):
        loss = loss_function(net(x), y)
        loss.backward(); optimizer.step(); optimizer.zero_grad()

becomes, with the optimizer and the loss closed over by one compiled function::

    step = make_train_step(loss_fn, fl.optim.sgd(lr=0.1, momentum=0.9))
    state = TrainState.create(params, optimizer)
    for batch in iterate_batches(data, batch_size=32):
        state, metrics = step(state, batch)

There is no ``zero_grad``: gradients are values, not buffers that accumulate.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._typing import Array, Params
from .data import iterate_batches
from .flat import Flat
from .optim import update_and_apply

#: ``loss_fn(params, batch) -> loss`` or, with ``has_aux``, ``-> (loss, aux)``.
LossFn = Callable[[Params, Any], Any]
#: ``step(state, batch) -> (state, metrics)``, as returned by :func:`make_train_step`.
TrainStep = Callable[["TrainState", Any], "tuple[TrainState, dict[str, Any]]"]
#: ``eval_step(params, batch) -> metrics``, as returned by :func:`make_eval_step`.
EvalStep = Callable[[Params, Any], "dict[str, Any]"]


class TrainState(NamedTuple):
    """Everything a training run updates, as one plain pytree (a ``NamedTuple``).

    It can be passed through ``jax.jit``, ``lax.scan`` and ``jax.tree.map``, and saved with
    :mod:`fnlearn.checkpoint`. The optimizer and the loss are not stored in it: they are closed
    over by the step from :func:`make_train_step`.

    Attributes:
      params: the parameter pytree (dict, flax.linen ``params``, flax.nnx ``State``, ...).
      opt_state: ``optimizer.init(params)``.
      step: int32 scalar, the number of train-step calls so far (skipped ones included).
      skipped: int32 scalar counting the steps skipped for a non-finite loss or gradient;
        ``None`` unless the state was created with ``skip_nonfinite=True``.
    """

    params: Params
    opt_state: optax.OptState
    step: Array
    skipped: Array | None = None

    @classmethod
    def create(
        cls,
        params: Params,
        optimizer: optax.GradientTransformation,
        *,
        skip_nonfinite: bool = False,
        flat: bool = False,
    ) -> TrainState:
        """The state before the first step: copied params, ``optimizer.init``, ``step = 0``.

        With ``flat=True`` the params are stored as a :class:`~fnlearn.flat.Flat` (one buffer
        per dtype) and so is every optimizer buffer: the update runs as one set of kernels
        whatever the number of leaves. ``loss_fn`` still receives the parameter tree; read the
        trained tree with ``state.params.tree()``. On CPU the whole step was measured slower
        with ``flat=True`` on a 500-leaf model (benchmarks/README.md): measure before using.

        ``params`` is copied, so the donating train step consumes the copy and the caller's
        arrays stay usable (e.g. to start several runs from the same initial weights). An
        optimizer state leaf that is the very same array as a parameter (optax's ``lookahead``
        does this) is copied too, as one buffer cannot be donated twice. Weakly typed leaves
        (``jnp.full(shape, 0.1)``) become strongly typed, as the step's outputs are, so the step
        compiles once rather than again on its second call.
        """

        def own(x: Any) -> Any:
            x = jnp.asarray(x)
            return jnp.array(x, dtype=x.dtype, copy=True)

        params = Flat.of(params) if flat else jax.tree.map(own, params)
        opt_state = optimizer.init(params)
        seen = {id(x) for x in jax.tree.leaves(params)}

        def unshared(x: Any) -> Any:
            if isinstance(x, jax.Array) and (x.weak_type or id(x) in seen):
                x = own(x)
            seen.add(id(x))
            return x

        opt_state = jax.tree.map(unshared, opt_state)
        zero = jnp.zeros((), jnp.int32)
        return cls(params, opt_state, zero, jnp.zeros((), jnp.int32) if skip_nonfinite else None)


def make_train_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    has_aux: bool = False,
    donate: bool = True,
    accumulate_steps: int = 1,
    skip_nonfinite: bool = False,
    compiler_options: Mapping[str, Any] | None = None,
) -> TrainStep:
    """A jit-compiled ``step(state, batch) -> (state, metrics)``: one iteration of torch's loop.

    Algorithm (one call)::

        loss, g   = value_and_grad(loss_fn)(theta, batch)       # loss.backward()
        g         = conj(g) for complex leaves                  # torch's .grad convention
        u, s      = optimizer.update(g, s, theta)               # optimizer.step()
        theta     = theta + u        # (fused=True optimizers: one in-place optimizer.apply)
        step      = step + 1

    With ``accumulate_steps = K`` the batch (leading dimension ``B``, divisible by ``K``) is
    split into ``K`` consecutive micro-batches of ``B / K`` samples, and a ``lax.scan`` sums
    their gradients into one params-sized buffer before a single update::

        G = 0;  for k in 1..K:  l_k, g_k = value_and_grad(loss_fn)(theta, micro_batch_k);  G += g_k
        g = G / K;  loss = mean_k l_k

    For a ``'mean'``-reduced loss this is the gradient of the whole batch (the mean of equal
    micro-batch means is the batch mean), at the memory of one micro-batch's activations.

    Complex parameters train as in torch: ``jax.grad`` of a real loss returns the conjugate
    of torch's ``.grad`` (``dL/dx - i dL/dy`` for ``z = x + iy``), so the step conjugates
    complex gradients before the update, and fnlearn's optimizers treat each complex leaf as
    two independent reals (torch's ``view_as_real``). An optax optimizer gets the same
    conjugated gradient (optax expects it too; its adaptive rules differ from torch's on
    complex leaves: docs/crosscheck.md, "Complex parameters").

    With ``skip_nonfinite`` the update is skipped when the loss or any gradient element is
    NaN or Inf: ``params`` and ``opt_state`` come back bit-identical, ``state.skipped`` grows
    by one, ``state.step`` still counts the call (as ``torch.amp.GradScaler`` skips
    ``optimizer.step()``; ``optax.apply_if_finite`` is the optax equivalent).

    Args:
      loss_fn: ``loss_fn(params, batch)`` returning a scalar loss, or ``(loss, aux)`` with
        ``has_aux``. ``batch`` is whatever the step is called with (e.g. a tuple ``(x, y)``).
      optimizer: an optax-protocol ``GradientTransformation`` (``fnlearn.optim.*``, optax).
      has_aux: ``loss_fn`` returns ``(loss, aux)``; ``aux`` (any pytree of arrays) is returned
        in the metrics, averaged over micro-batches when ``accumulate_steps > 1``.
      donate: donate the input state's buffers (``jax.jit(donate_argnums=0)``), so params and
        optimizer state are updated in place. The state passed in must not be used afterwards;
        the returned state is a fresh, reusable one.
      accumulate_steps: ``K``, the number of micro-batches per update (1: no accumulation).
      skip_nonfinite: skip non-finite steps; the state needs its counter, so create it with
        ``TrainState.create(..., skip_nonfinite=True)``.
      compiler_options: XLA options for compiling this step only (``jax.jit``'s
        ``compiler_options``; no process-wide ``XLA_FLAGS``). On CPU,
        ``{"xla_cpu_use_xnnpack": True}`` runs the matmuls with XNNPACK (on the MLPs of
        benchmarks/train_step.py: from 13% faster to 8% slower across runs). XLA rejects an
        unknown name at the first call.

    Returns:
      ``step(state, batch) -> (state, metrics)`` where ``metrics`` is a dict of device arrays
      (no host sync: convert with ``float()`` only when needed): ``"loss"``, ``"aux"`` (with
      ``has_aux``) and ``"skipped"`` (bool, with ``skip_nonfinite``).

    Raises:
      TypeError: ``compiler_options`` is not a mapping with string keys.
      ValueError: ``accumulate_steps`` is not a positive integer; at trace time, a batch whose
        leading dimension ``accumulate_steps`` does not divide, or ``skip_nonfinite`` with a
        state that has no counter.

    Example::

        >>> loss_fn = lambda p, b: jnp.mean((b[0] @ p["w"] - b[1]) ** 2)
        >>> opt = optax.sgd(0.1)
        >>> state = TrainState.create({"w": jnp.zeros((3, 1))}, opt)
        >>> step = make_train_step(loss_fn, opt)
        >>> state, metrics = step(state, (jnp.ones((4, 3)), jnp.ones((4, 1))))
        >>> float(metrics["loss"]), int(state.step)
        (1.0, 1)
    """
    if (
        isinstance(accumulate_steps, bool)
        or not isinstance(accumulate_steps, (int, np.integer))
        or accumulate_steps < 1
    ):
        raise ValueError(
            f"accumulate_steps must be a positive integer, got {accumulate_steps!r}"
        )
    options = _check_compiler_options(compiler_options)
    loss_and_grads = _make_loss_and_grads(loss_fn, has_aux, int(accumulate_steps))

    def step(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, Any]]:
        if skip_nonfinite and state.skipped is None:
            raise ValueError(
                "skip_nonfinite=True needs a skipped-step counter in the state: create it with "
                "TrainState.create(params, optimizer, skip_nonfinite=True)"
            )
        loss, aux, grads = loss_and_grads(state.params, batch)
        params, opt_state = update_and_apply(optimizer, grads, state.opt_state, state.params)
        metrics = {"loss": loss, "aux": aux} if has_aux else {"loss": loss}
        skipped = state.skipped
        if skip_nonfinite:
            finite = _all_finite((loss, grads))
            params = jax.tree.map(functools.partial(jnp.where, finite), params, state.params)
            opt_state = jax.tree.map(
                functools.partial(jnp.where, finite), opt_state, state.opt_state
            )
            skipped = skipped + jnp.logical_not(finite).astype(skipped.dtype)
            metrics["skipped"] = jnp.logical_not(finite)
        return TrainState(params, opt_state, state.step + 1, skipped), metrics

    return jax.jit(step, donate_argnums=(0,) if donate else (), compiler_options=options)


def _check_compiler_options(options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``compiler_options`` as a dict, or a TypeError naming the argument."""
    if options is None:
        return None
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise TypeError(
            "compiler_options must be a mapping from XLA option names (str) to values, "
            f"got {options!r}"
        )
    return dict(options)


def make_eval_step(
    loss_fn: LossFn,
    *,
    has_aux: bool = False,
    compiler_options: Mapping[str, Any] | None = None,
) -> EvalStep:
    """A jit-compiled ``eval_step(params, batch) -> metrics``: the loss without a gradient.

    The counterpart of a ``with torch.no_grad():`` evaluation pass. ``metrics`` is
    ``{"loss": loss}`` (plus ``"aux": aux`` with ``has_aux``) as device arrays; see
    :func:`evaluate` for the mean over a whole data set. ``compiler_options`` are XLA options
    for this function only, as in :func:`make_train_step`.

    Example::

        >>> loss_fn = lambda p, b: jnp.mean((b[0] @ p["w"] - b[1]) ** 2)
        >>> eval_step = make_eval_step(loss_fn)
        >>> float(eval_step({"w": jnp.ones((3, 1))}, (jnp.ones((2, 3)), jnp.zeros((2, 1))))["loss"])
        9.0
    """

    def eval_step(params: Params, batch: Any) -> dict[str, Any]:
        out = _on_tree(loss_fn)(params, batch)
        return {"loss": out[0], "aux": out[1]} if has_aux else {"loss": out}

    options = _check_compiler_options(compiler_options)
    return jax.jit(eval_step, compiler_options=options)


def evaluate(eval_step: EvalStep, params: Params, data: Any, batch_size: int) -> dict[str, Any]:
    """The mean of ``eval_step``'s metrics over ``data``, weighting each batch by its size.

    For a ``'mean'``-reduced loss this is the loss of the whole data set. Metrics come back
    with the structure of the step's, scalars as Python floats, after one host sync for the
    whole pass.
    """
    sums, count = None, 0
    for batch in iterate_batches(data, batch_size):
        n = jax.tree.leaves(batch)[0].shape[0]
        metrics = jax.tree.map(lambda m, n=n: m * n, eval_step(params, batch))
        sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
        count += n
    if sums is None:
        raise ValueError("evaluate: data has no samples")
    means = jax.tree.map(lambda s: np.asarray(s) / count, jax.device_get(sums))
    return jax.tree.map(lambda m: float(m) if m.ndim == 0 else m, means)


@dataclasses.dataclass
class History:
    """What :func:`fit` records: the loss of every step and a dict of metrics per epoch.

    Attributes:
      loss: the training loss of each step, in order.
      epochs: one dict per epoch: ``epoch`` (1-based), ``step`` (``len(loss)`` at the end of
        the epoch), ``train_loss`` (mean step loss), ``time`` (seconds), and with validation
        data ``val_loss`` (and ``val_aux``).
    """

    loss: list[float] = dataclasses.field(default_factory=list)
    epochs: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Write the loss curves (steps, epoch means, validation) to a PNG; returns ``path``."""
        return plot_histories({"train": self}, path, title=title)


def plot_histories(
    histories: Mapping[str, History], path: str | Path, *, title: str | None = None
) -> Path:
    """Plot several runs' losses on one log-scale figure (e.g. one curve per optimizer).

    Each run draws its per-step loss faintly, its per-epoch mean training loss as a line, and
    its per-epoch validation loss dashed when recorded. Needs matplotlib; writes a PNG.
    """
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

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


def fit(
    train_step: TrainStep,
    state: TrainState,
    data: Any,
    *,
    epochs: int,
    batch_size: int,
    key: Array | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    eval_step: EvalStep | None = None,
    val_data: Any = None,
    start_epoch: int = 0,
    checkpoint_dir: str | Path | None = None,
    keep: int = 3,
    progress: bool | None = None,
) -> tuple[TrainState, History]:
    """Train for ``epochs`` epochs: the seed's loop, with a progress bar and a history.

    Epoch ``e`` (0-based) visits ``data`` through :func:`~fnlearn.data.iterate_batches` in
    the order drawn from ``jax.random.fold_in(key, e)``, calls ``train_step`` on every batch,
    then (with ``val_data``) evaluates ``state.params`` with ``eval_step`` and (with
    ``checkpoint_dir``) saves the state, ``key`` and ``e + 1`` with
    :func:`fnlearn.checkpoint.save`. To resume::

        state, key, done = fl.checkpoint.restore(checkpoint_dir, like=state)
        state, history = fit(step, state, data, ..., key=key, start_epoch=done)

    which ends bit-identical to a run that was never interrupted. The loop is short on
    purpose: copy it into your own code when you need more.

    Args:
      train_step: from :func:`make_train_step`. ``state`` is donated to it if it donates.
      state: the :class:`TrainState` to start from.
      data: a tuple or dict of arrays with a common leading dimension.
      epochs: the total number of epochs, counting the ``start_epoch`` already done.
      batch_size: samples per step (also per validation batch).
      key: a PRNG key for the data order; needed with ``shuffle``.
      shuffle: reshuffle every epoch (torch's ``DataLoader(shuffle=True)``).
      drop_last: drop each epoch's last, smaller batch (avoids one extra compilation).
      eval_step: from :func:`make_eval_step`; needed with ``val_data``.
      val_data: evaluated after every epoch; recorded as ``val_loss`` (and ``val_aux``).
      start_epoch: epochs already done (from :func:`fnlearn.checkpoint.restore`).
      checkpoint_dir: save a checkpoint after every epoch, keeping the last ``keep``.
      keep: how many checkpoints to keep.
      progress: show a tqdm progress bar (loss, steps/s); ``None``: only on a terminal.

    Returns:
      ``(state, history)``: the final state and a :class:`History` of this call's epochs.

    The per-step loss stays on the device during an epoch; the bar shows the previous step's
    loss, so the host waits for step ``i - 1`` while step ``i`` runs.
    """
    if val_data is not None and eval_step is None:
        raise ValueError("val_data needs eval_step=make_eval_step(loss_fn)")
    data = jax.tree.map(jnp.asarray, data)
    history = History()
    for epoch in range(start_epoch, epochs):
        epoch_key = None if key is None else jax.random.fold_in(key, epoch)
        batches = iterate_batches(data, batch_size, shuffle=shuffle, key=epoch_key,
                                  drop_last=drop_last)
        bar = _progress_bar(batches, progress, desc=f"epoch {epoch + 1}/{epochs}",
                            total=_num_batches(data, batch_size, drop_last))
        show = not getattr(bar, "disable", True)
        losses, start = [], time.perf_counter()
        for batch in bar:
            state, metrics = train_step(state, batch)
            losses.append(metrics["loss"])
            if show and len(losses) > 1:
                bar.set_postfix(loss=f"{float(losses[-2]):.4g}", refresh=False)
        if show:
            bar.close()
        losses = [float(x) for x in jax.device_get(losses)]
        history.loss.extend(losses)
        record = {
            "epoch": epoch + 1,
            "step": len(history.loss),
            "train_loss": float(np.mean(losses)) if losses else math.nan,
            "time": time.perf_counter() - start,
        }
        if val_data is not None:
            val = evaluate(eval_step, state.params, val_data, batch_size)
            record.update({f"val_{name}": value for name, value in val.items()})
        history.epochs.append(record)
        if checkpoint_dir is not None:
            from . import checkpoint

            checkpoint.save(checkpoint_dir, state, key=key, epoch=epoch + 1, keep=keep)
    return state, history


def _on_tree(loss_fn: LossFn) -> LossFn:
    """``loss_fn`` always sees the parameter tree: a :class:`~fnlearn.flat.Flat` is viewed as
    its tree, so the gradient comes back as a ``Flat`` in the same layout."""

    def call(params: Params, batch: Any) -> Any:
        return loss_fn(params.tree() if isinstance(params, Flat) else params, batch)

    return call


def _make_loss_and_grads(
    loss_fn: LossFn, has_aux: bool, accumulate_steps: int
) -> Callable[[Params, Any], tuple[Array, Any, Params]]:
    """``(params, batch) -> (loss, aux, grads)``, summing micro-batch gradients when K > 1."""
    value_and_grad = jax.value_and_grad(_on_tree(loss_fn), has_aux=has_aux)

    def one(params: Params, batch: Any) -> tuple[Array, Any, Params]:
        out, grads = value_and_grad(params, batch)
        loss, aux = out if has_aux else (out, None)
        return loss, aux, jax.tree.map(_as_torch_grad, grads)

    if accumulate_steps == 1:
        return one

    def accumulated(params: Params, batch: Any) -> tuple[Array, Any, Params]:
        def body(grad_sum: Params, micro_batch: Any) -> tuple[Params, tuple[Array, Any]]:
            loss, aux, grads = one(params, micro_batch)
            return jax.tree.map(jnp.add, grad_sum, grads), (loss, aux)

        micro_batches = _split(batch, accumulate_steps)
        grad_sum, (losses, aux) = jax.lax.scan(body, jax.tree.map(jnp.zeros_like, params),
                                               micro_batches)
        grads = jax.tree.map(lambda g: g / accumulate_steps, grad_sum)
        aux = jax.tree.map(lambda a: jnp.mean(a, axis=0), aux)
        return jnp.mean(losses), aux, grads

    return accumulated


def _as_torch_grad(g: Array) -> Array:
    """torch's ``.grad`` from ``jax.grad``'s: for a complex parameter ``z = x + iy`` of a real
    loss ``L`` torch's gradient is ``dL/dx + i dL/dy`` (the direction of steepest ascent),
    ``jax.grad`` returns its conjugate ``dL/dx - i dL/dy``; real leaves are unchanged."""
    return jnp.conj(g) if jnp.iscomplexobj(g) else g


def _split(batch: Any, k: int) -> Any:
    """Reshape every leaf ``(B, ...)`` to ``(k, B / k, ...)``: k consecutive micro-batches."""

    def split(path: Any, x: Any) -> Array:
        x = jnp.asarray(x)
        if x.ndim == 0 or x.shape[0] % k:
            raise ValueError(
                f"accumulate_steps={k} must divide the batch size, but batch"
                f"{jax.tree_util.keystr(path)} has shape {x.shape}"
            )
        return x.reshape(k, x.shape[0] // k, *x.shape[1:])

    return jax.tree_util.tree_map_with_path(split, batch)


def _num_batches(data: Any, batch_size: int, drop_last: bool) -> int:
    n = jax.tree.leaves(data)[0].shape[0]
    return n // batch_size if drop_last else -(-n // batch_size)


def _all_finite(tree: Any) -> Array:
    """A bool scalar: every element of every leaf is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return functools.reduce(jnp.logical_and, leaves, jnp.asarray(True))


def _progress_bar(batches: Any, progress: bool | None, **kwargs: Any) -> Any:
    """tqdm over ``batches`` (``progress=None``: only on a terminal), or ``batches`` itself."""
    if progress is False:
        return batches
    try:
        from tqdm import tqdm
    except ImportError:
        if progress:
            raise
        return batches
    return tqdm(batches, unit="step", disable=None if progress is None else False, **kwargs)
