"""Per-scene Shotfield settings (`scene.shotfield`): what to reconstruct from which clip, how, and where the
job folder is; plus the small helpers that resolve them (active clip, job folder)."""
from __future__ import annotations

import os

import bpy

DEFAULT_JOB_DIR = "//shotfield/{clip}/"  # beside the .blend file, one folder per clip

#: (name, label, description) of the panel's "Outputs" checkboxes, in stage order; the stage each needs is
#: `command.OUTPUT_STAGES`.
OUTPUTS = (
    ("camera", "Camera", "Solved camera, sparse point cloud and ground plane"),
    ("depth", "Depth", "Per-frame depth (EXR) for the compositor"),
    ("point_cache", "Point Cache", "Points that move with the scene (scene flow)"),
    ("tracks", "Tracks", "Tracked empties and 2D markers in the Movie Clip"),
    ("layers", "Layers", "Layered meshes for parallax-correct set extension"),
    ("clean_plates", "Clean Plates", "The shot with moving objects removed"),
)


class ShotfieldSceneProperties(bpy.types.PropertyGroup):
    clip: bpy.props.PointerProperty(
        name="Clip", type=bpy.types.MovieClip,
        description="Footage to reconstruct; empty: the active clip (the Clip Editor's, else the scene's)",
    )
    use_frame_range: bpy.props.BoolProperty(
        name="Frame Range", description="Reconstruct only part of the clip", default=False)
    clip_frame_start: bpy.props.IntProperty(
        name="Start", description="First clip frame (1 = the clip's first frame)", default=1, min=1)
    clip_frame_end: bpy.props.IntProperty(
        name="End", description="Last clip frame (inclusive)", default=100, min=1)
    clip_frame_step: bpy.props.IntProperty(
        name="Step", description="Use every n-th frame", default=1, min=1, soft_max=10)

    output_camera: bpy.props.BoolProperty(name=OUTPUTS[0][1], description=OUTPUTS[0][2], default=True)
    output_depth: bpy.props.BoolProperty(name=OUTPUTS[1][1], description=OUTPUTS[1][2], default=False)
    output_point_cache: bpy.props.BoolProperty(name=OUTPUTS[2][1], description=OUTPUTS[2][2], default=False)
    output_tracks: bpy.props.BoolProperty(name=OUTPUTS[3][1], description=OUTPUTS[3][2], default=False)
    output_layers: bpy.props.BoolProperty(name=OUTPUTS[4][1], description=OUTPUTS[4][2], default=False)
    output_clean_plates: bpy.props.BoolProperty(name=OUTPUTS[5][1], description=OUTPUTS[5][2], default=False)
    remove: bpy.props.EnumProperty(
        name="Remove", description="What the clean plates remove",
        items=(("moving", "Moving Objects", "Everything that moves independently of the camera"),
               ("masks", "Masks", "What the masks in a folder mark (PNG, white = remove)")),
        default="moving",
    )
    remove_masks: bpy.props.StringProperty(
        name="Mask Folder", description="Folder of masks named by frame number (white = remove)", subtype="DIR_PATH")
    layer_kind: bpy.props.EnumProperty(
        name="Layers", description="The shape of the layers",
        items=(("mpi", "Planes", "Planes facing the reference camera (ordinary footage)"),
               ("msi", "Spheres", "Spheres around the reference camera (wide-angle or 360 footage)")),
        default="mpi",
    )
    layer_reference: bpy.props.IntProperty(
        name="Reference Frame", description="Job frame the layers are built for (0 = the first); -1: the middle frame",
        default=-1, min=-1)
    ground_plane: bpy.props.BoolProperty(
        name="Ground Plane", description="Import a shadow-catcher plane at the ground the solve found (Z = 0)",
        default=True)

    quality: bpy.props.EnumProperty(
        name="Quality",
        items=(("preview", "Preview", "Working size 320 px: minutes on a CPU"),
               ("final", "Final", "Working size 960 px: meant for a GPU")),
        default="preview",
    )
    device: bpy.props.EnumProperty(
        name="Device",
        items=(("auto", "Auto", "The GPU if the backend sees one, else the CPU"),
               ("cpu", "CPU", "Always the CPU"), ("cuda", "CUDA", "An NVIDIA GPU (fails if there is none)")),
        default="auto",
    )
    effort: bpy.props.FloatProperty(
        name="Effort", description="Training of the learned outputs (depth, point cache, tracks, layers, clean "
        "plates): 1 is the default, 0.25 a quick look, 2 a longer polish", default=1.0, min=0.01, max=100.0,
        soft_min=0.1, soft_max=4.0)
    long_side: bpy.props.IntProperty(
        name="Working Size", description="Long side of the working frames in pixels; 0: the quality's default",
        default=0, min=0, soft_max=4096, subtype="PIXEL")

    job_dir: bpy.props.StringProperty(
        name="Job folder",
        description="Folder of the Shotfield job (its job.json, frames, camera, ...). "
                    "Empty: //shotfield/<clip name>/ beside the .blend file",
        subtype="DIR_PATH",
        default="",
    )
    import_when_done: bpy.props.BoolProperty(
        name="Import When Done", description="Import every output into the scene when a run succeeds", default=True)
    scene_frame_start: bpy.props.IntProperty(
        name="Scene Start", description="Scene frame of the job's first frame when importing", default=1)

    def outputs(self) -> list[str]:
        return [name for name, *_ in OUTPUTS if getattr(self, f"output_{name}")]


def active_clip(context):
    """The Movie Clip to work on: the panel's choice, else the Clip Editor's, else the scene's active clip."""
    scene = getattr(context, "scene", None)
    chosen = scene.shotfield.clip if scene is not None and hasattr(scene, "shotfield") else None
    if chosen is not None:
        return chosen
    space = getattr(context, "space_data", None)
    clip = getattr(space, "clip", None) if space is not None and space.type == "CLIP_EDITOR" else None
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


def resolved_job_dir(context) -> str | None:
    """The job folder as an absolute, normalised path; None while it is relative to an unsaved file."""
    path = bpy.path.abspath(job_dir_setting(context))
    if not os.path.isabs(path):
        return None
    return os.path.normpath(path)


classes = (ShotfieldSceneProperties,)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.types.Scene.shotfield = bpy.props.PointerProperty(type=ShotfieldSceneProperties)


def unregister():
    del bpy.types.Scene.shotfield
    _unregister_classes()
