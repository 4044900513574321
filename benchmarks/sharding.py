"""The sharded train step's communication, memory and time, read from the compiled step.

    python benchmarks/sharding.py [--devices 4] [--width 512] [--depth 4] [--batch 64]

An MLP (``depth`` square ``width`` layers, Adam) on a 1-D ``data`` mesh of ``devices``
simulated CPU devices (the script sets ``XLA_FLAGS=--xla_force_host_platform_device_count``
before JAX starts, unless XLA_FLAGS already names a device count; on a GPU machine it uses
the GPUs there), in each layout of :class:`fnlearn.sharding.Plan`. For each:

- communication: every collective in the compiled HLO (all-reduce, reduce-scatter,
  all-gather, all-to-all, collective-permute) with its per-device operand bytes, and the bytes
  each device sends on a ring (all-reduce ``2(N-1)/N`` of its operand, reduce-scatter
  ``(N-1)/N``, all-gather ``N-1`` times its shard, all-to-all ``(N-1)/N``), against the ideal
  for the layout with ``P`` the params' bytes: data parallel one all-reduce of the gradients
  (``2(N-1)/N P``); ZeRO-1 a reduce-scatter of the gradients and an all-gather of the params
  (the same ``2(N-1)/N P``); FSDP an all-gather of the params and a reduce-scatter of the
  gradients (``2(N-1)/N P``, more where XLA gathers the params again for the backward pass).
- memory per device: the state's bytes on one device (from the arrays' addressable shards)
  against the ideal (params + Adam's two buffers ``3P``: data parallel ``3P``, ZeRO-1
  ``P + 2P/N``, FSDP ``3P/N``), and the compiled step's footprint by XLA's memory analysis
  (arguments + outputs - aliased + temporaries) against the one-device step's.
- time: the median of the sharded step against the one-device step on the same global
  batch. On simulated CPU devices (threads of one process sharing the machine's cores) this
  is a report, not a promise of speed-up.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

if __name__ == "__main__":  # the device count is read when JAX starts
    _devices = next((int(a.split("=")[1]) for a in sys.argv if a.startswith("--devices=")),
                    int(sys.argv[sys.argv.index("--devices") + 1])
                    if "--devices" in sys.argv else 4)
    _flags = os.environ.get("XLA_FLAGS", "")  # a device count already set wins
    if "--xla_force_host_platform_device_count" not in _flags:
        os.environ["XLA_FLAGS"] = f"{_flags} --xla_force_host_platform_device_count={_devices}"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import median_ms, write  # noqa: E402

from fnlearn import optim, sharding, train  # noqa: E402

COLLECTIVES = ("all-reduce", "reduce-scatter", "all-gather", "all-to-all",
               "collective-permute")
_OP = re.compile(r"=\s*(\(.*?\)|\S+)\s+(" + "|".join(COLLECTIVES) + r")(?:-start)?\(")
_SHAPE = re.compile(r"\b(pred|[a-z]+\d+)\[([\d,]*)\]")
_BYTES = {"pred": 1}


def shape_bytes(text: str) -> int:
    """Total bytes of the array shapes written in ``text`` (``f32[16,4]``, tuples too)."""
    total = 0
    for dtype, dims in _SHAPE.findall(text):
        size = int(np.prod([int(d) for d in dims.split(",") if d])) if dims else 1
        total += size * _BYTES.get(dtype, int(re.sub(r"\D", "", dtype) or 8) // 8)
    return total


def collectives(hlo: str, n: int) -> dict[str, dict[str, int]]:
    """``{kind: {count, operand_bytes, ring_bytes}}`` of the compiled HLO's collectives.

    The operand of an all-gather is the shard (its result is ``N`` shards), of a
    reduce-scatter the whole (its result is one shard), so operand bytes are derived from the
    result shape: all-gather result / N, reduce-scatter result x N, others the result."""
    out: dict[str, dict[str, int]] = {}
    for line in hlo.splitlines():
        m = _OP.search(line)
        if m is None or "-done" in line:
            continue
        result, kind = shape_bytes(m.group(1)), m.group(2)
        operand = {"all-gather": result // n, "reduce-scatter": result * n}.get(kind, result)
        ring = {"all-reduce": 2 * (n - 1) * operand / n, "reduce-scatter": (n - 1) * operand / n,
                "all-gather": (n - 1) * operand, "all-to-all": (n - 1) * operand / n,
                "collective-permute": operand}[kind]
        row = out.setdefault(kind, {"count": 0, "operand_bytes": 0, "ring_bytes": 0})
        row["count"] += 1
        row["operand_bytes"] += operand
        row["ring_bytes"] += int(ring)
    return out


def model(width: int, depth: int, batch: int):
    keys = jax.random.split(jax.random.key(0), depth + 2)
    params = {f"w{i}": jax.random.normal(keys[i], (width, width), jnp.float32) / np.sqrt(width)
              for i in range(depth)}
    x = jax.random.normal(keys[-2], (batch, width), jnp.float32)
    y = jax.random.normal(keys[-1], (batch, width), jnp.float32)

    def loss_fn(p, b):
        h = b[0]
        for i in range(depth):
            h = jnp.tanh(h @ p[f"w{i}"])
        return jnp.mean((h - b[1]) ** 2)

    return params, (x, y), loss_fn


def footprint(compiled) -> int:
    m = compiled.memory_analysis()
    return (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
            + m.temp_size_in_bytes)


def timed(step, state, batch, reps: int) -> float:
    holder = [state]

    def once():
        holder[0], metrics = step(holder[0], batch)
        metrics["loss"].block_until_ready()

    return median_ms(once, reps)


def main(width: int = 512, depth: int = 4, batch: int = 64, reps: int = 20) -> list[dict]:
    params, data, loss_fn = model(width, depth, batch)
    n = jax.device_count()
    mesh = jax.make_mesh((n,), ("data",))
    p_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
    one_opt = optim.adam(1e-3)
    one_step = train.make_train_step(loss_fn, one_opt)
    one_state = train.TrainState.create(params, one_opt)
    one_footprint = footprint(one_step.lower(one_state, data).compile())
    one_ms = timed(one_step, one_state, data, reps)
    ideal_state = {"data_parallel": 3 * p_bytes, "zero1": p_bytes + 2 * p_bytes // n,
                   "fsdp": 3 * p_bytes // n}
    rows = []
    for mode in sharding.MODES:
        plan = sharding.Plan(mesh, mode)
        opt = optim.adam(1e-3)
        state = plan.put(train.TrainState.create(params, opt))
        step = train.make_train_step(loss_fn, opt, sharding=plan)
        batch_on_mesh = jax.device_put(data, plan.batch)
        compiled = step.lower(state, batch_on_mesh).compile()
        comm = collectives(compiled.as_text(), n)
        arrays = [x for x in jax.tree.leaves((state.params, state.opt_state)) if x.ndim]
        state_bytes = sum(x.addressable_shards[0].data.nbytes for x in arrays)
        ring = sum(c["ring_bytes"] for c in comm.values())
        rows.append({
            "mode": mode, "devices": n, "params_MB": p_bytes / 1e6,
            "collectives": ", ".join(f"{k} x{c['count']}: {c['operand_bytes'] / 1e6:.3g} MB"
                                     for k, c in sorted(comm.items())),
            "ring_MB": ring / 1e6, "ideal_ring_MB": 2 * (n - 1) * p_bytes / n / 1e6,
            "state_MB_per_device": state_bytes / 1e6,
            "ideal_state_MB": ideal_state[mode] / 1e6,
            "step_MB_per_device": footprint(compiled) / 1e6,
            "one_device_step_MB": one_footprint / 1e6,
            "ms": timed(step, state, batch_on_mesh, reps), "one_device_ms": one_ms,
            "detail": comm,
        })
    header = ["mode", "devices", "params_MB", "collectives", "ring_MB", "ideal_ring_MB",
              "state_MB_per_device", "ideal_state_MB", "step_MB_per_device",
              "one_device_step_MB", "ms", "one_device_ms"]
    write("sharding", rows, header, {"width": width, "depth": depth, "batch": batch,
                                     "backend": jax.default_backend()})
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    main(args.width, args.depth, args.batch, args.reps)
