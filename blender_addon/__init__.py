"""Shotfield's Blender add-on: preferences, the scene's job settings, the sidebar panels, the operators and the
monitor that follows running jobs.

Blender code only; file formats come from `exporters` through `shared_formats` (and `formats/`). Never
imports torch, OpenCV or pycolmap: the backend runs as its own process (`jobs.py`) or on a server
(`remote_jobs.py`).
"""
from .optional_modules import import_present

# Registration order: what others point to first (the scene property group before the panels that
# draw it); unregistration in reverse (the monitor stops running jobs before the operators go).
# Output-specific operators (picking points to track, marking what to remove) have their own modules;
# a name without a module is a feature not built into this version.
_MODULE_NAMES = ("preferences", "properties", "operators_backend", "operators_run", "operators_import",
                 "operators_log", "operators_tracks", "operators_remove", "panel", "monitor")

_modules = import_present(__name__, _MODULE_NAMES)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
