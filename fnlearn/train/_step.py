"""The jit-compiled train and eval steps: one iteration of torch's loop as one function."""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import NamedSharding, PartitionSpec

from .._typing import Array, Params
from .._validate import is_int
from ..flat import Flat, is_flat
from ..optim import _lbfgs, update_and_apply
from ..sharding import Plan
from ._state import TrainState

#: ``loss_fn(params, batch) -> loss`` or, with ``has_aux``, ``-> (loss, aux)``.
LossFn = Callable[[Params, Any], Any]
#: ``step(state, batch) -> (state, metrics)``, as returned by :func:`make_train_step`.
TrainStep = Callable[[TrainState, Any], "tuple[TrainState, dict[str, Any]]"]
#: ``eval_step(params, batch) -> metrics``, as returned by :func:`make_eval_step`.
EvalStep = Callable[[Params, Any], "dict[str, Any]"]


def make_train_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    has_aux: bool = False,
    donate: bool = True,
    accumulate_steps: int = 1,
    skip_nonfinite: bool = False,
    compiler_options: Mapping[str, Any] | None = None,
    sharding: Plan | None = None,
) -> TrainStep:
    """A jit-compiled ``step(state, batch) -> (state, metrics)``: one iteration of torch's loop.

    Algorithm (one call)::

        loss, g   = value_and_grad(loss_fn)(theta, batch)       # loss.backward()
        g         = conj(g) for complex leaves                  # torch's .grad convention
        u, s      = optimizer.update(g, s, theta)               # optimizer.step()
        theta     = theta + u        # (fused=True optimizers: one in-place optimizer.apply)
        step      = step + 1

    The gradient is written into a buffer the step keeps from its previous call, as torch
    keeps each parameter's ``.grad`` between steps (one gradient-sized buffer per step
    function, donated to the next call): a fresh gradient buffer would be allocated and
    mapped page by page on every call, which on CPU costs more than the optimizer's update
    (benchmarks/train_step_goals.md). Under an outer transformation (``jax.jit``,
    ``jax.grad``) the step starts from zeros each call and keeps nothing.

    With ``accumulate_steps = K`` the batch (leading dimension ``B``, divisible by ``K``) is
    split into ``K`` consecutive micro-batches of ``B / K`` samples, and a ``lax.scan`` sums
    their gradients into one params-sized buffer before a single update::

        G = 0;  for k in 1..K:  l_k, g_k = value_and_grad(loss_fn)(theta, micro_batch_k);  G += g_k
        g = G / K;  loss = mean_k l_k

    For a ``'mean'``-reduced loss this is the gradient of the whole batch (the mean of equal
    micro-batch means is the batch mean), at the memory of one micro-batch's activations.
    With :func:`fnlearn.optim.lbfgs` every evaluation of its closure (each iteration's, each
    line-search trial's) is this: the mean loss over the ``K`` micro-batches and its
    gradient, as torch's closure that loops over the micro-batches calling
    ``(loss / K).backward()`` returns; each evaluation runs the ``K`` micro-batches again.

    Complex parameters train as in torch: ``jax.grad`` of a real loss returns the conjugate
    of torch's ``.grad`` (``dL/dx - i dL/dy`` for ``z = x + iy``), so the step conjugates
    complex gradients before the update, and fnlearn's optimizers treat each complex leaf as
    two independent reals (torch's ``view_as_real``). An optax optimizer gets the same
    conjugated gradient (optax expects it too; its adaptive rules differ from torch's on
    complex leaves: docs/guides/optax_and_torch.md, "Complex parameters").

    With ``skip_nonfinite`` the update is skipped when the loss or any gradient element is
    NaN or Inf: ``params`` and ``opt_state`` come back bit-identical, ``state.skipped`` grows
    by one, ``state.step`` still counts the call (as ``torch.amp.GradScaler`` skips
    ``optimizer.step()``; ``optax.apply_if_finite`` is the optax equivalent). With
    :func:`fnlearn.optim.lbfgs`, which evaluates the loss again inside the step, the step is
    also skipped when the loss or gradient at any point its iterations step to is
    non-finite, so neither params nor the quasi-Newton history take a non-finite value
    (torch's ``LBFGS`` has no such check, and ``GradScaler.step`` refuses closures).

    Args:
      loss_fn: ``loss_fn(params, batch)`` returning a scalar loss, or ``(loss, aux)`` with
        ``has_aux``. ``batch`` is whatever the step is called with (e.g. a tuple ``(x, y)``).
      optimizer: an optax-protocol ``GradientTransformation`` (``fnlearn.optim.*``, optax),
        or :func:`fnlearn.optim.lbfgs`: its whole ``step(closure)`` (up to ``max_iter``
        iterations on the batch's loss and gradient, with the strong-Wolfe line search if
        chosen) runs compiled in ``lax.while_loop``s, with the host-driven step's numbers;
        the state may come from ``TrainState.create`` or from host-driven steps
        (:class:`~fnlearn.optim.LBFGSState`, converted to the fixed-shape
        :class:`~fnlearn.optim.LBFGSArrays` the step returns; the host-driven ``step`` and
        :func:`fnlearn.interop.torch.optimizer_to_torch` take those arrays back).
      has_aux: ``loss_fn`` returns ``(loss, aux)``; ``aux`` (any pytree of arrays) is returned
        in the metrics, averaged over micro-batches when ``accumulate_steps > 1``.
      donate: donate the input state's buffers (``jax.jit(donate_argnums=0)``), so params and
        optimizer state are updated in place. The state passed in must not be used afterwards
        (calling the step on it again raises a ``ValueError`` saying so); the returned state
        is a fresh, reusable one. ``False`` keeps every state usable.
      accumulate_steps: ``K``, the number of micro-batches per update (1: no accumulation).
      skip_nonfinite: skip non-finite steps, counting them in ``state.skipped``.
      compiler_options: XLA options for compiling this step only (``jax.jit``'s
        ``compiler_options``; no process-wide ``XLA_FLAGS``). On CPU,
        ``{"xla_cpu_use_xnnpack": True}`` runs the matmuls with XNNPACK (on the MLPs of
        benchmarks/train_step.py: from 13% faster to 8% slower across runs). XLA rejects an
        unknown name at the first call.
      sharding: a :class:`fnlearn.sharding.Plan` (a mesh and ``"data_parallel"``, ``"zero1"``
        or ``"fsdp"``) to run the step on many devices or processes: place the state with
        ``plan.put(state)``; each batch (global, e.g. from ``iterate_batches(...,
        sharding=plan.batch)``) is split over the mesh's data axis, and the step computes
        what the one-device step computes on the whole batch, up to summation order.
        ``step.lower(state, batch)`` gives the compiled HLO and shardings, as ``jax.jit``'s.
        Each call first waits for the call before the previous one (at most two queued:
        XLA's CPU client can hang with 32 multi-device programs queued per device;
        docs/guides/many_devices.md). ``None``: one device, as JAX places it.

    Returns:
      ``step(state, batch) -> (state, metrics)`` where ``metrics`` is a dict of device arrays
      (no host sync: convert with ``float()`` only when needed): ``"loss"``, ``"aux"`` (with
      ``has_aux``) and ``"skipped"`` (bool, with ``skip_nonfinite``). ``step.lower(state,
      batch)`` lowers the jitted function it calls, as ``jax.jit``'s ``lower`` does.

    Raises:
      TypeError: ``compiler_options`` is not a mapping with string keys.
      ValueError: ``accumulate_steps`` is not a positive integer; at trace time, a batch whose
        leading dimension ``accumulate_steps`` does not divide, or ``skip_nonfinite`` with a
        state that has no counter; with ``sharding``, before the first step with a new state
        or batch shape: a batch the data axis does not divide, a ``param_specs`` entry that
        does not fit its leaf, or a state not placed by the plan (the leaf named).

    Example::

        >>> import jax.numpy as jnp
        >>> import optax
        >>> from fnlearn.train import TrainState, make_train_step
        >>> loss_fn = lambda p, b: jnp.mean((b[0] @ p["w"] - b[1]) ** 2)
        >>> opt = optax.sgd(0.1)
        >>> state = TrainState.create({"w": jnp.zeros((3, 1))}, opt)
        >>> step = make_train_step(loss_fn, opt)
        >>> state, metrics = step(state, (jnp.ones((4, 3)), jnp.ones((4, 1))))
        >>> float(metrics["loss"]), int(state.step)
        (1.0, 1)
    """
    if not is_int(accumulate_steps, 1):
        raise ValueError(
            f"accumulate_steps must be a positive integer, got {accumulate_steps!r}"
        )
    options = _check_compiler_options(compiler_options)
    lbfgs = _lbfgs.options(optimizer)
    loss_and_grads = _make_loss_and_grads(loss_fn, has_aux, int(accumulate_steps), sharding)

    def step(grad_buffer: Params, state: TrainState, batch: Any
             ) -> tuple[Params, TrainState, dict[str, Any]]:
        del grad_buffer  # donated: the new gradient is written into its memory
        if skip_nonfinite and state.skipped is None:
            raise ValueError(
                "skip_nonfinite=True counts skipped steps in state.skipped, which is None here: "
                "create the state with TrainState.create(params, optimizer)"
            )
        loss, aux, grads = loss_and_grads(state.params, batch)
        params = state.params
        if lbfgs is not None:  # the whole closure-driven step, compiled
            params, opt_state, finite = _lbfgs_step(lbfgs, loss_and_grads, state, batch, loss,
                                                    grads)
        else:
            if sharding is not None:  # the optimizer reads gradients and params in its slices
                grads, params = _constrain_to_update(sharding, grads, params)
            # sharded steps keep XLA's order: tied, a process whose peer died mid-step fails
            # in gloo's transport, not with jax's "another task died"
            params, opt_state = update_and_apply(optimizer, grads, state.opt_state, params,
                                                 after=loss if sharding is None else None)
        metrics = {"loss": loss, "aux": aux} if has_aux else {"loss": loss}
        skipped = state.skipped
        if skip_nonfinite:
            if lbfgs is None:
                finite = _all_finite((loss, grads))
            params = jax.tree.map(functools.partial(jnp.where, finite), params, state.params)
            opt_state = jax.tree.map(
                functools.partial(jnp.where, finite), opt_state, state.opt_state
            )
            skipped = skipped + jnp.logical_not(finite).astype(skipped.dtype)
            metrics["skipped"] = jnp.logical_not(finite)
        return grads, TrainState(params, opt_state, state.step + 1, skipped), metrics

    if sharding is not None:
        def state_step(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, Any]]:
            _, state, metrics = step(None, state, batch)
            return state, metrics

        jitted = _sharded(state_step, sharding, int(accumulate_steps), donate, options)
    else:
        # The gradient buffer comes first among the inputs and the outputs: JAX pairs donated
        # inputs with outputs of the same shape in order, so the new gradient takes the old
        # one's memory and the new params take the old params', donated state or not.
        # keep_unused: the buffer is never read, and JAX would drop (not donate) an unused
        # input.
        jitted = _KeptGradient(jax.jit(step, donate_argnums=(0, 1) if donate else (0,),
                                       keep_unused=True, compiler_options=options))
    jitted = _explain_donation(jitted) if donate else jitted
    return jitted if lbfgs is None else _with_lbfgs_arrays(jitted, lbfgs)


