"""Tracked points (`tracks/tracks.npz`, and `tracks/picked.npz` for points the artist picked) as (a) empties
that follow the points in world space and hide while occluded, and (b) 2D markers in the footage clip's
tracking data, disabled (muted) where the point is occluded or out of frame.

Which points: the picked ones (`tracks/picked.npz`, written by `shotfield track` from the panel's "Track
Selected Markers") when the job has them, else an even subset of the stage's grid (at most MAX_POINTS).

(a) One empty per point, keyed per frame at its world position (`location` F-curves filled with one
`foreach_set` each) and keyed `hide_viewport` / `hide_render` (constant interpolation) where it is not
visible, so an object parented to it rides a surface point and disappears with it. Points without world
positions (the model was trained without a solve) get no empty; the import says so.
(b) One clip track per point, named "Shotfield NNN", with a marker on every frame: `co` in the clip's
normalised coordinates (x / W, 1 - y / H), `mute` where not visible. Marker frames are clip frames
(1 = the clip's first frame).
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..shared_formats import tracks_npz
from .base import Built, ImportFailed, JobFolder, Shot, tag
from .camera import new_fcurves
from .clip import find_footage_clip

NAME = "tracks"
LABEL = "Tracked Points"
ICON = "EMPTY_AXIS"
REQUIRES = ("camera", "footage")   # the footage clip carries the markers
FILE = "tracks/tracks.npz"
PICKED_FILE = "tracks/picked.npz"
MAX_POINTS = 48
TRACK_PREFIX = "Shotfield"

_CONSTANT = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["CONSTANT"].value
_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


@dataclass
class TracksData:
    tracks: tracks_npz.Tracks
    points: np.ndarray          # indices of the chosen points
    picked: bool
    width: int
    height: int


def available(job: JobFolder) -> bool:
    return job.file(FILE).is_file() or job.file(PICKED_FILE).is_file()


def read(job: JobFolder) -> TracksData:
    picked = job.file(PICKED_FILE).is_file()
    try:
        tracks = tracks_npz.read_tracks(job.file(PICKED_FILE if picked else FILE))
    except tracks_npz.TracksFileError as exc:
        raise ImportFailed(str(exc)) from exc
    size = job.working_size
    if size is None:
        raise ImportFailed(f"{job.path}: job.json has no working size; the tracks' pixels cannot be placed on the clip")
    points = np.arange(tracks.count) if picked else choose_points(tracks.count, MAX_POINTS)
    return TracksData(tracks, points, picked, size[0], size[1])


def choose_points(count: int, limit: int) -> np.ndarray:
    """An even subset of at most `limit` of `count` points (the grid's rows and columns stay spread)."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, limit)).astype(int))


def create(data: TracksData, shot: Shot) -> Built:
    tracks, warnings = data.tracks, []
    objects = []
    has_world = np.all(np.isfinite(tracks.world[:, data.points]), axis=(0, 2))
    if not has_world.any():
        warnings.append("the tracks have no world positions (trained without a solved camera): markers only")
    for k in data.points[has_world]:
        objects.append(_empty(tracks, int(k), shot))
    if shot.clip is not None:
        _markers(data, shot)
    else:
        warnings.append("no footage clip: no markers")
    return Built(objects=objects, last_frame_index=tracks.frames - 1, warnings=warnings)


def _empty(tracks: tracks_npz.Tracks, k: int, shot: Shot):
    frame, x, y = tracks.queries[k]
    name = f"{shot.job.name} Track {k:03d}"
    obj = tag(bpy.data.objects.new(name, None), NAME, name)
    obj.empty_display_type = "PLAIN_AXES"
    obj.empty_display_size = 0.1
    obj["shotfield_query"] = [float(frame), float(x), float(y)]
    frames = (shot.frame_start + np.arange(tracks.frames)).astype(np.float64)
    world = tracks.world[:, k].astype(np.float64)
    hidden = (~tracks.visible[:, k]).astype(np.float64)
    fcurves = new_fcurves(obj, f"{name} Action")
    for axis in range(3):
        _keys(fcurves, "location", axis, frames, world[:, axis], _LINEAR)
    _keys(fcurves, "hide_viewport", 0, frames, hidden, _CONSTANT)
    _keys(fcurves, "hide_render", 0, frames, hidden, _CONSTANT)
    obj.location = world[int(frame)]
    return obj


def _keys(fcurves, data_path: str, index: int, frames: np.ndarray, values: np.ndarray, interpolation: int) -> None:
    fcurve = fcurves.new(data_path, index=index)
    points = fcurve.keyframe_points
    points.add(len(frames))
    points.foreach_set("co", np.column_stack([frames, values]).astype(np.float32).ravel())
    points.foreach_set("interpolation", np.full(len(frames), interpolation, dtype=np.int32))
    fcurve.update()


def clip_frame_offset(shot: Shot) -> int:
    """Clip frames before job frame 0: the footage clip starts at footage position `first_index`."""
    found = find_footage_clip(shot.job)
    if found is not None and found[0] == shot.clip and shot.job.source_step == 1:
        return shot.job.source_start - found[1]
    return 0


def _markers(data: TracksData, shot: Shot) -> None:
    """Clip tracks named "Shotfield NNN", a marker per frame. bpy cannot remove a clip track, so an earlier
    import's tracks are reused by name (their markers replaced), and those no longer wanted are muted."""
    tracking = shot.clip.tracking
    offset = clip_frame_offset(shot)
    tracks = data.tracks
    F = tracks.frames
    co = np.stack([tracks.xy[..., 0] / data.width, 1.0 - tracks.xy[..., 1] / data.height], axis=-1)
    co = np.nan_to_num(co, nan=0.5)
    existing = {t.name: t for t in tracking.tracks if t.name.startswith(TRACK_PREFIX + " ")}
    wanted = {f"{TRACK_PREFIX} {int(k):03d}" for k in data.points}
    for name, old in existing.items():
        if name not in wanted:
            old.markers.foreach_set("mute", np.ones(len(old.markers), bool))
    for k in data.points:
        name = f"{TRACK_PREFIX} {int(k):03d}"
        track = existing.get(name) or tracking.tracks.new(name=name, frame=1 + offset)
        for frame in [m.frame for m in track.markers if not 1 + offset <= m.frame <= offset + F]:
            track.markers.delete_frame(frame)
        for i in range(F):  # bpy has no bulk insert; the values are set in bulk below
            track.markers.insert_frame(1 + offset + i, co=(0.5, 0.5))
        frames = np.empty(len(track.markers), np.int32)
        track.markers.foreach_get("frame", frames)
        index = frames - 1 - offset             # markers are kept in frame order: one per job frame
        if len(index) != F or np.any(index != np.arange(F)):
            raise ImportFailed(f"clip track {track.name}: expected one marker per frame")
        track.markers.foreach_set("co", co[:, k].astype(np.float32).ravel())
        track.markers.foreach_set("mute", ~tracks.visible[:, k])
        track.select = False
