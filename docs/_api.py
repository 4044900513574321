"""What the API reference documents of each module (used by docs/conf.py's autosummary
template): the names in the module's ``__all__``, or, where a module has none, the public names
it defines; and its public submodules. A name added to an ``__all__`` or a new public module
therefore appears in the reference without editing a page."""

from __future__ import annotations

import importlib
import inspect
import pkgutil


def _public(name: str) -> bool:
    return not name.startswith("_")


def api_members(fullname: str) -> list[tuple[str, str]]:
    """(name, kind) for every documented name of module ``fullname``; kind is ``'class'``,
    ``'function'`` or ``'data'``; submodules are left to :func:`api_submodules`."""
    module = importlib.import_module(fullname)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if _public(n)
                 and getattr(v, "__module__", None) == fullname]
    out = []
    for name in names:
        value = getattr(module, name)
        if inspect.ismodule(value):
            continue
        kind = ("class" if inspect.isclass(value) else
                "function" if inspect.isfunction(value) or inspect.isbuiltin(value) else "data")
        out.append((name, kind))
    return out


def api_submodules(fullname: str) -> list[str]:
    """The public submodules of package ``fullname`` (none for a plain module)."""
    module = importlib.import_module(fullname)
    if not hasattr(module, "__path__"):
        return []
    return sorted(f"{fullname}.{info.name}" for info in pkgutil.iter_modules(module.__path__)
                  if _public(info.name))


def catalogue(package: str) -> dict[str, dict[str, list]]:
    """``{module: {"members": api_members(module), "submodules": api_submodules(module)}}`` for
    ``package`` and every public module under it (plain data: Sphinx caches its config)."""
    out: dict[str, dict[str, list]] = {}
    todo = [package]
    while todo:
        name = todo.pop()
        subs = api_submodules(name)
        out[name] = {"members": api_members(name), "submodules": subs}
        todo += subs
    return out
