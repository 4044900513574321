"""What the API reference documents of each module (read by the autosummary template
docs/_templates/autosummary/module.rst): the names in the module's ``__all__``, or, where a
module has none, the public names it defines, grouped by the private module that defines them;
and its public submodules. A name added to an ``__all__`` or a new public module
therefore appears in the reference without editing a page."""

from __future__ import annotations

import importlib
import inspect
import pkgutil


def _public(name: str) -> bool:
    return not name.startswith("_")


def _defined_under(origin: object, fullname: str) -> bool:
    return isinstance(origin, str) and (origin == fullname or origin.startswith(fullname + "."))


def api_members(fullname: str) -> list[tuple[str, str]]:
    """(name, kind) for every documented name of module ``fullname``; kind is ``'class'``,
    ``'function'`` or ``'data'``; submodules are left to :func:`api_submodules`."""
    module = importlib.import_module(fullname)
    names = getattr(module, "__all__", None)
    if names is None:  # the public names defined in the module (or, for a package, under it),
        # and its aliases documented with a ``#:`` comment
        from sphinx.pycode import ModuleAnalyzer

        commented = {n for (scope, n) in ModuleAnalyzer.for_module(fullname).find_attr_docs()
                     if not scope}
        names = [n for n, v in vars(module).items() if _public(n) and not inspect.ismodule(v)
                 and (n in commented or _defined_under(getattr(v, "__module__", None), fullname))]
    out = []
    for name in names:
        value = getattr(module, name)
        if inspect.ismodule(value):
            continue
        kind = ("class" if inspect.isclass(value) else
                "function" if inspect.isfunction(value) or inspect.isbuiltin(value) else "data")
        out.append((name, kind))
    return out


def api_groups(fullname: str) -> list[dict]:
    """The members of ``fullname`` grouped by the private module that defines them (e.g.
    ``fnlearn.optim._adam`` for ``adam``, ``adamw`` and ``AdamState``), in order of first
    appearance: such a module's docstring states the algorithm its names share, so the
    reference shows it as a section (titled by its first line, up to a colon) above them.
    Names defined elsewhere come first, untitled."""
    module = importlib.import_module(fullname)
    groups: list[dict] = [{"module": None, "title": None, "members": []}]
    for name, kind in api_members(fullname):
        origin = getattr(getattr(module, name), "__module__", None)
        source = importlib.import_module(origin) if isinstance(origin, str) and \
            origin.startswith(fullname + "._") else None
        doc = inspect.getdoc(source) if source is not None else None
        key = origin if doc else None
        found = [g for g in groups if g["module"] == key]
        if found:
            found[0]["members"].append((name, kind))
        else:
            title = doc.splitlines()[0].split(": ")[0].rstrip(".") if doc else None
            groups.append({"module": key, "title": title, "members": [(name, kind)]})
    return [g for g in groups if g["members"]]


def api_submodules(fullname: str) -> list[str]:
    """The public submodules of package ``fullname`` (none for a plain module)."""
    module = importlib.import_module(fullname)
    if not hasattr(module, "__path__"):
        return []
    return sorted(f"{fullname}.{info.name}" for info in pkgutil.iter_modules(module.__path__)
                  if _public(info.name))


def catalogue(package: str) -> dict[str, dict[str, list]]:
    """``{module: {"members": ..., "groups": ..., "submodules": ...}}`` (the three functions
    above) for ``package`` and every public module under it; plain data, as Sphinx caches its
    configuration."""
    out: dict[str, dict[str, list]] = {}
    todo = [package]
    while todo:
        name = todo.pop()
        subs = api_submodules(name)
        out[name] = {"members": api_members(name), "groups": api_groups(name),
                     "submodules": subs}
        todo += subs
    return out
