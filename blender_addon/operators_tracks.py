"""Tracking points the artist picks: "Track Selected Markers" takes the selected tracks of the footage clip (a
marker each, placed by hand on any frame), asks the backend to track them through the whole shot
(`shotfield track JOB --queries JOB/tracks/picked_queries.json --out JOB/tracks/picked.npz`, the backend
command of the add-on's preferences), and imports the result: an empty per point and a clip track of markers
(importers/tracks.py).

The query of a selected track is its marker on the current frame, else its first enabled marker. Clip
coordinates (x 0..1 left to right, y 0..1 bottom to top) become working-frame pixels (x * W, (1 - y) * H);
clip frames become job frames through the clip's offset in the footage. Querying takes seconds (the model is
trained already), so the operator waits for it; it needs the job's `tracks` stage to have run.
"""
from __future__ import annotations

import os
import subprocess

import bpy
import numpy as np

from .importers import base as importer_base
from .importers import tracks as tracks_importer
from .preferences import default_backend_command, get_preferences
from .properties import active_clip, resolved_job_dir

QUERIES_FILE = os.path.join("tracks", "picked_queries.json")
OUT_FILE = tracks_importer.PICKED_FILE
MODEL_FILE = os.path.join("tracks", "model.pt")
TIMEOUT = 300.0


def queries_from_markers(clip, job_dir: str, scene_frame: int) -> np.ndarray:
    """(N, 3) [job frame, x, y] for the selected tracks of `clip` (not the ones Shotfield made). Raises
    ValueError with a message for the artist."""
    job = importer_base.read_job_folder(job_dir)
    if job.working_size is None or job.frame_count is None:
        raise ValueError("The job has no frames yet: run it first")
    width, height = job.working_size
    shot = importer_base.Shot(job, clip=clip)
    offset = tracks_importer.clip_frame_offset(shot)
    clip_frame = scene_frame - clip.frame_start + 1
    rows = []
    for track in clip.tracking.tracks:
        if not track.select or track.name.startswith(tracks_importer.TRACK_PREFIX + " "):
            continue
        marker = track.markers.find_frame(clip_frame, exact=True)
        if marker is None or marker.mute:
            enabled = [m for m in track.markers if not m.mute]
            marker = min(enabled, key=lambda m: m.frame) if enabled else None
        if marker is None:
            continue
        frame = marker.frame - 1 - offset
        if not 0 <= frame < job.frame_count:
            continue
        rows.append([frame, marker.co[0] * width, (1.0 - marker.co[1]) * height])
    if not rows:
        raise ValueError("Select the markers to track in the Clip Editor (on frames of the job)")
    return np.clip(np.array(rows, np.float64), 0.0, [job.frame_count - 1, width, height])


def run_track_command(command: str, job_dir: str, queries_path: str, out_path: str) -> None:
    """`shotfield track`; raises RuntimeError with the backend's message when it fails."""
    argv = [command, "track", job_dir, "--queries", queries_path, "--out", out_path]
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    except FileNotFoundError as exc:
        raise RuntimeError(f"the backend command {command!r} was not found; set it in the add-on preferences") from exc
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"shotfield track took longer than {TIMEOUT:.0f} s") from exc
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise RuntimeError(message[-1] if message else f"shotfield track failed ({result.returncode})")


class SHOTFIELD_OT_track_markers(bpy.types.Operator):
    """Track the selected markers of the clip through the whole shot (occlusions included) with the trained
    tracker, and import them as empties and clip markers"""

    bl_idname = "shotfield.track_markers"
    bl_label = "Track Selected Markers"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        job_dir = resolved_job_dir(context)
        clip = active_clip(context)
        if job_dir is None or clip is None:
            self.report({"ERROR"}, "Open the footage clip and choose (or save) the job folder first")
            return {"CANCELLED"}
        prefs = get_preferences(context)
        if prefs is not None and getattr(prefs, "mode", "local") == "server":
            self.report({"ERROR"}, "Tracking picked points runs on this computer only; switch the backend to local")
            return {"CANCELLED"}
        if not os.path.isfile(os.path.join(job_dir, MODEL_FILE)):
            self.report({"ERROR"}, "Run the job with the Tracks output first (it trains the tracker)")
            return {"CANCELLED"}
        try:
            queries = queries_from_markers(clip, job_dir, context.scene.frame_current)
        except (ValueError, importer_base.ImportFailed) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        tracks_npz = tracks_importer.tracks_npz
        queries_path = os.path.join(job_dir, QUERIES_FILE)
        tracks_npz.write_queries(queries_path, queries)
        command = (prefs.backend_command if prefs is not None else "") or default_backend_command()
        try:
            run_track_command(bpy.path.abspath(command), job_dir, queries_path, os.path.join(job_dir, OUT_FILE))
        except RuntimeError as exc:
            self.report({"ERROR"}, f"Shotfield track: {exc}")
            return {"CANCELLED"}
        result = bpy.ops.shotfield.import_job(outputs={"tracks"})
        if "FINISHED" not in result:
            return {"CANCELLED"}
        self.report({"INFO"}, f"Shotfield: tracked {len(queries)} point(s)")
        return {"FINISHED"}


def draw_section(layout, context, job_dir, outputs) -> None:
    box = layout.box().column()
    box.label(text="Tracked Points", icon="EMPTY_AXIS")
    row = box.row()
    row.enabled = job_dir is not None and os.path.isfile(os.path.join(job_dir, MODEL_FILE))
    row.operator(SHOTFIELD_OT_track_markers.bl_idname, icon="TRACKER")
    if "tracks" in outputs:
        op = box.operator("shotfield.import_job", text="Import Tracked Points", icon="EMPTY_AXIS")
        op.outputs = {"tracks"}


_classes = (SHOTFIELD_OT_track_markers,)


def register():
    for cls in _classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
