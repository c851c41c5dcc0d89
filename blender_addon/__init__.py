"""Shotfield's Blender add-on: preferences, the scene's job settings, the sidebar panels, the operators and the
monitor that follows running jobs.

Blender code only; file formats come from `exporters` through `shared_formats` (and `formats/`). Never
imports torch, OpenCV or pycolmap: the backend runs as its own process (`jobs.py`) or on a server
(`remote_jobs.py`).
"""
import importlib

# Registration order: what others point to first (the scene property group before the panels that
# draw it); unregistration in reverse (the monitor stops running jobs before the operators go).
# Output-specific operators (picking points to track, marking what to remove) have their own modules;
# a name without a module is a feature not built into this version.
_MODULE_NAMES = ("preferences", "properties", "operators_backend", "operators_run", "operators_import",
                 "operators_log", "operators_tracks", "operators_remove", "panel", "monitor")


def _load_modules() -> tuple:
    modules = []
    for name in _MODULE_NAMES:
        try:
            modules.append(importlib.import_module(f"{__name__}.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    return tuple(modules)


_modules = _load_modules()


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
