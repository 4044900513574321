"""Sharded steps dispatched far ahead of the devices finish (fnlearn.train._step._paced).

XLA's CPU client starts each device's part of a multi-device program on its worker threads,
and a start waits while 32 programs are queued on that device: a loop that dispatches more
than that without waiting leaves every worker waiting, and the process hangs (silently, with
gloo across processes). So the sharded train and eval steps wait for the call before the
last one.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp

from fnlearn.train import _step
from tests import _processes, _xla

#: 200 data-parallel steps (and a 40-batch evaluation) on 2 devices with no wait in the loop;
#: each step's 512 x 512 matmul keeps the devices behind the host (without pacing this hangs
#: here within the first 40 steps)
_FAR_AHEAD = """
import jax, jax.numpy as jnp
import fnlearn as fl
mesh = jax.make_mesh((2,), ("data",))
plan = fl.sharding.Plan(mesh, "data_parallel")
loss_fn = lambda p, b: jnp.mean((b @ p["w"]) ** 2)
opt = fl.optim.sgd(1e-3)
state = plan.put(fl.train.TrainState.create({"w": jnp.full((512, 512), 0.01)}, opt))
step = fl.train.make_train_step(loss_fn, opt, sharding=plan)
batch = jax.device_put(jnp.ones((64, 512)), plan.batch)
losses = []
for _ in range(200):
    state, metrics = step(state, batch)
    losses.append(metrics["loss"])
jax.block_until_ready(losses)
evaluated = fl.train.evaluate(fl.train.make_eval_step(loss_fn, sharding=plan), state.params,
                              jnp.ones((40 * 64, 512)), 64, sharding=plan)
print("finished", len(losses), evaluated["loss"] > 0)
"""


def test_sharded_steps_dispatched_far_ahead_finish():
    result = _processes.run([sys.executable, "-c", _FAR_AHEAD], env=_xla.env(devices=2),
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["finished", "200", "True"]


def test_paced_waits_for_the_call_before_the_last(monkeypatch):
    waited = []
    monkeypatch.setattr(_step.jax, "block_until_ready", waited.append)
    calls = []

    def fn(i):
        calls.append(i)
        return None, {"aux": jnp.zeros(3), "loss": jnp.asarray(float(i))}

    paced = _step._paced(fn, depth=2)
    for i in range(5):
        paced(i)
    assert calls == [0, 1, 2, 3, 4]
    # call i waits for call i - 2's loss: at most two unfinished calls at any time
    assert [float(x) for x in waited] == [0.0, 1.0, 2.0]


def test_paced_ignores_calls_under_a_transformation():
    paced = _step._paced(lambda x: {"loss": x * 2.0}, depth=1)
    assert float(jax.jit(paced)(jnp.asarray(1.0))["loss"]) == 2.0
    assert float(paced(jnp.asarray(2.0))["loss"]) == 4.0  # nothing pending from the traced call