def _lbfgs_step(opts: Any, loss_and_grads: Callable, state: TrainState, batch: Any,
                loss: Array, grads: Params) -> tuple[Params, Any, Array]:
    """L-BFGS's ``step(closure)`` inside the compiled step: the closure is the loss and
    gradient of the (flattened) params on this batch (with accumulation, their means over
    the micro-batches). Also returns whether every loss and gradient it took was finite."""
    x, unravel = ravel_pytree(state.params)

    def value_and_grad(flat: Array) -> tuple[Array, Array]:
        value, _, g = loss_and_grads(unravel(flat), batch)
        return value, ravel_pytree(g)[0]

    x, opt_state, finite = _lbfgs.train_update(opts, value_and_grad, x, state.opt_state, loss,
                                               ravel_pytree(grads)[0])
    return unravel(x), opt_state, finite


def _with_lbfgs_arrays(step: TrainStep, opts: Any) -> TrainStep:
    """``step`` taking an :class:`~fnlearn.optim.LBFGSState` (``TrainState.create``'s, or one
    left by host-driven steps) as the fixed-shape :class:`~fnlearn.optim.LBFGSArrays` the
    compiled loop carries."""

    def arrays(state: TrainState) -> TrainState:
        if isinstance(state.opt_state, _lbfgs.LBFGSArrays):
            return state
        flat = jax.eval_shape(lambda p: ravel_pytree(p)[0], state.params)
        return state._replace(opt_state=_lbfgs.as_arrays(opts, state.opt_state, flat))

    @functools.wraps(step)
    def call(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, Any]]:
        return step(arrays(state), batch)

    call.lower = lambda state, batch: step.lower(arrays(state), batch)
    return call


