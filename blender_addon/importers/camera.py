"""The solved camera (`camera/cameras.json`) as an animated Blender camera.

Phase 1, `read(path)` / `prepare(cameras)`: read the file through `exporters` and turn every frame into
Blender values (object matrix, lens, shift) with numpy, checking what Blender cannot represent. Nothing
in Blender changes. Phase 2, `create(context, cameras, ...)`: build the camera and its keyframes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from ..shared_formats import cameras_json, conventions, job_manifest
from . import ImportFailed

CAMERAS_FILE = Path("camera") / "cameras.json"
DEFAULT_NAME = "Shotfield Camera"


@dataclass
class CameraJob:
    """What phase 1 read: the cameras, and the scene timing from job.json when there is one."""

    cameras: cameras_json.Cameras
    fps: float | None = None
    frame_count: int | None = None   # working frames of the job (cameras may skip some)
    warnings: list[str] = field(default_factory=list)


@dataclass
class CameraAnimation:
    """Per-frame Blender values for F frames, sorted by frame index."""

    index: np.ndarray           # (F,) int, the job's frame indices
    matrix_world: np.ndarray    # (F, 4, 4) Blender camera object matrices (looking down -Z, +Y up)
    lens_mm: np.ndarray         # (F,)
    shift_x: np.ndarray         # (F,)
    shift_y: np.ndarray         # (F,)
    sensor_width_mm: float
    pixel_aspect_x: float
    pixel_aspect_y: float
    width: int
    height: int
    warnings: list[str] = field(default_factory=list)


def read(path: str | os.PathLike) -> CameraJob:
    """Read a job folder's cameras (or a cameras.json file directly) and, if present, its job.json."""
    path = Path(path)
    job_dir = path.parent.parent if path.suffix == ".json" else path
    cameras_path = path if path.suffix == ".json" else path / CAMERAS_FILE
    if not job_dir.is_dir():
        raise ImportFailed(f"{job_dir}: job folder not found")
    cameras = cameras_json.read_cameras(cameras_path)
    job = CameraJob(cameras)
    if (job_dir / job_manifest.MANIFEST).is_file():
        manifest = job_manifest.read_manifest(job_dir)
        fps, frames = manifest.get("fps"), manifest.get("frames") or {}
        if isinstance(fps, (int, float)) and fps > 0:
            job.fps = float(fps)
        if isinstance(frames.get("count"), int) and frames["count"] > 0:
            job.frame_count = frames["count"]
    job.warnings = prepare(cameras).warnings  # the checks, before anything is built
    return job


def prepare(cameras: cameras_json.Cameras) -> CameraAnimation:
    """OpenCV cameras -> Blender values. Raises ImportFailed for what a Blender camera cannot be."""
    if not cameras.frames:
        raise ImportFailed("cameras.json has no frames: the solve found no camera")
    frames = sorted(cameras.frames, key=lambda f: f.index)
    index = np.array([f.index for f in frames])
    if len(np.unique(index)) != len(index) or index[0] < 0:
        raise ImportFailed("cameras.json: frame indices must be distinct and not negative")

    world_from_camera = np.stack([f.world_from_camera for f in frames])
    rotation = world_from_camera[:, :3, :3]
    # A pose must be a rotation: a reflection (det < 0) means a handedness/convention mix-up upstream,
    # and visible scale would skew the camera. Small float noise is projected away below.
    u, s, vt = np.linalg.svd(rotation)
    if np.any(np.abs(s - 1.0) > 1e-3) or np.any(np.linalg.det(rotation) < 0):
        raise ImportFailed("cameras.json: world_from_camera is not a rotation + translation on every frame")
    world_from_camera = world_from_camera.copy()
    world_from_camera[:, :3, :3] = u @ vt

    # OpenCV camera (x right, y down, z forward) -> Blender camera (x right, y up, looking down -Z):
    # blender_world_from_camera = world_from_camera @ diag(1, -1, -1, 1). Same world frame (Z up).
    matrix_world = conventions.blender_world_from_opencv_world_from_camera(world_from_camera)

    if any(f.K[0, 0] <= 0 or f.K[1, 1] <= 0 for f in frames):
        raise ImportFailed("cameras.json: focal lengths must be positive")
    try:
        lenses = [conventions.blender_lens_from_K(f.K, cameras.width, cameras.height) for f in frames]
    except ValueError as exc:  # skew
        raise ImportFailed(f"cameras.json: {exc}") from exc
    lens_mm = np.array([lens.lens_mm for lens in lenses])
    if lens_mm.min() < 1.0:  # Blender's lens minimum; fx < W/36 would be a field of view near 180 degrees
        raise ImportFailed(f"cameras.json: focal length too short for a pinhole camera ({lens_mm.min():.3g} mm)")

    warnings = []
    # Pixel aspect is a scene render setting in Blender, so it cannot follow the frames.
    ycor = np.array([f.K[0, 0] / f.K[1, 1] for f in frames])
    if np.ptp(ycor) > 1e-6 * ycor[0]:
        warnings.append("the pixel aspect (fx/fy) changes between frames; Blender keeps the first frame's")
    return CameraAnimation(
        index=index,
        matrix_world=matrix_world,
        lens_mm=lens_mm,
        shift_x=np.array([lens.shift_x for lens in lenses]),
        shift_y=np.array([lens.shift_y for lens in lenses]),
        sensor_width_mm=lenses[0].sensor_width_mm,
        pixel_aspect_x=lenses[0].pixel_aspect_x,
        pixel_aspect_y=lenses[0].pixel_aspect_y,
        width=cameras.width,
        height=cameras.height,
        warnings=warnings,
    )


