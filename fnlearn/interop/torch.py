"""Carry a running PyTorch training job into fnlearn and back.

Weights (:func:`params_from_torch`, :func:`params_to_torch`, and :func:`flax_layout` for flax
modules), optimizer state (:func:`optimizer_from_torch`, :func:`optimizer_to_torch`), lr
schedulers (:func:`schedule_from_torch`, :func:`schedule_to_torch`) and whole checkpoints
(:func:`load_torch_checkpoint`, :func:`save_torch_checkpoint`, and the command below). torch is
imported only when a function here needs it; ``import fnlearn`` never imports it.

Command (also installed as ``fnlearn-torch-convert``)::

    python -m fnlearn.interop.torch CKPT.pt OUT_DIR [--epoch N] [--model-key model]
        [--optimizer-key optimizer] [--scheduler-key scheduler] [--optimizer Adam]
        [--scheduler StepLR] [--steps-per-epoch K]

writes an fnlearn checkpoint directory (:func:`fnlearn.checkpoint.save`) and a
``torch-conversion.json`` beside it; :func:`restore_converted` gives back the ``TrainState``,
the optimizer (with its schedule) and the epoch for ``fit(..., start_epoch=epoch)``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._checkpoint import (
    Converted,
    TorchCheckpoint,
    UnsafeCheckpointError,
    convert,
    load_torch_checkpoint,
    read_torch_file,
    restore_converted,
    save_torch_checkpoint,
)
from ._flax import FlaxLayout, flax_layout
from ._optim import (
    OptimizerSpec,
    guess_class,
    optimizer_from_torch,
    optimizer_to_torch,
)
from ._params import TorchWeights, params_from_torch, params_to_torch
from ._schedules import TorchSchedule, guess_scheduler, schedule_from_torch, schedule_to_torch

__all__ = [
    "Converted",
    "FlaxLayout",
    "OptimizerSpec",
    "TorchCheckpoint",
    "TorchSchedule",
    "TorchWeights",
    "UnsafeCheckpointError",
    "convert",
    "flax_layout",
    "guess_class",
    "guess_scheduler",
    "load_torch_checkpoint",
    "main",
    "optimizer_from_torch",
    "optimizer_to_torch",
    "params_from_torch",
    "params_to_torch",
    "read_torch_file",
    "restore_converted",
    "save_torch_checkpoint",
    "schedule_from_torch",
    "schedule_to_torch",
]


def main(argv: Sequence[str] | None = None) -> int:
    """The converter command: a torch checkpoint file -> an fnlearn checkpoint directory."""
    p = argparse.ArgumentParser(
        prog="python -m fnlearn.interop.torch",
        description="Convert a torch.save checkpoint (model/optimizer/scheduler state dicts) "
                    "into an fnlearn checkpoint directory that fit(..., start_epoch=...) resumes "
                    "(read back with fnlearn.interop.torch.restore_converted). The file is "
                    "read with torch.load(weights_only=True): a pickle that needs code is "
                    "refused.")
    p.add_argument("checkpoint", help="the torch checkpoint file")
    p.add_argument("out", help="the fnlearn checkpoint directory to write")
    p.add_argument("--epoch", type=int, default=None,
                   help="epochs completed (default: the file's --epoch-key entry)")
    p.add_argument("--epoch-key", default="epoch")
    p.add_argument("--model-key", default="model")
    p.add_argument("--optimizer-key", default="optimizer")
    p.add_argument("--scheduler-key", default="scheduler")
    p.add_argument("--optimizer", default=None, help="torch optimizer class, e.g. AdamW")
    p.add_argument("--scheduler", default=None, help="torch scheduler class, e.g. StepLR")
    p.add_argument("--steps-per-epoch", type=int, default=1,
                   help="optimizer steps per scheduler.step() (default 1)")
    p.add_argument("--x64", action="store_true", help="enable float64 in JAX (float64 models)")
    args = p.parse_args(argv)
    if args.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    try:
        out = convert(args.checkpoint, args.out, epoch=args.epoch, epoch_key=args.epoch_key,
                      model_key=args.model_key, optimizer_key=args.optimizer_key,
                      scheduler_key=args.scheduler_key, optimizer=args.optimizer,
                      scheduler=args.scheduler, steps_per_epoch=args.steps_per_epoch)
    except (UnsafeCheckpointError, KeyError, ValueError, FileNotFoundError,
            FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
