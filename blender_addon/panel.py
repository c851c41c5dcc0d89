"""The Shotfield sidebar tab, in the Clip Editor and the 3D Viewport (one draw function, two panels: a Panel
class belongs to exactly one editor type).

Top to bottom: the footage and frame range, the outputs to make with their main settings, quality and
device, where it runs, the job folder; Run / Cancel; while running a progress bar with the stage and its
message, elapsed time and an estimate; afterwards the outcome (the error in plain words, with the log),
and import buttons per output plus "Import All".

Drawing happens on every redraw, so it reads nothing from disk except through `_job_view`, which looks at
the job folder at most once a second.
"""
from __future__ import annotations

import os
import sys
import time

import bpy

from . import monitor, progress, remote_jobs
from .importers import BY_NAME, available_outputs
from .preferences import draw_check_result, get_preferences
from .properties import OUTPUTS, active_clip, job_dir_setting, resolved_job_dir
from .shared_formats import job_manifest

_VIEW_SECONDS = 1.0
#: Output-specific operator modules that draw a section of their own (`draw_section(layout, context, job_dir,
#: outputs)`), e.g. picking points to track; a module not built into this version draws nothing.
SECTION_MODULES = ("operators_tracks", "operators_remove")
_views: dict[str, tuple[float, float, dict | None, list[str]]] = {}  # job -> (checked, job.json mtime, manifest, outputs)


def _job_view(job_dir: str | None) -> tuple[dict | None, list[str]]:
    """(job.json or None, the outputs it has), re-read when job.json changed, at most once a second."""
    if not job_dir:
        return None, []
    now = time.monotonic()
    cached = _views.get(job_dir)
    if cached is not None and now - cached[0] < _VIEW_SECONDS:
        return cached[2], cached[3]
    path = os.path.join(job_dir, job_manifest.MANIFEST)
    mtime = os.path.getmtime(path) if os.path.isfile(path) else -1.0
    if cached is not None and cached[1] == mtime and mtime >= 0 and not monitor.is_active(job_dir):
        _views[job_dir] = (now, *cached[1:])
        return cached[2], cached[3]
    try:
        manifest = job_manifest.read_manifest(job_dir) if mtime >= 0 else None
    except job_manifest.JobFolderError:
        manifest = None
    outputs = available_outputs(job_dir) if os.path.isdir(job_dir) else []
    _views[job_dir] = (now, mtime, manifest, outputs)
    return manifest, outputs


def draw_panel(layout, context) -> None:
    props = context.scene.shotfield
    job_dir = resolved_job_dir(context)
    state = monitor.state_for(job_dir)
    busy = state is not None and state.active

    _draw_footage(layout.box().column(), context, props)
    _draw_outputs(layout.box().column(), props)
    _draw_settings(layout.box().column(), context, props)

    col = layout.column()
    col.prop(props, "job_dir")
    if not props.job_dir.strip():
        col.label(text=f"Default: {job_dir_setting(context)}", icon="INFO")
    if job_dir is None:
        col.label(text="Save the .blend file first (the folder is relative to it)", icon="ERROR")

    row = layout.row(align=True)
    row.scale_y = 1.4
    if busy:
        row.operator("shotfield.cancel", icon="CANCEL")
    else:
        row.operator("shotfield.run", icon="PLAY")
        row.operator("shotfield.reattach", text="", icon="LINKED")

    manifest, outputs = _job_view(job_dir)
    if state is not None:
        _draw_state(layout.column(), state)
    elif manifest is not None:
        _draw_last_run(layout.column(), manifest)
    if outputs and not busy:
        _draw_imports(layout.box().column(), props, outputs)
    for name in SECTION_MODULES:
        module = sys.modules.get(f"{__package__}.{name}")
        if module is not None and hasattr(module, "draw_section"):
            module.draw_section(layout, context, job_dir, [] if busy else outputs)


