"""Shotfield's Blender add-on: preferences, the scene's job settings, the sidebar panels and the operators.

Blender code only; file formats come from `exporters` through `shared_formats`. Never imports torch,
OpenCV or pycolmap: the backend runs as its own process.
"""
from . import operators, panel, preferences, properties

# Registration order: what others point to first (the scene property group before the panels that
# draw it); unregistration in reverse.
_modules = (preferences, properties, operators, panel)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
