r"""torch.optim.lr_scheduler's schedulers as pure, jit-able functions of the step.

Every factory returns a :data:`~fnlearn._typing.Schedule`: a function ``count -> value`` that
accepts a Python int or an integer array (an ``int32`` tracer under ``jit``) and returns a
scalar of the default float dtype (float64 with ``jax_enable_x64``, else float32).

Convention (torch's, measured against torch 2.13): the k-th update, k = 0, 1, ..., uses
``schedule(k)``, which equals ``optimizer.param_groups[0]['lr']`` during the k-th
``optimizer.step()`` when ``scheduler.step()`` is called after each optimizer step. This is
also optax's ``count`` convention, so every schedule here is an optax schedule and every optax
schedule can be passed where fnlearn takes a schedule.

Names are the snake_case of torch's class names; the first argument is the base lr that torch
takes from the optimizer (``lr``), followed by torch's arguments with torch's defaults.
:func:`cyclic_lr` and :func:`one_cycle_lr` take torch's own ``base_lr`` / ``max_lr``; torch
also cycles the momentum (or Adam's ``beta1``) with them by default: :func:`cyclic_momentum`
and :func:`one_cycle_momentum` give those values, to pass as ``momentum=`` or
``betas=(schedule, beta2)`` to an fnlearn optimizer.

``ReduceLROnPlateau`` depends on a metric, not on the step: it is
:func:`fnlearn.optim.reduce_lr_on_plateau`.

Example::

    >>> import jax.numpy as jnp
    >>> from fnlearn import optim, schedules
    >>> sched = schedules.step_lr(0.1, step_size=2, gamma=0.5)
    >>> [round(float(sched(k)), 4) for k in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
    >>> opt = optim.sgd(lr=sched)   # the k-th update uses sched(k)
"""

from ._anneal import cosine_annealing_lr, cosine_annealing_warm_restarts, swa_lr
from ._compose import chained_scheduler, lambda_lr, multiplicative_lr, sequential_lr
from ._cyclic import cyclic_lr, cyclic_momentum, one_cycle_lr, one_cycle_momentum
from ._decay import (
    constant_lr,
    exponential_lr,
    linear_lr,
    multi_step_lr,
    polynomial_lr,
    step_lr,
)

__all__ = [
    "chained_scheduler",
    "constant_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "cyclic_lr",
    "cyclic_momentum",
    "exponential_lr",
    "lambda_lr",
    "linear_lr",
    "multi_step_lr",
    "multiplicative_lr",
    "one_cycle_lr",
    "one_cycle_momentum",
    "polynomial_lr",
    "sequential_lr",
    "step_lr",
    "swa_lr",
]
