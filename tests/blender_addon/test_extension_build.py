"""The extension as Blender builds and installs it: the manifest validates, the zip holds the add-on and the
numpy-only exporters but none of the backend, tests or scripts, and the zip installs and enables."""
from __future__ import annotations

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


def _blender_ext(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BLENDER_EXT), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ext") / "shotfield.zip"
    r = _blender_ext("build", "--source-dir", str(REPO), "--output-filepath", str(out))
    assert r.returncode == 0 and out.is_file(), r.stdout + r.stderr
    return out


def test_manifest_validates_with_blenders_own_tool():
    r = _blender_ext("validate", str(REPO))
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr


def test_zip_holds_the_addon_and_the_exporters_only(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {"__init__.py", "blender_manifest.toml", "blender_addon", "exporters"} <= tops
    for excluded in ("backend", "tests", "scripts", ".ci", ".venv", "pyproject.toml", "benchmark_results", "demo"):
        assert excluded not in tops, excluded
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "exporters/cameras_json.py" in names and "blender_addon/importers/camera.py" in names


def test_zip_installs_and_enables_in_a_clean_blender(built_zip, tmp_path):
    # A separate process: installing into user_default must not disturb the add-on the other tests enabled.
    script = textwrap.dedent(f"""
        import bpy, addon_utils
        bpy.ops.extensions.package_install_files(repo="user_default", filepath={str(built_zip)!r}, enable_on_install=True)
        module = "bl_ext.user_default.shotfield"
        assert module in {{m.__name__ for m in addon_utils.modules()}}, "not installed"
        assert addon_utils.check(module)[1], "not enabled"
        assert hasattr(bpy.types, "SHOTFIELD_OT_import_camera") or "shotfield" in dir(bpy.ops), "operators missing"
        bpy.ops.shotfield.import_camera.get_rna_type()
        addon_utils.disable(module)
        print("INSTALLED-OK")
    """)
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "user")}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert "INSTALLED-OK" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
