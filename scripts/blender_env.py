"""Run Shotfield's add-on from this repository checkout inside a headless Blender (bpy module or `blender -b`).

One place for the "enable the add-on as an extension from a checkout" steps that `scripts/import_job.py`
and the tests share:

    import blender_env
    blender_env.use_temp_user_resources()   # before `import bpy`: keeps ~/.config/blender untouched
    import bpy
    with blender_env.addon_enabled() as module_name:  # "bl_ext.shotfield_dev.shotfield"
        ...
    # leaving the block disables the add-on: a process that registered classes and did not
    # unregister them never exits.

Blender loads an extension as `bl_ext.<repo module>.<extension id>` from a repository folder holding one
folder per extension. The checkout's root is the extension (it holds blender_manifest.toml and
__init__.py), so a temporary repository folder gets a symlink `shotfield` -> checkout root.

Not part of the add-on: the built extension leaves `scripts/` out.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[1]
EXTENSION_ID = "shotfield"           # `id` in blender_manifest.toml
DEV_REPO_MODULE = "shotfield_dev"    # the add-on becomes bl_ext.shotfield_dev.shotfield

# One repository folder per (process, checkout), reused when a test enables the add-on again, and
# removed at exit. (Removing the repository entry drops its bl_ext.* modules from sys.modules, so a
# new enable imports the add-on afresh either way.)
_repo_dirs: dict[Path, Path] = {}


def use_temp_user_resources() -> str:
    """Point BLENDER_USER_RESOURCES at a temporary folder unless it is already set; returns the folder.

    Call it before `import bpy` so Blender never reads or writes the user's own preferences. (Inside
    `blender -b --python` Blender has already started; the call is then harmless.)
    """
    if not os.environ.get("BLENDER_USER_RESOURCES"):
        folder = tempfile.mkdtemp(prefix="shotfield_blender_user_")
        os.environ["BLENDER_USER_RESOURCES"] = folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return os.environ["BLENDER_USER_RESOURCES"]


def addon_module_name(repo_module: str = DEV_REPO_MODULE) -> str:
    return f"bl_ext.{repo_module}.{EXTENSION_ID}"


def _repo_dir(repo_root: Path) -> Path:
    repo_root = Path(repo_root).resolve()
    if repo_root not in _repo_dirs:
        folder = Path(tempfile.mkdtemp(prefix="shotfield_ext_repo_"))
        (folder / EXTENSION_ID).symlink_to(repo_root, target_is_directory=True)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _repo_dirs[repo_root] = folder
    return _repo_dirs[repo_root]


def enable_addon(repo_root: str | os.PathLike = REPO_ROOT, repo_module: str = DEV_REPO_MODULE) -> str:
    """Register the checkout as an extension repository, enable the add-on; returns its module name.

    Raises RuntimeError (with Blender's own exception as the cause) when the add-on fails to enable.
    """
    import addon_utils
    import bpy

    repos = bpy.context.preferences.extensions.repos
    folder = str(_repo_dir(Path(repo_root)))
    repo = next((r for r in repos if r.module == repo_module), None)
    if repo is not None and repo.directory != folder:
        repos.remove(repo)
        repo = None
    if repo is None:
        repos.new(name="Shotfield (checkout)", module=repo_module, custom_directory=folder)

    module_name = addon_module_name(repo_module)
    errors: list[BaseException] = []
    # handle_error: addon_utils otherwise prints the traceback and returns None.
    module = addon_utils.enable(module_name, default_set=True, handle_error=errors.append)
    if module is None or errors:
        raise RuntimeError(f"could not enable {module_name} from {repo_root}") from (errors[0] if errors else None)
    return module_name


def disable_addon(repo_module: str = DEV_REPO_MODULE) -> None:
    """Disable (unregister) the add-on and remove the repository entry; safe to call twice."""
    import addon_utils
    import bpy

    # Removing a repository makes Blender disable (unregister) its add-ons itself; disabling first
    # as well would only make that second pass print "not enabled".
    repos = bpy.context.preferences.extensions.repos
    repo = next((r for r in repos if r.module == repo_module), None)
    if repo is not None:
        repos.remove(repo)
    module_name = addon_module_name(repo_module)
    if any(addon_utils.check(module_name)):
        addon_utils.disable(module_name, default_set=True)


@contextlib.contextmanager
def addon_enabled(repo_root: str | os.PathLike = REPO_ROOT, repo_module: str = DEV_REPO_MODULE) -> Iterator[str]:
    """`enable_addon` for the duration of a `with` block; always disabled afterwards."""
    try:
        yield enable_addon(repo_root, repo_module)
    finally:
        disable_addon(repo_module)


def script_args(argv: list[str]) -> list[str]:
    """A script's own arguments: those after "--" (`blender -b --python s.py -- ...`, `python s.py -- ...`),
    else all but the script name (`python s.py ...`)."""
    return argv[argv.index("--") + 1:] if "--" in argv else argv[1:]


def addon_module(submodule: str, repo_module: str = DEV_REPO_MODULE):
    """A module of the enabled add-on, e.g. `addon_module("importers.points")` (scripts reuse its helpers)."""
    import importlib

    return importlib.import_module(f"{addon_module_name(repo_module)}.blender_addon.{submodule}")


def reset_scene() -> None:
    """An empty factory scene, keeping the preferences (and so the enabled add-on).

    `wm.read_factory_settings` would also reset the preferences: it unregisters every extension and
    drops the extension repository added above. `wm.read_homefile(use_factory_startup=True)` does not.
    """
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
