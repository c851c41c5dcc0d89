"""Run, Cancel and Re-attach: starting the backend on the scene's clip, stopping it, following a run that
some other process started. The work happens in a separate process (or on a server); these operators only
start and stop it and hand it to `monitor`, which follows it without blocking Blender."""
from __future__ import annotations

import os

import bpy

from . import jobs, monitor, remote_jobs
from .command import RunRequest, parse_stages, stages_for_outputs
from .footage import footage_for_clip, frames_argument
from .preferences import default_backend_command, get_preferences
from .properties import active_clip, resolved_job_dir
from .shared_formats import job_manifest

UNSAVED = "The job folder is relative to the .blend file: save the file first, or choose a job folder"
NO_SERVER = "Server support is not installed in this build of the add-on (blender_addon/remote.py is missing)"


class RunRefused(ValueError):
    """The settings cannot make a run; the message says what to change."""


def job_dir_or_raise(context) -> str:
    job_dir = resolved_job_dir(context)
    if job_dir is None:
        raise RunRefused(UNSAVED)
    return job_dir


def build_request(context, job_dir: str, stages_override: str = "") -> RunRequest:
    """The run the panel describes. Its footage is a video file or an image sequence's printf pattern, which
    the local backend reads and the server client uploads (a sequence as one zip). Raises RunRefused."""
    props = context.scene.shotfield
    clip = active_clip(context)
    footage = frames = fps = None
    if clip is not None:
        path = bpy.path.abspath(clip.filepath, library=clip.library)
        try:
            ref = footage_for_clip(os.path.normpath(path), clip.source)
        except ValueError as exc:
            raise RunRefused(str(exc)) from exc
        footage = ref.source
        if props.use_frame_range:
            if props.clip_frame_end < props.clip_frame_start:
                raise RunRefused("The frame range ends before it starts")
            frames = frames_argument(ref.first_index, props.clip_frame_start, props.clip_frame_end, props.clip_frame_step)
        else:
            frames = frames_argument(ref.first_index, None, None, 1)
        if ref.kind == "images":  # a sequence has no frame rate of its own: the scene's
            fps = context.scene.render.fps / context.scene.render.fps_base
    elif not os.path.isfile(os.path.join(job_dir, job_manifest.MANIFEST)):
        raise RunRefused("Choose the footage: open it as a Movie Clip (Clip Editor > Open) or pick a clip in the panel")
    try:
        stages = parse_stages(stages_override) if stages_override.strip() else stages_for_outputs(props.outputs())
    except ValueError as exc:
        raise RunRefused(str(exc)) from exc
    remove = None
    if "inpaint" in stages:
        remove = "moving" if props.remove == "moving" else bpy.path.abspath(props.remove_masks)
        if remove != "moving" and not os.path.isdir(remove):
            raise RunRefused("Clean plates: choose the folder of masks (or remove moving objects)")
    return RunRequest(job_dir, footage, stages, frames, props.quality, props.device, props.long_side or None, fps, remove,
                      effort=props.effort, layer_kind=props.layer_kind,
                      layer_reference=props.layer_reference if props.layer_reference >= 0 else None)