def _draw_footage(col, context, props) -> None:
    col.label(text="Footage", icon="FILE_MOVIE")
    col.prop(props, "clip")
    clip = active_clip(context)
    if props.clip is None:
        if clip is not None:
            col.label(text=f"Active clip: {clip.name} ({clip.frame_duration} frames)")
        else:
            col.label(text="Open the footage as a Movie Clip (Clip Editor > Open)", icon="ERROR")
    col.prop(props, "use_frame_range")
    if props.use_frame_range:
        row = col.row(align=True)
        row.prop(props, "clip_frame_start")
        row.prop(props, "clip_frame_end")
        row.prop(props, "clip_frame_step")


def _draw_outputs(col, props) -> None:
    col.label(text="Outputs", icon="OUTLINER_COLLECTION")
    for name, _label, _description in OUTPUTS:
        col.prop(props, f"output_{name}")
        if name == "camera" and props.output_camera:
            _indent(col).prop(props, "ground_plane")
        if name == "layers" and props.output_layers:
            sub = _indent(col)
            sub.prop(props, "layer_kind")
            sub.prop(props, "layer_reference")
        if name == "clean_plates" and props.output_clean_plates:
            sub = _indent(col)
            sub.prop(props, "remove")
            if props.remove == "masks":
                sub.prop(props, "remove_masks")


def _indent(col):
    split = col.split(factor=0.08)
    split.separator()
    return split.column()


def _draw_settings(col, context, props) -> None:
    col.label(text="Quality", icon="SETTINGS")
    col.row().prop(props, "quality", expand=True)
    col.prop(props, "device")
    col.prop(props, "long_side")
    col.prop(props, "effort")
    prefs = get_preferences(context)
    if prefs is None:
        return
    col.label(text="Runs on", icon="NETWORK_DRIVE")
    col.row().prop(prefs, "mode", expand=True)
    row = col.row()
    if prefs.mode == "server" and remote_jobs.server_module() is None:
        row.label(text="Server support not installed", icon="ERROR")
        return
    row.label(text=prefs.server_url if prefs.mode == "server" else (prefs.backend_command or "shotfield (on PATH)"))
    row.operator("shotfield.check_backend", text="", icon="CHECKMARK")
    draw_check_result(col)


def _draw_state(col, state: progress.RunState) -> None:
    col.progress(factor=state.fraction(), type="BAR", text=state.headline())
    col.label(text=state.timing(), icon="TIME")
    if state.error:
        icon = "CANCEL" if state.state == "cancelled" else "ERROR"
        for n, line in enumerate(progress.wrap(state.error)):
            col.label(text=line, icon=icon if n == 0 else "BLANK1")
        col.operator("shotfield.open_log", icon="TEXT")
    elif state.state == "done" and state.message:
        col.label(text=state.message, icon="CHECKMARK")


def _draw_last_run(col, manifest: dict) -> None:
    """A job nobody is running now: its stages as job.json left them."""
    rows = progress.stage_rows(manifest)
    if not rows:
        return
    col.label(text="Job folder", icon="FILE_FOLDER")
    for row in rows:
        seconds = f" ({progress.format_duration(row.seconds)})" if row.seconds is not None else ""
        icon = {"done": "CHECKMARK", "failed": "ERROR", "cancelled": "CANCEL", "running": "TIME"}.get(row.status, "DOT")
        col.label(text=f"{row.name}: {row.status}{seconds}", icon=icon)
    failed = [r for r in rows if r.status == "failed" and r.error]
    if failed:
        for n, line in enumerate(progress.wrap(failed[-1].error)):
            col.label(text=line, icon="ERROR" if n == 0 else "BLANK1")
        col.operator("shotfield.open_log", icon="TEXT")


def _draw_imports(col, props, outputs: list[str]) -> None:
    col.label(text="Import", icon="IMPORT")
    for name in outputs:
        module = BY_NAME[name]
        op = col.operator("shotfield.import_job", text=module.LABEL, icon=module.ICON)
        op.outputs = {name}
        op.frame_start = props.scene_frame_start
    op = col.operator("shotfield.import_job", text="Import All", icon="IMPORT")
    op.frame_start, op.ground_plane = props.scene_frame_start, props.ground_plane
    col.prop(props, "scene_frame_start")
    col.prop(props, "import_when_done")


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