def _donated_error() -> ValueError:
    return ValueError(
        "make_train_step: this state was donated to an earlier call of the step (donate=True "
        "updates params and optimizer state in place, so the state passed in is used up). "
        "Continue from the state the step returned (state, metrics = step(state, batch)), or "
        "build the step with make_train_step(..., donate=False) to keep every state usable "
        "(at the cost of a copy of params and optimizer state per step)")


def _explain_donation(jitted: Any) -> TrainStep:
    """The donating step, with XLA's "Buffer has been deleted or donated" (a state used
    twice) turned into an error that says what happened and how to opt out. The check is
    one flag read (``state.step``, a buffer every call donates) before the call, and the
    XLA error is translated too where another part of the state was reused."""

    @functools.wraps(jitted)
    def call(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, Any]]:
        counter = getattr(state, "step", None)
        if (isinstance(counter, jax.Array) and not isinstance(counter, jax.core.Tracer)
                and counter.is_deleted()):
            raise _donated_error()
        try:
            return jitted(state, batch)
        except ValueError as e:
            if "deleted or donated" in str(e):
                raise _donated_error() from None
            raise

    for name in ("lower", "trace"):  # as jax.jit's: step.lower(state, batch).compile()
        if hasattr(jitted, name):
            setattr(call, name, getattr(jitted, name))
    return call


