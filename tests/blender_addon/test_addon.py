"""The add-on as Blender loads it: a real extension from this checkout, its panels, preferences and
scene settings, and a clean unregister."""
import ast
import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import blender_env
import bpy
import pytest

from .layout_recorder import RecordingLayout as FakeLayout

REPO_ROOT = Path(__file__).resolve().parents[2]
PANELS = {"SHOTFIELD_PT_clip_editor": "CLIP_EDITOR", "SHOTFIELD_PT_view3d": "VIEW_3D"}


def addon_classes(addon):
    """Every class the add-on registers (each of its modules lists them in `classes`)."""
    names = ("preferences", "properties", "operators_backend", "operators_run", "operators_import", "operators_log", "panel")
    return [cls for name in names for cls in sys.modules[f"{addon}.blender_addon.{name}"].classes]


class WithLayout:
    """Stands in for `self` in a draw method: `layout` is ours, everything else the real object's."""

    def __init__(self, obj, layout):
        self._obj, self.layout = obj, layout

    def __getattr__(self, name):
        return getattr(self._obj, name)


def test_enabled_as_extension(addon):
    assert addon == "bl_ext.shotfield_dev.shotfield"
    assert addon in bpy.context.preferences.addons
    # The add-on's modules live under the extension's package, so the relative `..exporters` was used.
    formats = sys.modules[f"{addon}.blender_addon.shared_formats"]
    assert formats.conventions.__name__ == f"{addon}.exporters.conventions"


def test_sidebar_panels_registered(addon):
    for idname, space in PANELS.items():
        panel = getattr(bpy.types, idname)
        assert panel.is_registered
        assert (panel.bl_space_type, panel.bl_region_type, panel.bl_category) == (space, "UI", "Shotfield")


def test_preferences(addon):
    prefs = bpy.context.preferences.addons[addon].preferences
    assert type(prefs).bl_idname == addon  # keyed by the extension's package, not a literal name
    venv_command = REPO_ROOT / ".venv" / "bin" / "shotfield"
    assert prefs.backend_command == (str(venv_command) if venv_command.is_file() else "shotfield")
    assert prefs.mode == "local"
    prefs.mode = "server"
    prefs.server_url = "http://render-box:8000"
    layout = FakeLayout()
    type(prefs).draw(WithLayout(prefs, layout), bpy.context)
    assert ("prop", "server_url") in layout.calls
    prefs.mode = "local"
    get_preferences = sys.modules[f"{addon}.blender_addon.preferences"].get_preferences
    assert get_preferences() == prefs


def test_job_dir_defaults_to_clip_name(scene, tmp_path):
    from PIL import Image

    job_dir_setting = sys.modules[f"{blender_env.addon_module_name()}.blender_addon.properties"].job_dir_setting
    assert scene.shotfield.job_dir == ""
    assert job_dir_setting(bpy.context) == "//shotfield/shot/"
    Image.new("RGB", (8, 6)).save(tmp_path / "00000.png")
    scene.active_clip = bpy.data.movieclips.load(str(tmp_path / "00000.png"))
    scene.active_clip.name = "plate A"
    assert job_dir_setting(bpy.context) == "//shotfield/plate_A/"
    scene.shotfield.job_dir = "/jobs/one/"
    assert job_dir_setting(bpy.context) == "/jobs/one/"


@pytest.mark.parametrize("idname", PANELS)
def test_panel_draws(scene, idname):
    panel = getattr(bpy.types, idname)
    assert panel.poll(bpy.context)
    layout = FakeLayout()
    panel.draw(SimpleNamespace(layout=layout), bpy.context)
    assert ("prop", "job_dir") in layout.calls
    assert ("operator", "shotfield.run") in layout.calls
    assert ("label", "Default: //shotfield/shot/") in layout.calls
    assert ("label", "Open the footage as a Movie Clip (Clip Editor > Open)") in layout.calls


def test_unregister_removes_everything(addon):
    classes = addon_classes(addon)
    assert len(classes) == 10 and all(cls.is_registered for cls in classes)
    blender_env.disable_addon()
    try:
        assert addon not in bpy.context.preferences.addons
        assert not [cls for cls in classes if cls.is_registered]
        assert not any(hasattr(bpy.types, name) for name in PANELS)
        assert not hasattr(bpy.types.Scene, "shotfield")
    finally:
        blender_env.enable_addon()  # the module fixture disables it again at the end
    # Enabling again in the same process works (removing the repository dropped its modules, so the
    # classes are new objects).
    assert all(cls.is_registered for cls in addon_classes(addon))


def test_top_level_import_uses_absolute_exporters():
    """Imported as the pip-installed package `blender_addon` (no extension around it), `..exporters`
    does not exist and shared_formats falls back to the top-level `exporters`. Nothing is registered."""
    formats = importlib.import_module("blender_addon.shared_formats")
    assert formats.cameras_json.__name__ == "exporters.cameras_json"
    assert importlib.import_module("blender_addon.preferences").ADDON_PACKAGE == "blender_addon"


FORBIDDEN = {"torch", "cv2", "pycolmap", "kornia", "open3d", "trimesh", "OpenEXR", "pyexr", "backend"}


def test_addon_never_imports_backend_libraries():
    """DESIGN.md: blender_addon needs nothing Blender does not ship; the backend runs as its own process.
    Checked on the source (lazy imports inside functions included), since this test process may well
    have torch loaded by other tests."""
    for path in sorted((REPO_ROOT / "blender_addon").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
