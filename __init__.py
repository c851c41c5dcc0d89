"""Blender extension entry point: Blender loads the repository root as the package bl_ext.<repo>.shotfield.

Everything lives in `blender_addon`; this file only hands over to it.
"""
from .blender_addon import register, unregister  # noqa: F401
