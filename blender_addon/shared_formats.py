"""The numpy-only file-format modules of `exporters`, reached from wherever the add-on was loaded.

Installed as an extension, Blender loads the repository root as `bl_ext.<repo>.shotfield`, so `exporters`
is a sibling package (`..exporters`). Imported as the top-level package `blender_addon` (pip-installed
checkout, tests) that relative import goes above the top level, and `exporters` is top-level too.
The rest of the add-on imports formats from here only, so this choice is made once.

Only modules that need nothing but numpy and the standard library belong here: the add-on runs inside
Blender's Python, which has neither torch nor OpenCV.
"""
try:
    from ..exporters import cameras_json, conventions, job_manifest, layers_json, ply, tracks_npz
except ImportError:  # "attempted relative import beyond top-level package"
    from exporters import cameras_json, conventions, job_manifest, layers_json, ply, tracks_npz

__all__ = ["cameras_json", "conventions", "job_manifest", "layers_json", "ply", "tracks_npz"]
