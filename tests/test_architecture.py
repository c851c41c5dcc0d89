"""The three parts depend one way only (DESIGN.md, Architecture). Every import counts, including late
imports inside functions, so the check walks the syntax tree rather than grepping the top of files."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "backend": {"bpy", "bpy_extras", "mathutils", "blender_addon"},
    "exporters": {"torch", "bpy", "bpy_extras", "mathutils", "backend", "blender_addon", "cv2", "pycolmap"},
    "blender_addon": {"torch", "cv2", "pycolmap", "backend", "open3d", "kornia", "trimesh"},
}


def imported_modules(source: str, package: str) -> set[str]:
    """Top-level names of every module a file imports; relative imports resolved against `package`
    (so `from ..exporters import x` inside blender_addon counts as `exporters`)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add(node.module.split(".")[0])
            else:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names.add(target.split(".")[0] if base else (node.module or "").split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__"):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value.split(".")[0])
    return names


def _python_files(part: str):
    return sorted((REPO / part).rglob("*.py"))


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_one_way_dependencies(part):
    files = _python_files(part)
    assert files, f"{part}/ has no Python files"
    offences = []
    for path in files:
        package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
        bad = imported_modules(path.read_text(encoding="utf-8"), package) & FORBIDDEN[part]
        offences += [f"{path.relative_to(REPO)} imports {name}" for name in sorted(bad)]
    assert not offences, "\n".join(offences)


def test_the_checker_sees_late_and_relative_imports():
    late = "def f():\n    import torch\n    from bpy import types\n"
    assert imported_modules(late, "exporters") == {"torch", "bpy"}
    assert imported_modules("from ..backend import cli\n", "blender_addon.importers") == {"blender_addon"}
    assert imported_modules("from ..exporters import conventions\n", "blender_addon") == {"exporters"}
    assert imported_modules("import importlib\nimportlib.import_module('cv2.ximgproc')\n", "blender_addon") >= {"cv2"}


def test_extension_root_is_tiny_and_only_hands_over():
    root = (REPO / "__init__.py").read_text()
    assert len(root.splitlines()) < 15
    assert imported_modules(root, "") <= {"blender_addon", ""}
