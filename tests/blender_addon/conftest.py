"""Fixtures for the add-on tests: Blender runs headless in this process (bpy as a module).

The add-on is enabled as a real extension from this checkout (scripts/blender_env.py), once per test
module, and disabled again afterwards: a process that registered classes and did not unregister them
never exits.
"""
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
for path in (REPO_ROOT, REPO_ROOT / "scripts"):  # `exporters`, and the scripts' `blender_env`
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import blender_env  # noqa: E402

# Before the first `import bpy` of this process: tests never touch ~/.config/blender.
blender_env.use_temp_user_resources()
bpy = pytest.importorskip("bpy")


@pytest.fixture(scope="module")
def addon():
    """The enabled add-on's module name, e.g. "bl_ext.shotfield_dev.shotfield"."""
    blender_env.reset_scene()
    with blender_env.addon_enabled() as module_name:
        yield module_name
    blender_env.reset_scene()


@pytest.fixture
def scene(addon):
    """An empty factory scene with the add-on enabled (preferences, and so the add-on, are kept)."""
    blender_env.reset_scene()
    return bpy.context.scene
