"""A training process for tests/test_checkpoint.py to kill (SIGKILL) at a chosen moment.

    python tests/_checkpoint_child.py DIRECTORY POINT
    python tests/_checkpoint_child.py DIRECTORY loop EPOCHS

With a POINT: saves epochs 1 and 2 (keep=None), then epoch 3 with keep=1, whose retention
deletes 1 and 2, and kills itself at POINT of that last save, ``<event>-<n>`` (the n-th such
event of that save):

- ``before-manifest``: just before the manifest is renamed into place;
- ``before-rename`` / ``after-rename``: just before / after a step's rename out of the listed
  names;
- ``unlink``: just after a file of a renamed step is deleted;
- ``deleted``: just after a renamed step's directory is gone.

``none`` kills nowhere and prints how many files the retention deleted. Every epoch ``e``
saves ``{"w": arange(6.0) * e}`` (float32: no x64 here).

With ``loop``: saves epochs 1 to EPOCHS with keep=1, printing ``saved <e>`` after each, for a
parent that kills it at a random moment.
"""

import os
import signal
import sys
from collections import Counter

import jax.numpy as jnp

from fnlearn import checkpoint

RETIRED = ".fnlearn-deleting"


def _save(directory, epoch, keep):
    checkpoint.save(directory, {"w": jnp.arange(6.0) * epoch}, key=None, epoch=epoch, keep=keep)


def _arm(point):
    """Patch os so that the process kills itself at ``point``; returns the event counts."""
    event, _, n = point.rpartition("-")
    counts = Counter()
    rename, replace, unlink, rmdir = os.rename, os.replace, os.unlink, os.rmdir

    def hit(name):
        counts[name] += 1
        if name == event and counts[name] == int(n):
            os.kill(os.getpid(), signal.SIGKILL)

    def patched_rename(src, dst, *args, **kwargs):
        retiring = str(dst).endswith(RETIRED)
        if retiring:
            hit("before-rename")
        rename(src, dst, *args, **kwargs)
        if retiring:
            hit("after-rename")

    def patched_replace(src, dst, *args, **kwargs):
        if str(dst).endswith("fnlearn-files.json"):
            hit("before-manifest")
        replace(src, dst, *args, **kwargs)

    def patched_unlink(path, *args, **kwargs):
        unlink(path, *args, **kwargs)
        if counts["before-rename"]:  # shutil.rmtree passes names relative to a directory fd
            hit("unlink")

    def patched_rmdir(path, *args, **kwargs):
        rmdir(path, *args, **kwargs)
        if str(path).endswith(RETIRED):
            hit("deleted")

    os.rename, os.replace, os.unlink, os.rmdir = (
        patched_rename, patched_replace, patched_unlink, patched_rmdir)
    return counts


def main(directory, mode, *rest):
    if mode == "loop":
        for epoch in range(1, int(rest[0]) + 1):
            _save(directory, epoch, keep=1)
            print(f"saved {epoch}", flush=True)
        return
    _save(directory, 1, keep=None)
    _save(directory, 2, keep=None)
    counts = _arm("none-0" if mode == "none" else mode)
    _save(directory, 3, keep=1)
    print(f"unlinked {counts['unlink']}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
