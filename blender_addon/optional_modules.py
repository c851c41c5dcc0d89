"""Importing the modules of a package that exist, by name: the add-on's operators and importers are listed in
order, and a name without a module is a feature not built into this version (as with the backend's stages)."""
from __future__ import annotations

import importlib


def import_present(package: str, names) -> tuple:
    """The modules `package.<name>` for each name that has one, in order. Errors inside a module propagate."""
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(f"{package}.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{name}":
                raise
    return tuple(modules)