def create(context, cameras: cameras_json.Cameras, name: str = DEFAULT_NAME, frame_start: int = 1,
           clip: bpy.types.MovieClip | None = None, fps: float | None = None,
           frame_count: int | None = None) -> bpy.types.Object:
    """Build an animated camera from `cameras`, make it the scene camera and set the render size.

    Job frame index i goes to scene frame `frame_start + i`. The scene's frame range covers
    `frame_count` frames (default: up to the last camera) and its frame rate becomes `fps` if given.
    A Movie Clip, if given, becomes the camera's background, its first frame at `frame_start`.
    """
    anim = prepare(cameras)
    scene = context.scene
    data = bpy.data.cameras.new(name)
    obj = bpy.data.objects.new(name, data)
    (getattr(context, "collection", None) or scene.collection).objects.link(obj)

    frames = (frame_start + anim.index).astype(np.float64)
    obj.rotation_mode = "XYZ"
    location = anim.matrix_world[:, :3, 3]
    rotation = _euler_path(anim.matrix_world[:, :3, :3])
    fcurves = _new_fcurves(obj, f"{name} Action")
    for axis in range(3):
        _keyframes(fcurves, "location", axis, frames, location[:, axis])
        _keyframes(fcurves, "rotation_euler", axis, frames, rotation[:, axis])

    # Intrinsics (exporters/conventions.py): sensor_fit HORIZONTAL, so the sensor width spans the image
    # width: lens = fx * sensor_width / W; shift_x = -(cx - W/2) / W, shift_y = (cy - H/2) / W * fx/fy
    # (image y points down, Blender's shift_y up).
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = anim.sensor_width_mm
    data_fcurves = None
    for prop, values in (("lens", anim.lens_mm), ("shift_x", anim.shift_x), ("shift_y", anim.shift_y)):
        setattr(data, prop, float(values[0]))
        if not np.allclose(values, values[0], rtol=1e-7, atol=1e-9):  # animate only what varies
            if data_fcurves is None:
                data_fcurves = _new_fcurves(data, f"{name} Lens Action")
            _keyframes(data_fcurves, prop, 0, frames, values)

    render = scene.render
    render.resolution_x, render.resolution_y = anim.width, anim.height
    render.resolution_percentage = 100
    render.pixel_aspect_x, render.pixel_aspect_y = anim.pixel_aspect_x, anim.pixel_aspect_y
    if fps:
        # Blender's rate is fps / fps_base with an integer fps: 29.97 -> 30 / 1.001.
        render.fps = max(1, round(fps))
        render.fps_base = render.fps / fps
    count = max(frame_count or 0, int(anim.index[-1]) + 1)
    scene.frame_start = frame_start
    scene.frame_end = frame_start + count - 1
    scene.camera = obj

    if clip is not None:
        _set_background(data, clip, frame_start)
        scene.active_clip = clip
    scene.frame_set(frame_start + int(anim.index[0]))
    return obj


def _euler_path(rotations: np.ndarray) -> np.ndarray:
    """(F, 3, 3) rotations -> (F, 3) XYZ Euler angles without jumps of 2*pi or gimbal flips:
    each frame takes the solution nearest to the previous one (Blender's Euler filter)."""
    out = np.empty((len(rotations), 3))
    previous = None
    for i, r in enumerate(rotations):
        euler = Matrix(r.tolist()).to_euler("XYZ", previous) if previous is not None else Matrix(r.tolist()).to_euler("XYZ")
        out[i] = euler
        previous = euler
    return out


def _new_fcurves(id_data, action_name: str):
    """A new action on `id_data`; returns the collection to add its F-curves to."""
    action = bpy.data.actions.new(action_name)
    animation_data = id_data.animation_data_create()
    if hasattr(action, "slots"):
        # Blender 4.4+: slotted actions; F-curves live in a channel bag of a slot on a keyframe strip.
        slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
        strip = action.layers.new("Layer").strips.new(type="KEYFRAME")
        animation_data.action = action
        animation_data.action_slot = slot
        return strip.channelbag(slot, ensure=True).fcurves
    animation_data.action = action  # Blender 4.2/4.3
    return action.fcurves


_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def _keyframes(fcurves, data_path: str, index: int, frames: np.ndarray, values: np.ndarray) -> None:
    """One F-curve with a key per frame, set in bulk (one `foreach_set` instead of a keyframe_insert per frame).

    Linear interpolation: the solve is exact at whole frames only, and linear keeps sub-frames (motion
    blur) between the solved poses without Bezier overshoot.
    """
    fcurve = fcurves.new(data_path, index=index)
    points = fcurve.keyframe_points
    points.add(len(frames))
    points.foreach_set("co", np.column_stack([frames, values]).astype(np.float32).ravel())
    points.foreach_set("interpolation", np.full(len(frames), _LINEAR, dtype=np.int32))
    fcurve.update()


def _set_background(camera_data, clip, frame_start: int) -> None:
    """Show `clip` behind the camera view, its first frame (frames/00000.png) at scene frame `frame_start`."""
    clip.frame_start = frame_start
    camera_data.show_background_images = True
    background = camera_data.background_images.new()
    background.source = "MOVIE_CLIP"
    background.use_camera_clip = False  # this clip, not whichever is the scene's active clip later
    background.clip = clip
    # The clip is exactly the solved image (W x H pixels), so it fills the camera frame.
    background.frame_method = "STRETCH"
    background.alpha = 1.0