class SHOTFIELD_OT_run(bpy.types.Operator):
    """Reconstruct the clip with the Shotfield backend (in its own process, or on the server)"""

    bl_idname = "shotfield.run"
    bl_label = "Run"
    bl_options = {"REGISTER"}

    stages: bpy.props.StringProperty(
        name="Stages", description="Comma-separated backend stages instead of the panel's outputs (scripts)",
        default="", options={"SKIP_SAVE"})
    blocking: bpy.props.EnumProperty(
        name="Wait", description="Wait for the run to end (in background mode it always does by default)",
        items=(("AUTO", "Auto", "Wait in background mode only"), ("ON", "Wait", ""), ("OFF", "Don't Wait", "")),
        default="AUTO", options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return not monitor.is_active(resolved_job_dir(context))

    def execute(self, context):
        prefs = get_preferences(context)
        mode = prefs.mode if prefs is not None else "local"
        try:
            job_dir = job_dir_or_raise(context)
            if monitor.is_active(job_dir):
                raise RunRefused("A run of this job is already going; cancel it first")
            request = build_request(context, job_dir, self.stages)
            run = self._start(prefs, mode, request)
        except (RunRefused, jobs.StartFailed) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        props = context.scene.shotfield
        wait = self.blocking == "ON" or (self.blocking == "AUTO" and bpy.app.background)
        monitor.watch(run, request.stages, scene=context.scene, import_when_done=props.import_when_done,
                      frame_start=props.scene_frame_start, ground_plane=props.ground_plane)
        if not wait:
            self.report({"INFO"}, f"Shotfield: running {', '.join(request.stages)} in {job_dir}")
            return {"FINISHED"}
        state = monitor.wait(job_dir)
        if state.state != "done":
            self.report({"ERROR"}, f"Shotfield run {state.state}: {state.error}")
            return {"CANCELLED"}
        if state.error:  # the run succeeded, the import after it did not
            self.report({"WARNING"}, state.error)
        self.report({"INFO"}, f"Shotfield: done in {state.timing().split(' elapsed')[0]}")
        return {"FINISHED"}

    @staticmethod
    def _start(prefs, mode: str, request: RunRequest):
        if mode == "server":
            remote = remote_jobs.server_module()
            if remote is None:
                raise RunRefused(NO_SERVER)
            if request.footage is None:
                raise RunRefused("A server run needs the footage: choose a clip")
            server = remote.ShotfieldServer(prefs.server_url, prefs.server_token)
            return remote_jobs.RemoteRun(server, request.job_dir, request.footage, request.server_settings())
        command = (prefs.backend_command if prefs is not None else "") or default_backend_command()
        return jobs.start(request.argv(bpy.path.abspath(command)), request.job_dir)


class SHOTFIELD_OT_cancel(bpy.types.Operator):
    """Stop the running job; the stages it finished stay, and the next run goes on from there"""

    bl_idname = "shotfield.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return monitor.is_active(resolved_job_dir(context))

    def execute(self, context):
        job_dir = resolved_job_dir(context)
        if not monitor.cancel(job_dir):
            self.report({"WARNING"}, "No run of this job to cancel")
            return {"CANCELLED"}
        self.report({"INFO"}, "Shotfield: cancelling (finished stages are kept)")
        return {"FINISHED"}


class SHOTFIELD_OT_reattach(bpy.types.Operator):
    """Follow a run of this job folder that is still going (started in another Blender, a terminal, a server)"""

    bl_idname = "shotfield.reattach"
    bl_label = "Re-attach"

    @classmethod
    def poll(cls, context):
        return not monitor.is_active(resolved_job_dir(context))

    def execute(self, context):
        try:
            job_dir = job_dir_or_raise(context)
        except RunRefused as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        run = jobs.reattach(job_dir)
        if run is None:
            saved = remote_jobs.saved_server_job(job_dir)
            remote = remote_jobs.server_module()
            prefs = get_preferences(context)
            if saved is not None and remote is not None and prefs is not None:
                server = remote.ShotfieldServer(saved.get("url") or prefs.server_url, prefs.server_token)
                run = remote_jobs.RemoteRun(server, job_dir, job_id=saved["job_id"])
        if run is None:
            self.report({"INFO"}, "No process is running this job now; the panel shows its last state")
            return {"CANCELLED"}
        props = context.scene.shotfield
        monitor.watch(run, (), scene=context.scene, import_when_done=props.import_when_done,
                      frame_start=props.scene_frame_start, ground_plane=props.ground_plane, replay=True)
        self.report({"INFO"}, f"Shotfield: following the run of {job_dir}")
        return {"FINISHED"}


classes = (SHOTFIELD_OT_run, SHOTFIELD_OT_cancel, SHOTFIELD_OT_reattach)
register, unregister = bpy.utils.register_classes_factory(classes)
