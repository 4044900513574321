"""``import fnlearn`` (and importing fnlearn.interop.torch) never imports torch."""

import subprocess
import sys


def test_import_does_not_import_torch():
    code = ("import sys, fnlearn, fnlearn.interop, fnlearn.interop.torch; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)
