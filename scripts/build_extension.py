"""Build the installable Blender extension zip of this checkout, validate it, and check what is in it.

    python scripts/build_extension.py [--out-dir dist] [--blender PATH]

Uses Blender's own extension tool: `blender --command extension build` when a Blender binary is given or on
PATH; otherwise the same tool as the bpy module ships it (`scripts/addons_core/bl_pkg/cli/blender_ext.py`,
run with this Python), so the zip layout and the manifest validation are Blender's either way. The
manifest's `[build] paths_exclude_pattern` decides what goes in.

Then checks the zip: it holds the add-on (`__init__.py`, `blender_manifest.toml`, `blender_addon/`) and the
numpy-only `exporters/`, and none of the backend, tests or scripts; no module in it imports torch (or the
other backend libraries) and none installs packages at run time (pip). Prints the zip's path; exits 1
with the reasons when a check fails.
"""
from __future__ import annotations

import argparse
import ast
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("__init__.py", "blender_manifest.toml", "blender_addon/__init__.py", "exporters/job_manifest.py",
            "exporters/cameras_json.py", "exporters/conventions.py")
EXCLUDED_TOPS = ("backend", "tests", "scripts", "benchmark_results", "demo", "dist", "build", "pyproject.toml")
BACKEND_LIBRARIES = {"torch", "cv2", "pycolmap", "kornia", "open3d", "trimesh", "backend"}
PIP_MARKERS = ("pip install", "ensurepip", "-m pip", "pip.main", "'pip'", '"pip"')


def blender_ext_tool(blender: str | None) -> list[str]:
    """The command prefix that runs Blender's extension tool: `[blender, --command, extension]` or
    `[python, .../blender_ext.py]`. Raises SystemExit when neither is available."""
    binary = blender or shutil.which("blender")
    if binary:
        return [binary, "--factory-startup", "--command", "extension"]
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            found = sorted(glob.glob(os.path.join(folder, "*", "scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")))
            if found:
                return [sys.executable, found[-1]]
    raise SystemExit("build_extension: no Blender binary on PATH (--blender) and no bpy module with its extension tool")


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"build_extension: {' '.join(command[-4:])} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def build(out_dir: Path, blender: str | None = None, source: Path = REPO_ROOT) -> Path:
    """Validate the manifest and build the zip into `out_dir`; returns the zip's path."""
    tool = blender_ext_tool(blender)
    manifest = tomllib.loads((source / "blender_manifest.toml").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    print(_run([*tool, "validate", str(source)]).strip())
    print(_run([*tool, "build", "--source-dir", str(source), "--output-filepath", str(out)]).strip().splitlines()[-1])
    return out


def check_zip(path: Path) -> list[str]:
    """What is wrong with a built zip (empty when nothing is)."""
    problems = []
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        tops = {n.split("/")[0] for n in names}
        problems += [f"missing {n}" for n in REQUIRED if n not in names]
        problems += [f"holds {t}/ (must stay out of the extension)" for t in EXCLUDED_TOPS if t in tops]
        problems += [f"holds {n}" for n in names if "__pycache__" in n or n.endswith(".pyc") or "/torch/" in f"/{n}"]
        problems += [f"bundles a wheel {n} (none is needed)" for n in names if n.endswith(".whl")]
        for name in (n for n in names if n.endswith(".py")):
            source = z.read(name).decode("utf-8", errors="replace")
            for module in _imports(source, name):
                if module in BACKEND_LIBRARIES and name.startswith("blender_addon/"):
                    problems.append(f"{name} imports {module} (the add-on must not need the backend's libraries)")
                if module == "torch":
                    problems.append(f"{name} imports torch")
            if any(marker in source for marker in PIP_MARKERS):
                problems.append(f"{name} mentions pip (no package installs at run time)")
        manifest = tomllib.loads(z.read("blender_manifest.toml").decode()) if "blender_manifest.toml" in names else {}
        for wheel in manifest.get("wheels", []):
            if wheel.lstrip("./") not in names:
                problems.append(f"the manifest lists a wheel the zip lacks: {wheel}")
    return problems


def _imports(source: str, name: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" in argv:  # also runs as `blender -b --python scripts/build_extension.py -- ...`
        argv = argv[argv.index("--") + 1:]
    parser = argparse.ArgumentParser(prog="build_extension.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "dist", help="where the zip goes (default dist/)")
    parser.add_argument("--blender", help="Blender binary to build with (default: `blender` on PATH, else bpy's tool)")
    args = parser.parse_args(argv)
    out = build(args.out_dir.resolve(), args.blender)
    problems = check_zip(out)
    if problems:
        print("build_extension: the zip is not right:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    size = out.stat().st_size
    print(f"build_extension: {out} ({size / 1024:.0f} KiB, {len(zipfile.ZipFile(out).namelist())} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
