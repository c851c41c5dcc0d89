"""The coordinate conventions of Shotfield, in one place (numpy only, so the add-on can use it too).

Image coordinates
    (0, 0) is the top-left corner of the top-left pixel; pixel centres are at (i + 0.5, j + 0.5), the
    COLMAP convention. `K` maps camera coordinates to these coordinates. Points are `(x, y)`: column first.

Cameras
    OpenCV axes: x right, y down, z forward. `world_from_camera` (4x4) maps camera to world.
    Blender cameras look down -Z with +Y up, so
    ``blender_world_from_camera = world_from_camera @ diag(1, -1, -1, 1)`` (the matrix is its own inverse).

Intrinsics <-> Blender lens
    Shotfield sets Blender cameras to sensor_fit = 'HORIZONTAL', so the sensor width spans the image width:
    ``lens_mm = fx * sensor_width_mm / W``; the shift is a fraction of the width,
    ``shift_x = -(cx - W/2) / W`` and ``shift_y = (cy - H/2) / W * ycor``. For landscape and square frames
    this is DESIGN.md's ``/ max(W, H)``; for portrait frames Blender's horizontal fit divides by W, which
    the projection test in tests/exporters/test_conventions.py pins. ``ycor = fx / fy`` is Blender's
    pixel aspect (pixel_aspect_y / pixel_aspect_x), 1 for square pixels.

World
    Right-handed, Z up (Blender's), ground at Z = 0 where a ground plane is found.

Depth is planar Z (along the optical axis, not the ray length); scene flow is world units per frame,
forward (t -> t+1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Flips the y and z camera axes: OpenCV (x right, y down, z forward) <-> Blender/OpenGL (x right, y up, -z forward).
OPENCV_FROM_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])

DEFAULT_SENSOR_WIDTH_MM = 36.0


def blender_world_from_opencv_world_from_camera(world_from_camera: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world (..., 4, 4) -> Blender camera object matrix (..., 4, 4). Same world frame."""
    world_from_camera = np.asarray(world_from_camera, dtype=np.float64)
    assert world_from_camera.shape[-2:] == (4, 4), world_from_camera.shape
    return world_from_camera @ OPENCV_FROM_BLENDER_CAMERA


def opencv_world_from_camera_from_blender(blender_matrix_world: np.ndarray) -> np.ndarray:
    """Blender camera object matrix (..., 4, 4) -> OpenCV camera-to-world (..., 4, 4). Scale is removed."""
    m = np.array(blender_matrix_world, dtype=np.float64)
    assert m.shape[-2:] == (4, 4), m.shape
    # An object's matrix may carry scale; a camera pose must not.
    m[..., :3, :3] /= np.linalg.norm(m[..., :3, :3], axis=-2, keepdims=True)
    return m @ OPENCV_FROM_BLENDER_CAMERA


@dataclass(frozen=True)
class BlenderLens:
    """What a Blender camera + render settings need to reproduce a pinhole `K` at `width` x `height`."""

    lens_mm: float
    sensor_width_mm: float
    shift_x: float
    shift_y: float
    pixel_aspect_x: float
    pixel_aspect_y: float
    width: int
    height: int
    sensor_fit: str = "HORIZONTAL"


def blender_lens_from_K(K: np.ndarray, width: int, height: int,
                        sensor_width_mm: float = DEFAULT_SENSOR_WIDTH_MM) -> BlenderLens:
    """Pinhole intrinsics (3, 3) at `width` x `height` pixels -> Blender lens, sensor and shift.

    Skew must be zero (Blender cannot represent it).
    """
    K = np.asarray(K, dtype=np.float64)
    assert K.shape == (3, 3), K.shape
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if abs(K[0, 1]) > 1e-9 * fx:
        raise ValueError("K has skew; Blender cameras cannot represent it")
    ycor = fx / fy
    # Blender wants both pixel aspects >= 1; only their ratio matters.
    aspect_x, aspect_y = (1.0, ycor) if ycor >= 1.0 else (1.0 / ycor, 1.0)
    return BlenderLens(
        lens_mm=float(fx * sensor_width_mm / width),
        sensor_width_mm=float(sensor_width_mm),
        shift_x=float(-(cx - width / 2.0) / width),
        shift_y=float((cy - height / 2.0) / width * ycor),
        pixel_aspect_x=float(aspect_x),
        pixel_aspect_y=float(aspect_y),
        width=int(width),
        height=int(height),
    )


def K_from_blender_lens(lens: BlenderLens) -> np.ndarray:
    """Inverse of `blender_lens_from_K` (horizontal sensor fit)."""
    if lens.sensor_fit != "HORIZONTAL":
        raise ValueError(f"only sensor_fit 'HORIZONTAL' is supported, got {lens.sensor_fit!r}")
    w, h = lens.width, lens.height
    ycor = lens.pixel_aspect_y / lens.pixel_aspect_x
    fx = lens.lens_mm * w / lens.sensor_width_mm
    fy = fx / ycor
    cx = w / 2.0 - lens.shift_x * w
    cy = h / 2.0 + lens.shift_y * w / ycor
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def project_points(K: np.ndarray, world_from_camera: np.ndarray, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) -> pixel coordinates (N, 2) `(x, y)` and planar depth (N,) with an OpenCV camera."""
    points_world = np.asarray(points_world, dtype=np.float64)
    assert points_world.ndim == 2 and points_world.shape[1] == 3, points_world.shape
    camera_from_world = np.linalg.inv(np.asarray(world_from_camera, dtype=np.float64))
    pc = points_world @ camera_from_world[:3, :3].T + camera_from_world[:3, 3]
    z = pc[:, 2]
    uvw = pc @ np.asarray(K, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = uvw[:, :2] / uvw[:, 2:3]
    return xy, z


def unproject_depth(K: np.ndarray, world_from_camera: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Planar depth map (H, W) -> world points (H, W, 3) through the pixel centres."""
    depth = np.asarray(depth, dtype=np.float64)
    h, w = depth.shape
    xs, ys = pixel_centres(w, h)
    rays = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ np.linalg.inv(np.asarray(K, dtype=np.float64)).T
    pc = rays * depth[..., None]
    world_from_camera = np.asarray(world_from_camera, dtype=np.float64)
    return pc @ world_from_camera[:3, :3].T + world_from_camera[:3, 3]


def pixel_centres(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates `(x, y)` of every pixel centre, each (H, W): x = column + 0.5, y = row + 0.5."""
    return np.meshgrid(np.arange(width, dtype=np.float64) + 0.5, np.arange(height, dtype=np.float64) + 0.5)


def scale_K(K: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Intrinsics for the same camera at another image size `(W, H)`; exact under the pixel-corner origin."""
    sx = to_size[0] / from_size[0]
    sy = to_size[1] / from_size[1]
    return np.diag([sx, sy, 1.0]) @ np.asarray(K, dtype=np.float64)
