"""Per-scene Shotfield settings (`scene.shotfield`), and where the scene's job folder is."""
from __future__ import annotations

import bpy

DEFAULT_JOB_DIR = "//shotfield/{clip}/"  # beside the .blend file, one folder per clip


class ShotfieldSceneProperties(bpy.types.PropertyGroup):
    job_dir: bpy.props.StringProperty(
        name="Job folder",
        description="Folder of the Shotfield job (its job.json, frames, camera, ...). "
                    "Empty: //shotfield/<clip name>/ beside the .blend file",
        subtype="DIR_PATH",
        default="",
    )


def active_clip(context):
    """The Movie Clip the user is looking at: the Clip Editor's, else the scene's active clip (or None)."""
    space = getattr(context, "space_data", None)
    clip = getattr(space, "clip", None) if space is not None and space.type == "CLIP_EDITOR" else None
    scene = getattr(context, "scene", None)
    return clip or (scene.active_clip if scene is not None else None)


def job_dir_setting(context) -> str:
    """The job folder as the user sees it: `scene.shotfield.job_dir`, or the default for the active clip.

    May be relative to the .blend file (`//...`); `bpy.path.abspath` resolves it.
    """
    value = context.scene.shotfield.job_dir.strip()
    if value:
        return value
    clip = active_clip(context)
    name = bpy.path.clean_name(clip.name) if clip is not None else "shot"
    return DEFAULT_JOB_DIR.format(clip=name)


classes = (ShotfieldSceneProperties,)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.types.Scene.shotfield = bpy.props.PointerProperty(type=ShotfieldSceneProperties)


def unregister():
    del bpy.types.Scene.shotfield
    _unregister_classes()
