"""Build settings beyond pyproject.toml: the fused CPU kernels of ``fused=True`` as a native
library inside the package (``fnlearn/optim/_fused_kernels.<suffix>``), built at install time,
editable installs included.

The library is loaded with ctypes and registered as XLA FFI targets (it has no Python module
in it); ``fnlearn/optim/_fused_build.py`` is the one compiler driver, shared with
``python -m fnlearn.optim.build_fused``. A failed build (no C++ compiler) does not fail the
install: fused=True then warns once and runs the XLA rule until the command builds it.
"""

import importlib.util
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent


def _driver():
    """fnlearn/optim/_fused_build.py, loaded without importing fnlearn (not installed yet)."""
    spec = importlib.util.spec_from_file_location(
        "fnlearn_build_fused", HERE / "fnlearn" / "optim" / "_fused_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildFusedKernels(build_ext):
    def build_extension(self, ext):
        out = Path(self.get_ext_fullpath(ext.name))
        try:
            _driver().compile_library(out)
        except (RuntimeError, ImportError, OSError) as e:  # the install goes on without it
            self.warn(f"fnlearn: the fused CPU kernels were not built ({e}); fused=True will "
                      "run the XLA rule until `python -m fnlearn.optim.build_fused` builds them")


setup(
    ext_modules=[Extension("fnlearn.optim._fused_kernels", ["fnlearn/optim/_fused.cc"])],
    cmdclass={"build_ext": BuildFusedKernels},
)
