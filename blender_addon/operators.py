"""Operators: Shotfield's actions in Blender (importing a job's results; later running and cancelling jobs)."""
from __future__ import annotations

import os
import traceback

import bpy

from .importers import ImportFailed
from .importers import camera as camera_importer
from .properties import active_clip, job_dir_setting
from .shared_formats import cameras_json, job_manifest

# The errors phase 1 turns a bad job folder into; each carries a plain message naming the file.
READ_ERRORS = (ImportFailed, cameras_json.CamerasFileError, job_manifest.JobFolderError, OSError)


def resolve_job_dir(context, job_dir: str = "") -> str:
    """An absolute job folder from an operator's `job_dir` (empty: the scene's setting); raises ImportFailed."""
    path = bpy.path.abspath(job_dir.strip() or job_dir_setting(context))
    if not os.path.isabs(path):
        # `//` paths are relative to the .blend file; an unsaved file has no folder to be relative to.
        raise ImportFailed(f"Job folder {path!r} is relative: save the .blend file first or choose a folder")
    return os.path.normpath(path)


class SHOTFIELD_OT_import_camera(bpy.types.Operator):
    """Import the job's solved camera as an animated camera, with the footage as its background"""

    bl_idname = "shotfield.import_camera"
    bl_label = "Import Camera"
    bl_options = {"REGISTER", "UNDO"}

    job_dir: bpy.props.StringProperty(
        name="Job folder",
        description="Job folder (or its camera/cameras.json); empty: the scene's Shotfield job folder",
        subtype="DIR_PATH",
        options={"SKIP_SAVE"},
    )
    frame_start: bpy.props.IntProperty(
        name="Start frame",
        description="Scene frame of the job's first frame",
        default=1,
    )

    def execute(self, context):
        # Phase 1: read and check; nothing in the scene changes if this fails.
        try:
            path = resolve_job_dir(context, self.job_dir)
            job = camera_importer.read(path)
        except READ_ERRORS as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}

        # Phase 2: build.
        try:
            obj = camera_importer.create(
                context, job.cameras, frame_start=self.frame_start, clip=active_clip(context),
                fps=job.fps, frame_count=job.frame_count,
            )
        except Exception as exc:  # a bug rather than a bad file: keep the traceback for the console
            traceback.print_exc()
            self.report({"ERROR"}, f"Importing the camera failed: {exc}")
            return {"CANCELLED"}
        for warning in job.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Imported {obj.name}: {len(job.cameras.frames)} frames from {path}")
        return {"FINISHED"}


classes = (SHOTFIELD_OT_import_camera,)
register, unregister = bpy.utils.register_classes_factory(classes)
