"""One process of a 2-process x 2-device training run on localhost (jax.distributed, gloo).

Run by tests/distributed/test_multiprocess.py, once per process::

    XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
        python -m tests.distributed._process PORT PROCESS_ID DIRECTORY [DIE_AT]

Trains the digits-sized MLP of ``model()`` with ``fit`` on a ZeRO-1 plan over the 4 devices
of both processes, 3 epochs, a checkpoint per epoch in ``DIRECTORY/ckpt``, validation every
epoch; resumes from the latest checkpoint there if any. Process 0 writes the final state
(gathered) and the history to ``DIRECTORY/result.npz`` / ``history.json``. With ``DIE_AT``,
process 1 exits abruptly (``os._exit``) at that train-step call of this run, while process 0
waits in the step's collectives.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checkpoint, optim, sharding, train

EPOCHS, BATCH = 3, 16
#: how long a surviving process waits for a dead one before failing (jax.distributed)
HEARTBEAT_S = 5


def model():
    """A small MLP on random 'digits' (64 features, 10 classes), its data and optimizer."""
    k = jax.random.split(jax.random.key(0), 4)
    params = {"w1": 0.1 * jax.random.normal(k[0], (64, 32)), "b1": jnp.zeros(32),
              "w2": 0.1 * jax.random.normal(k[1], (32, 10)), "b2": jnp.zeros(10)}
    x = jax.random.normal(k[2], (96, 64))
    y = jax.random.randint(k[3], (96,), 0, 10)

    def loss_fn(p, batch):
        xb, yb = batch
        h = jnp.tanh(xb @ p["w1"] + p["b1"][None])
        logits = h @ p["w2"] + p["b2"][None]
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    return params, (x[:64], y[:64]), (x[64:], y[64:]), loss_fn, optim.adam(1e-2, fused=True)


def main(port: int, process_id: int, directory: Path, die_at: int | None) -> None:
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across
    jax.distributed.initialize(
        coordinator_address=f"localhost:{port}", num_processes=2, process_id=process_id,
        initialization_timeout=60, heartbeat_timeout_seconds=HEARTBEAT_S,
        shutdown_timeout_seconds=10,
    )
    params, data, val, loss_fn, opt = model()
    mesh = jax.make_mesh((4,), ("data",))
    plan = sharding.Plan(mesh, "zero1")
    state = plan.put(train.TrainState.create(params, opt))
    key, start = jax.random.key(7), 0
    ckpt = directory / "ckpt"
    if checkpoint.available(ckpt):
        state, key, start = checkpoint.restore(ckpt, like=state)
    step = train.make_train_step(loss_fn, opt, sharding=plan)
    calls = 0

    def dying_step(state, batch):
        nonlocal calls
        calls += 1
        if die_at is not None and process_id == 1 and calls == die_at:
            print("process 1 dies now", flush=True)
            os._exit(3)
        return step(state, batch)

    state, history = train.fit(
        dying_step, state, data, epochs=EPOCHS, batch_size=BATCH, key=key, start_epoch=start,
        eval_step=train.make_eval_step(loss_fn, sharding=plan), val_data=val,
        checkpoint_dir=ckpt, keep=2, sharding=plan, progress=False,
    )
    whole = jax.tree.leaves(sharding.gather(state))
    if process_id == 0:
        np.savez(directory / "result.npz", *whole)
        (directory / "history.json").write_text(json.dumps(
            {"loss": history.loss, "epochs": history.epochs, "start": start}))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]),
         int(sys.argv[4]) if len(sys.argv) > 4 else None)
