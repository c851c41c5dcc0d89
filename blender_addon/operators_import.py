"""Importing a job's outputs: from the panel (one output, or all of them) and from File > Import > Shotfield Job."""
from __future__ import annotations

import os
import traceback

import bpy

from .importers import IMPORTERS, READ_ERRORS, import_job, job_path
from .properties import resolved_job_dir

OUTPUT_ITEMS = tuple((m.NAME, m.LABEL, f"Import the job's {m.LABEL.lower()}") for m in IMPORTERS)


class SHOTFIELD_OT_import_job(bpy.types.Operator):
    """Import a Shotfield job's results (camera, point cloud, footage, ...) into a collection named after the shot"""

    bl_idname = "shotfield.import_job"
    bl_label = "Import Shotfield Job"
    bl_options = {"REGISTER", "UNDO"}

    directory: bpy.props.StringProperty(
        name="Job folder", description="Job folder (or its camera/cameras.json); empty: the scene's job folder",
        subtype="DIR_PATH", options={"SKIP_SAVE"})
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    outputs: bpy.props.EnumProperty(
        name="Outputs", description="What to import; none selected: everything the job has",
        items=OUTPUT_ITEMS, options={"ENUM_FLAG", "SKIP_SAVE"})
    frame_start: bpy.props.IntProperty(name="Start Frame", description="Scene frame of the job's first frame", default=1)
    ground_plane: bpy.props.BoolProperty(
        name="Ground Plane", description="With everything, also a shadow-catcher plane at Z = 0", default=True)
    use_file_browser: bpy.props.BoolProperty(default=False, options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        if self.use_file_browser:
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def execute(self, context):
        # Phase 1 (read and check) raises READ_ERRORS with nothing changed; phase 2 removes what it built
        # if it fails (importers/__init__.py).
        folder = self.directory.strip() or resolved_job_dir(context)
        if not folder:
            self.report({"ERROR"}, "The job folder is relative to the .blend file: save the file first, or choose a folder")
            return {"CANCELLED"}
        path = job_path(os.path.normpath(bpy.path.abspath(folder)))
        try:
            result = import_job(context.scene, path, outputs=set(self.outputs) or None,
                                frame_start=self.frame_start, ground_plane=self.ground_plane)
        except READ_ERRORS as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception as exc:  # a bug rather than a bad file: keep the traceback for the console
            traceback.print_exc()
            self.report({"ERROR"}, f"Importing {path} failed: {exc}")
            return {"CANCELLED"}
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Imported {', '.join(result.outputs)} from {path} into '{result.collection.name}'")
        return {"FINISHED"}


def menu_import(self, context):
    op = self.layout.operator(SHOTFIELD_OT_import_job.bl_idname, text="Shotfield Job (folder)")
    op.use_file_browser = True


classes = (SHOTFIELD_OT_import_job,)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister():
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    _unregister()