class _KeptGradient:
    """``step(state, batch) -> (state, metrics)`` over a jitted
    ``(grad_buffer, state, batch) -> (grads, state, metrics)``: each call donates the
    gradient of the previous one (zeros on the first call, or when the params' structure,
    shapes, dtypes or shardings changed), so XLA writes the new gradient in place."""

    def __init__(self, jitted: Callable[..., Any]):
        functools.update_wrapper(self, jitted, updated=())  # the step's name and docstring
        self._jitted = jitted
        self._kept: Params | None = None

    def __call__(self, state: TrainState, batch: Any) -> tuple[TrainState, dict[str, Any]]:
        params = state.params
        leaves, structure = jax.tree.flatten(params)
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            _, state, metrics = self._jitted(_zeros_like(params), state, batch)
            return state, metrics
        kept, self._kept = self._kept, None  # taken, so a concurrent call makes its own
        if kept is None or not _same_buffers(kept, leaves, structure):
            kept = _zeros_like(params)
        self._kept, state, metrics = self._jitted(kept, state, batch)
        return state, metrics

    def lower(self, state: TrainState, batch: Any) -> Any:
        """``jax.jit(...).lower`` of the function each call runs."""
        return self._jitted.lower(jax.eval_shape(_zeros_like, state.params), state, batch)


def _zeros_like(params: Params) -> Params:
    """Zeros with each parameter's shape, dtype and sharding (``jnp.zeros_like``'s rules)."""
    return jax.tree.map(jnp.zeros_like, params)


