"""The Shotfield sidebar tab, in the Clip Editor and the 3D Viewport (one draw function, two panels:
a Panel class belongs to exactly one editor type)."""
from __future__ import annotations

import bpy

from .properties import job_dir_setting


def draw_panel(layout, context) -> None:
    props = context.scene.shotfield
    col = layout.column()
    col.prop(props, "job_dir")
    if not props.job_dir.strip():
        col.label(text=f"Default: {job_dir_setting(context)}", icon="INFO")
    col.separator()
    col.operator("shotfield.import_camera", icon="CAMERA_DATA")


class _ShotfieldPanel:
    bl_label = "Shotfield"
    bl_region_type = "UI"
    bl_category = "Shotfield"

    @classmethod
    def poll(cls, context):
        return context.scene is not None and hasattr(context.scene, "shotfield")

    def draw(self, context):
        draw_panel(self.layout, context)


class SHOTFIELD_PT_clip_editor(_ShotfieldPanel, bpy.types.Panel):
    bl_space_type = "CLIP_EDITOR"


class SHOTFIELD_PT_view3d(_ShotfieldPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"


classes = (SHOTFIELD_PT_clip_editor, SHOTFIELD_PT_view3d)
register, unregister = bpy.utils.register_classes_factory(classes)
