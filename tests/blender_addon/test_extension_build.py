"""The extension as users get it: scripts/build_extension.py builds the zip with Blender's own tool (the manifest
validates), the zip holds the add-on and the numpy-only exporters but none of the backend, tests or scripts,
no torch and no pip; and the zip installs and enables from file in a clean Blender, its panels and operators
register, it imports a job (twice, without duplicates), and it unregisters cleanly."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import bpy
import pytest

REPO = Path(__file__).resolve().parents[2]
BLENDER_EXT = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
_spec = importlib.util.spec_from_file_location("build_extension", REPO / "scripts" / "build_extension.py")
build_extension = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_extension)


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ext")
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "--out-dir", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    zips = list(out.glob("shotfield-*.zip"))
    assert len(zips) == 1 and str(zips[0]) in r.stdout
    return zips[0]


def test_manifest_validates_with_blenders_own_tool():
    r = subprocess.run([sys.executable, str(BLENDER_EXT), "validate", str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr


def test_build_script_uses_the_bpy_modules_tool_without_a_blender_binary(monkeypatch):
    monkeypatch.setattr(build_extension.shutil, "which", lambda name: None)
    tool = build_extension.blender_ext_tool(None)
    assert tool[0] == sys.executable and Path(tool[1]).resolve() == BLENDER_EXT.resolve()
    assert build_extension.blender_ext_tool("/opt/blender/blender")[:1] == ["/opt/blender/blender"]


def test_zip_holds_the_addon_and_the_exporters_only(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops <= {"__init__.py", "blender_manifest.toml", "blender_addon", "exporters", "README.md"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {"exporters/cameras_json.py", "blender_addon/importers/camera.py", "blender_addon/importers/points.py",
            "blender_addon/jobs.py", "exporters/ply.py"} <= set(names)
    assert build_extension.check_zip(built_zip) == []


def test_zip_checks_catch_torch_and_pip(tmp_path, built_zip):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(built_zip) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr("blender_addon/sneaky.py", "import torch\nimport subprocess\nsubprocess.run(['pip', 'install', 'x'])\n")
        dst.writestr("backend/cli.py", "")
    problems = build_extension.check_zip(bad)
    assert any("imports torch" in p for p in problems) and any("pip" in p for p in problems)
    assert any("backend/" in p for p in problems)


def test_zip_installs_enables_imports_and_unregisters_in_a_clean_blender(built_zip, tmp_path):
    # A separate process: installing into user_default must not disturb the add-on the other tests enabled.
    from .test_importers import make_job

    job = make_job(tmp_path / "zip_shot")
    script = textwrap.dedent(f"""
        import bpy, addon_utils
        bpy.ops.extensions.package_install_files(repo="user_default", filepath={str(built_zip)!r}, enable_on_install=True)
        module = "bl_ext.user_default.shotfield"
        assert module in {{m.__name__ for m in addon_utils.modules()}}, "not installed"
        assert addon_utils.check(module)[1], "not enabled"
        panels = [bpy.types.SHOTFIELD_PT_clip_editor, bpy.types.SHOTFIELD_PT_view3d]
        assert all(p.is_registered for p in panels), "panels not registered"
        for op in ("run", "cancel", "reattach", "import_job", "open_log", "check_backend"):
            getattr(bpy.ops.shotfield, op).get_rna_type()
        bpy.ops.shotfield.import_job(directory={str(job)!r})
        count = len(bpy.data.objects)
        bpy.ops.shotfield.import_job(directory={str(job)!r})
        assert len(bpy.data.objects) == count, "re-import duplicated objects"
        assert len(bpy.data.collections["zip_shot"].objects) == 3
        addon_utils.disable(module)
        assert not any(p.is_registered for p in panels), "panels still registered"
        assert not hasattr(bpy.types.Scene, "shotfield")
        assert not hasattr(bpy.types, "SHOTFIELD_OT_run")
        print("INSTALLED-OK")
    """)
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "user")}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert "INSTALLED-OK" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.returncode == 0