def _same_buffers(kept: Params, leaves: list[Any], structure: Any) -> bool:
    """Whether ``kept`` can hold the gradient of the params flattened to ``leaves`` and
    ``structure``: same structure, shapes, dtypes and shardings (of the params that are JAX
    arrays), and not deleted. Runs on every step: the per-leaf facts are compared as two
    lists, one C-level comparison rather than a Python test per leaf."""
    held, held_structure = jax.tree.flatten(kept)
    if held_structure != structure or any(x.is_deleted() for x in held):
        return False
    return ([(x.shape, x.dtype, x.sharding) for x in held]
            == [(y.shape, y.dtype, y.sharding if isinstance(y, jax.Array) else x.sharding)
                for x, y in zip(held, leaves, strict=True)])


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
    sharding: Plan | None = None,
) -> EvalStep:
    """A jit-compiled ``eval_step(params, batch) -> metrics``: the loss without a gradient.

    The counterpart of a ``with torch.no_grad():`` evaluation pass. ``metrics`` is
    ``{"loss": loss}`` (plus ``"aux": aux`` with ``has_aux``) as device arrays; see
    :func:`evaluate` for the mean over a whole data set. ``compiler_options`` are XLA options
    for this function only, as in :func:`make_train_step`. With ``sharding`` (a
    :class:`fnlearn.sharding.Plan`) the batch is split over the mesh's data axis, the params
    are read where ``plan.put`` placed them, and the metrics come back whole on every device
    and process (the mean over the global batch); as the sharded train step, each call first
    waits for the call before the previous one.

    Example::

        >>> import jax.numpy as jnp
        >>> from fnlearn.train import make_eval_step
        >>> loss_fn = lambda p, b: jnp.mean((b[0] @ p["w"] - b[1]) ** 2)
        >>> eval_step = make_eval_step(loss_fn)
        >>> float(eval_step({"w": jnp.ones((3, 1))}, (jnp.ones((2, 3)), jnp.zeros((2, 1))))["loss"])
        9.0
    """

    def eval_step(params: Params, batch: Any) -> dict[str, Any]:
        if sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, sharding.batch)
        out = _on_tree(loss_fn)(params, batch)
        return {"loss": out[0], "aux": out[1]} if has_aux else {"loss": out}

    options = _check_compiler_options(compiler_options)
    if sharding is None:
        return jax.jit(eval_step, compiler_options=options)
    jitted = jax.jit(eval_step, out_shardings=sharding.replicated, compiler_options=options)

    def checked(params: Params, batch: Any) -> dict[str, Any]:
        sharding.check_batch(batch)
        return jitted(params, batch)

    return _paced(checked)


def _on_tree(loss_fn: LossFn) -> LossFn:
    """``loss_fn`` always sees the parameter tree: a :class:`~fnlearn.flat.Flat` is viewed as
    its tree, so the gradient comes back as a ``Flat`` in the same layout."""

    def call(params: Params, batch: Any) -> Any:
        return loss_fn(params.tree() if isinstance(params, Flat) else params, batch)

    return call


def _make_loss_and_grads(
    loss_fn: LossFn, has_aux: bool, accumulate_steps: int, plan: Plan | None = None
) -> Callable[[Params, Any], tuple[Array, Any, Params]]:
    """``(params, batch) -> (loss, aux, grads)``, summing micro-batch gradients when K > 1
    (with a ``plan``, every micro-batch split over the data axis)."""
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
        if plan is not None:
            spec = NamedSharding(plan.mesh, PartitionSpec(None, plan.data_axis))
            micro_batches = jax.lax.with_sharding_constraint(micro_batches, spec)
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


