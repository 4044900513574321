"""Handwritten digits on a device mesh: one train step, many devices or processes.

The MLP of examples/digits.py trained with Adam on every device JAX sees, in the three
layouts of :class:`fnlearn.sharding.Plan` (data parallel, ZeRO-1 optimizer-state sharding,
FSDP), and once on one device. Every run sees the same global batches, so the sharded runs
end where the one-device run ends, to float32 round-off: the table shows the largest
difference in the final params. XLA does all the communication; there is none in this file.

4 simulated CPU devices in one process::

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python examples/data_parallel.py

2 processes on this machine, 2 simulated CPU devices each (gloo collectives over localhost;
``--processes`` only starts this script once per process with the coordinator's address)::

    python examples/data_parallel.py --processes 2

or by hand, one shell per process (``--process-id 1`` in the second)::

    XLA_FLAGS=--xla_force_host_platform_device_count=2 python examples/data_parallel.py \\
        --coordinator localhost:12355 --num-processes 2 --process-id 0

On a cluster, one process per host or GPU; ``jax.distributed.initialize()`` reads the
launcher's environment (SLURM, Open MPI, ...)::

    srun --ntasks=8 python examples/data_parallel.py --cluster     # or: mpirun -n 8 ...

Should a process die, the others stop with JAX's "another task died" error once its
heartbeats have been missing for ``--heartbeat`` seconds (jax.distributed's
``heartbeat_timeout_seconds``) instead of waiting in a collective for ever; restart every
process to resume from the last checkpoint (``fit(checkpoint_dir=...)``).

Sizes: a global batch of 32 (8 rows per device on 4 devices), 448 test images (a multiple of
every batch the data axis splits).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from digits import MLP  # the same model as examples/digits.py (this script's folder)
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fnlearn as fl

EPOCHS = 10
BATCH_SIZE = 32
TEST_SIZE = 448


def main(size: float = 1.0, seed: int = 0, progress: bool | None = None) -> dict[str, dict]:
    """Train for ``round(10 * size)`` epochs (at least 1) on one device and in each layout
    on a mesh of all devices; returns ``{layout: {train_loss, test_accuracy, time,
    max_param_diff}}`` (the same on every process; process 0 prints the table)."""
    epochs = max(1, round(EPOCHS * size))
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y.astype(np.int32), test_size=TEST_SIZE, random_state=seed, stratify=y
    )
    model = MLP()
    params = model.init(jax.random.key(seed), x_train[:1])["params"]

    def loss_fn(params, batch):
        x, y = batch
        return fl.losses.cross_entropy(model.apply({"params": params}, x), y)

    def loss_and_accuracy(params, batch):
        x, y = batch
        logits = model.apply({"params": params}, x)
        predicted = jnp.argmax(logits, axis=-1).astype(y.dtype)
        return fl.losses.cross_entropy(logits, y), jnp.mean(predicted == y)

    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    results, reference = {}, None
    for mode in ("one device", "data_parallel", "zero1", "fsdp"):
        plan = None if mode == "one device" else fl.sharding.Plan(mesh, mode)
        optimizer = fl.optim.adam(lr=1e-3)
        state = fl.train.TrainState.create(params, optimizer)
        if plan is not None:
            state = plan.put(state)
        start = time.perf_counter()
        state, history = fl.train.fit(
            fl.train.make_train_step(loss_fn, optimizer, sharding=plan),
            state,
            (x_train, y_train),
            epochs=epochs,
            batch_size=BATCH_SIZE,
            key=jax.random.key(seed),  # the same batches in every run
            drop_last=True,
            eval_step=fl.train.make_eval_step(loss_and_accuracy, has_aux=True, sharding=plan),
            val_data=(x_test, y_test),
            progress=progress,
            sharding=plan,
        )
        final = jax.tree.leaves(fl.sharding.gather(state.params))
        reference = final if reference is None else reference
        results[mode] = {
            "train_loss": history.epochs[-1]["train_loss"],
            "test_accuracy": history.epochs[-1]["val_aux"],
            "time": time.perf_counter() - start,
            "max_param_diff": max(float(np.max(np.abs(a - b)))
                                  for a, b in zip(final, reference, strict=True)),
        }

    if jax.process_index() == 0:
        print(f"digits on {jax.device_count()} devices in {jax.process_count()} process(es): "
              f"{len(x_train)} training / {len(x_test)} test images, {epochs} epochs, "
              f"global batch {BATCH_SIZE}")
        print(f"{'layout':<14} {'train loss':>10} {'test accuracy':>13} {'time (s)':>9} "
              f"{'max |params - one device|':>26}")
        for mode, r in results.items():
            print(f"{mode:<14} {r['train_loss']:>10.4f} {r['test_accuracy']:>13.4f} "
                  f"{r['time']:>9.2f} {r['max_param_diff']:>26.2e}")
    return results


def _launch_local(processes: int, argv: list[str]) -> int:
    """Start this script ``processes`` times on localhost, 2 simulated devices each."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    flags = os.environ.get("XLA_FLAGS", "")  # any XLA flags already set are kept
    env = {**os.environ, "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=2"}
    procs = [subprocess.Popen([sys.executable, __file__, *argv, "--coordinator",
                               f"localhost:{port}", "--num-processes", str(processes),
                               "--process-id", str(i)], env=env) for i in range(processes)]
    return max(abs(p.wait()) for p in procs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", nargs="?", type=float, default=1.0,
                        help="fraction of the epochs")
    parser.add_argument("--processes", type=int, help="start this many local processes")
    parser.add_argument("--coordinator", help="host:port of process 0")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--cluster", action="store_true",
                        help="jax.distributed.initialize() from the launcher's environment")
    parser.add_argument("--heartbeat", type=int, default=30,
                        help="seconds without a process's heartbeat before the others fail")
    args = parser.parse_args()
    if args.processes:
        sys.exit(_launch_local(args.processes, [str(args.size)]))
    if args.coordinator or args.cluster:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU across processes
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id,
                                   heartbeat_timeout_seconds=args.heartbeat)
    main(args.size, progress=False if jax.process_count() > 1 else None)
