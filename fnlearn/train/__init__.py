"""Training: a train state pytree, a jit-compiled train step, an eval step, and ``fit``.

The PyTorch loop::

    for x, y in loader:
        loss = loss_function(net(x), y)
        loss.backward(); optimizer.step(); optimizer.zero_grad()

becomes, with the optimizer and the loss closed over by one compiled function::

    step = make_train_step(loss_fn, fl.optim.sgd(lr=0.1, momentum=0.9))
    state = TrainState.create(params, optimizer)
    for batch in iterate_batches(data, batch_size=32):
        state, metrics = step(state, batch)

There is no ``zero_grad``: gradients are values, not buffers that accumulate.

One module per job: ``_state`` (:class:`TrainState`), ``_step`` (:func:`make_train_step`,
:func:`make_eval_step`), ``_loop`` (:func:`fit`, :func:`evaluate`, :class:`History`) and
``_plot`` (:func:`plot_histories`, the only user of matplotlib).
"""

from ._loop import History, evaluate, fit
from ._plot import plot_histories
from ._state import TrainState
from ._step import EvalStep, LossFn, TrainStep, make_eval_step, make_train_step

__all__ = [
    "EvalStep",
    "History",
    "LossFn",
    "TrainState",
    "TrainStep",
    "evaluate",
    "fit",
    "make_eval_step",
    "make_train_step",
    "plot_histories",
]