def _all_finite(tree: Any) -> Array:
    """A bool scalar: every element of every leaf is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return functools.reduce(jnp.logical_and, leaves, jnp.asarray(True))


# -- many devices: the step compiled with a Plan's shardings ------------------------------------


def _sharded(
    step: Callable[[TrainState, Any], tuple[TrainState, dict[str, Any]]],
    plan: Plan,
    accumulate_steps: int,
    donate: bool,
    options: dict[str, Any] | None,
) -> TrainStep:
    """``step`` jit-compiled over ``plan.mesh``: the state in and out with the plan's
    shardings (``in_shardings``/``out_shardings``), the batch split over the data axis,
    metrics whole on every device. XLA inserts every collective (gradient all-reduce or
    reduce-scatter, params all-gather, the gathers of whole-array rules).

    The shardings depend on the state's shapes, so one compiled step is kept per state
    structure and shapes; checking them, the batch and the state's placement happens before
    the first step of each (clear errors instead of XLA's)."""
    compiled: dict[Any, Callable] = {}

    def jitted_for(state: TrainState, batch: Any) -> Any:
        leaves, treedef = jax.tree.flatten(state)
        key = (treedef, tuple((np.shape(x), getattr(x, "dtype", None)) for x in leaves))
        if key not in compiled:
            _check_padded(plan, state)
            shardings = plan.shardings(state)
            _check_placed(state, shardings)
            compiled[key] = shardings, jax.jit(
                step, in_shardings=(shardings, plan.batch),
                out_shardings=(shardings, plan.replicated),
                donate_argnums=(0,) if donate else (), compiler_options=options,
            )
        plan.check_batch(batch, accumulate_steps)
        return compiled[key]

    def call(state: TrainState, batch: Any) -> tuple[TrainState, dict[str, Any]]:
        shardings, jitted = jitted_for(state, batch)
        try:
            return jitted(state, batch)
        except ValueError as exc:  # jit's message for a misplaced input, made to name the leaf
            if "does not match the sharding" in str(exc):
                _check_placed(state, shardings)
            raise

    paced = _paced(call)
    # as jax.jit's: step.lower(state, batch).compile() for the HLO and its shardings
    paced.lower = lambda state, batch: jitted_for(state, batch)[1].lower(state, batch)
    return paced


#: how many calls of a sharded step may be unfinished when the next is dispatched. XLA's CPU
#: client starts each device's part of a multi-device program on its worker threads, where
#: the start waits while 32 programs are queued on that device; a host that runs 32 programs
#: ahead leaves every worker waiting there and none to finish them, and the process hangs
#: (tests/distributed/test_pacing.py). Two keep one step queued behind the running one.
IN_FLIGHT = 2


def _paced(fn: Callable[..., Any], depth: int = IN_FLIGHT) -> Callable[..., Any]:
    """``fn`` (a sharded step) waiting, before each call, until at most ``depth - 1`` of its
    earlier calls are unfinished: it keeps one array of each call's metrics (the last
    element of a tuple result, or the result: its ``"loss"``, else its first leaf) and blocks
    on the oldest. Calls under a transformation (tracers) are not counted."""
    pending: collections.deque = collections.deque()

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        while len(pending) >= depth:
            jax.block_until_ready(pending.popleft())
        out = fn(*args)
        metrics = out[-1] if isinstance(out, tuple) else out
        if isinstance(metrics, dict) and "loss" in metrics:
            metrics = metrics["loss"]  # a scalar: aux outputs may be large
        done = [x for x in jax.tree.leaves(metrics)
                if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer)]
        if done:
            pending.append(done[0])
        return out

    return call


def _constrain_to_update(plan: Plan, grads: Params, params: Params) -> tuple[Params, Params]:
    """Gradients and params constrained to the slices the optimizer updates (ZeRO: each
    device its 1/N; data parallel: whole): XLA reduces the gradients to those slices."""
    _, update = plan.param_layout(params)

    def constrain(tree: Params) -> Params:
        return jax.tree.map(
            lambda x, s: jax.lax.with_sharding_constraint(x, NamedSharding(plan.mesh, s)),
            tree, update)

    return constrain(grads), constrain(params)


def _check_padded(plan: Plan, state: TrainState) -> None:
    """A ValueError naming the first :class:`~fnlearn.flat.Flat` whose padding does not let
    its buffers split over the data axis (it would be kept whole on every device)."""
    flats = jax.tree_util.tree_leaves_with_path(state, is_leaf=is_flat)
    for path, leaf in flats:
        if is_flat(leaf) and leaf.layout.multiple % plan.flat_multiple:
            raise ValueError(
                f"state{jax.tree_util.keystr(path)} is a Flat padded to a multiple of "
                f"{leaf.layout.multiple}, but the plan's {plan.mode!r} slices it over "
                f"{plan.flat_multiple} devices: place the state with plan.put(state) before "
                "the first step (it pads every Flat to fit)"
            )


def _check_placed(state: TrainState, shardings: TrainState) -> None:
    """A ValueError naming the first leaf committed to another sharding than the plan's (JAX
    moves uncommitted arrays, e.g. a fresh ``TrainState.create``, to the plan's itself)."""
    paths = jax.tree_util.tree_leaves_with_path(state)
    for (path, leaf), want in zip(paths, jax.tree.leaves(shardings), strict=True):
        got = getattr(leaf, "sharding", None)
        if not getattr(leaf, "committed", False):
            continue
        if not got.is_equivalent_to(want, np.ndim(leaf)):
            raise ValueError(
                f"state{jax.tree_util.keystr(path)} is on {got}, not on the plan's {want}: "
                "place the state with plan.put(state) before the first step"
            )
