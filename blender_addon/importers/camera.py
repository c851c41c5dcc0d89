"""The solved camera (`camera/cameras.json`) as an animated Blender camera, the footage behind it.

Phase 1, `read(job)` / `prepare(cameras)`: read the file through `exporters` and turn every frame into
Blender values (object matrix, lens, shift) with numpy, checking what Blender cannot represent. Nothing
in Blender changes. Phase 2, `create(data, shot)`: build the camera and its keyframes (the orchestrator
links it into the shot's collection and makes it the scene camera).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import bpy
import numpy as np
from mathutils import Matrix

from ..shared_formats import cameras_json, conventions
from .base import Built, ImportFailed, JobFolder, Shot, tag

NAME = "camera"
LABEL = "Camera"
ICON = "CAMERA_DATA"
REQUIRES = ("footage",)     # the footage clip becomes the camera's background
FILE = "camera/cameras.json"


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


@dataclass
class CameraData:
    cameras: cameras_json.Cameras
    animation: CameraAnimation


def available(job: JobFolder) -> bool:
    return job.file(FILE).is_file()


def read(job: JobFolder) -> CameraData:
    """Read and check the job's cameras.json. Raises ImportFailed or CamerasFileError."""
    cameras = cameras_json.read_cameras(job.file(FILE))
    return CameraData(cameras, prepare(cameras))


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


def create(data: CameraData, shot: Shot) -> Built:
    """An animated camera: job frame index i at scene frame `shot.frame_start + i`, with `shot.clip` (if any)
    as its background. Not linked to a scene yet."""
    anim = data.animation
    name = f"{shot.job.name} Camera"
    camera_data = bpy.data.cameras.new(name)
    obj = tag(bpy.data.objects.new(name, camera_data), NAME, name)

    frames = (shot.frame_start + anim.index).astype(np.float64)
    obj.rotation_mode = "XYZ"
    location = anim.matrix_world[:, :3, 3]
    rotation = _euler_path(anim.matrix_world[:, :3, :3])
    fcurves = new_fcurves(obj, f"{name} Action")
    for axis in range(3):
        _keyframes(fcurves, "location", axis, frames, location[:, axis])
        _keyframes(fcurves, "rotation_euler", axis, frames, rotation[:, axis])
    obj.matrix_world = Matrix(anim.matrix_world[0].tolist())  # the first pose until the scene is evaluated

    # Intrinsics (exporters/conventions.py): sensor_fit HORIZONTAL, so the sensor width spans the image
    # width: lens = fx * sensor_width / W; shift_x = -(cx - W/2) / W, shift_y = (cy - H/2) / W * fx/fy
    # (image y points down, Blender's shift_y up). All three are unchanged when the image is scaled, so
    # the camera also fits a render at the footage's full size.
    camera_data.sensor_fit = "HORIZONTAL"
    camera_data.sensor_width = anim.sensor_width_mm
    data_fcurves = None
    for prop, values in (("lens", anim.lens_mm), ("shift_x", anim.shift_x), ("shift_y", anim.shift_y)):
        setattr(camera_data, prop, float(values[0]))
        if not np.allclose(values, values[0], rtol=1e-7, atol=1e-9):  # animate only what varies
            if data_fcurves is None:
                data_fcurves = new_fcurves(camera_data, f"{name} Lens Action")
            _keyframes(data_fcurves, prop, 0, frames, values)
    # Keep the clipping range around the scene: solved worlds are scaled to a camera height of 1.5 units.
    camera_data.clip_start, camera_data.clip_end = 0.01, 1000.0

    if shot.clip is not None:
        _set_background(camera_data, shot.clip)
    return Built(objects=[obj], camera=obj, resolution=(anim.width, anim.height),
                 pixel_aspect=(anim.pixel_aspect_x, anim.pixel_aspect_y),
                 last_frame_index=int(anim.index[-1]), warnings=list(anim.warnings))


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


def new_fcurves(id_data, action_name: str):
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


def _set_background(camera_data, clip) -> None:
    """Show `clip` behind the camera view (its timing is the clip's `frame_start`, set by the orchestrator)."""
    camera_data.show_background_images = True
    background = camera_data.background_images.new()
    background.source = "MOVIE_CLIP"
    background.use_camera_clip = False  # this clip, not whichever is the scene's active clip later
    background.clip = clip
    # The clip shows exactly the solved image (at the working size or the footage's own), so it fills the frame.
    background.frame_method = "STRETCH"
    background.alpha = 1.0
