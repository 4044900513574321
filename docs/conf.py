"""Sphinx configuration: build with ``sphinx-build -W -b html docs docs/_build/html``."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fnlearn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _api  # noqa: E402
from sphinx.ext.autodoc.mock import mock  # noqa: E402

project = "fnlearn"
author = "the fnlearn authors"
copyright = "2026, the fnlearn authors"
release = version = fnlearn.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "sphinx_design",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"

# MyST: ```{directive}``` and :::{directive}::: fences, $math$, heading anchors for the
# guides' [text](#section) links.
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath", "deflist"]
myst_heading_anchors = 3

# The API reference: one page per public module, written by autosummary from the module's
# ``__all__`` at build time (docs/api/_autosummary, not committed), so a name added to an
# ``__all__`` or a new public module appears without editing any page.
autosummary_generate = True
autosummary_ignore_module_all = False
# Modules that import torch (fnlearn.interop.torch, fnlearn.crosscheck's torch side) are
# documented without it: where torch is missing they are imported against a stand-in, here and
# in autodoc.
try:
    _has_torch = importlib.util.find_spec("torch") is not None
except (ImportError, ValueError):
    _has_torch = False
autodoc_mock_imports = [] if _has_torch else ["torch"]
with mock(autodoc_mock_imports):
    autosummary_context = {"api": _api.catalogue("fnlearn")}
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False

# Google-style docstrings (Args / Returns / Raises / References), plus the "Shape:" section
# the losses write as torch's docs do.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = [("Shape", "notes_style")]
napoleon_use_rtype = False

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "jax": ("https://docs.jax.dev/en/latest/", None),
    "optax": ("https://optax.readthedocs.io/en/latest/", None),
    "flax": ("https://flax.readthedocs.io/en/latest/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
    "orbax": ("https://orbax.readthedocs.io/en/latest/", None),
}
intersphinx_timeout = 10

html_theme = "sphinx_book_theme"
html_title = "fnlearn"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "home_page_in_toc": True,
}
html_static_path: list[str] = []


class _OfflineInventories(logging.Filter):
    """Without network the inventories of torch, optax, ... cannot be fetched; the pages still
    build (those cross-links render as plain text), so that one condition is reported as a
    notice instead of failing a ``-W`` build. Every other warning still fails it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "failed to reach any of the inventories" in str(record.msg):
            where = (record.getMessage().split("'")[1:2] or ["?"])[0]
            sys.stderr.write(f"intersphinx: {where} unreachable (offline?): links as text\n")
            return False
        return True


def _skip_namedtuple_fields(app, what, name, obj, skip, options):  # noqa: ANN001, ANN201
    """A NamedTuple's fields are described by its docstring's Attributes section; autodoc would
    list them a second time as "Alias for field number k"."""
    if what == "class" and (getattr(obj, "__doc__", None) or "").startswith("Alias for field"):
        return True
    return None


def setup(app):  # noqa: ANN001, ANN201
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    logging.getLogger("sphinx.sphinx.ext.intersphinx").addFilter(_OfflineInventories())
    return {"parallel_read_safe": True}
