"""What the camera-solve peers produce, turned into Shotfield's files (numpy only: no pycolmap, no bpy).

Every solver's answer becomes a job folder's `camera/cameras.json` (OpenCV convention, `world_from_camera`,
only the frames it solved) and `camera/points.ply` (its sparse points, in the same world), so one
evaluation reads Shotfield and the peers alike. The conversions are here, apart from the libraries that
produce them, so that tests can pin them on synthetic rigs:

- pycolmap: `Image.cam_from_world().matrix()` is the 3x4 [R | t] mapping world to camera, camera axes
  already OpenCV's (x right, y down, z forward): world_from_camera = [Rᵀ | -Rᵀ t].
- Blender's tracker: `MovieReconstructedCamera.matrix` is a Blender camera's object matrix (camera to
  world, -Z forward, +Y up) in the tracker's world: `exporters.conventions.opencv_world_from_camera_from_blender`.
  Its `frame` is a clip frame; clip frame `frame_start` shows the first image of the sequence.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from exporters.atomic import write_bytes
from exporters.cameras_json import CameraFrame, Cameras, write_cameras
from exporters.conventions import opencv_world_from_camera_from_blender

#: COLMAP's default focal length for images without EXIF: 1.2 · max(width, height) pixels
#: (ImageReaderOptions.default_focal_length_factor). Blender's tracker starts from the same guess.
DEFAULT_FOCAL_FACTOR = 1.2


def initial_focal_px(width: int, height: int) -> float:
    return DEFAULT_FOCAL_FACTOR * max(width, height)


def world_from_camera_from_cam_from_world(cam_from_world: np.ndarray) -> np.ndarray:
    """pycolmap's camera_from_world (3, 4) or (4, 4) [R | t] -> OpenCV world_from_camera (4, 4)."""
    m = np.asarray(cam_from_world, np.float64)
    assert m.shape in ((3, 4), (4, 4)), m.shape
    r, t = m[:3, :3], m[:3, 3]
    out = np.eye(4)
    out[:3, :3] = r.T
    out[:3, 3] = -r.T @ t
    return out


def K_matrix(f: float, cx: float, cy: float, fy: float | None = None) -> np.ndarray:
    return np.array([[f, 0.0, cx], [0.0, f if fy is None else fy, cy], [0.0, 0.0, 1.0]])


@dataclass
class BlenderSolution:
    """What `blender_tracker.py` reads back from Blender (plain Python values)."""

    width: int
    height: int
    frames: int                                      # frames in the clip
    frame_start: int                                 # clip frame of the first image
    cameras: list                                    # [(clip frame, 4x4 nested list: Blender camera-to-world)]
    focal_px: float
    principal_point_px: tuple[float, float]          # Blender's: (0, 0) = bottom-left corner of the image
    average_error: float                             # px, NaN when the solve failed
    bundles: list = field(default_factory=list)      # [[x, y, z]] track bundles, tracker world
    details: dict = field(default_factory=dict)


def cameras_from_blender_solution(solution: BlenderSolution) -> Cameras:
    """The reconstructed cameras in OpenCV convention, indexed from 0 at the first image; a camera with a
    non-finite matrix (a diverged solve) counts as missing.

    Blender measures the principal point from the bottom-left corner (y up); Shotfield's K from the
    top-left corner (y down): cy = height - y_blender.
    """
    cx, cy_up = solution.principal_point_px
    K = K_matrix(solution.focal_px, cx, solution.height - cy_up)
    frames = []
    for frame, matrix in sorted(solution.cameras, key=lambda c: c[0]):
        matrix = np.asarray(matrix, np.float64)
        if not np.all(np.isfinite(matrix)):
            continue
        pose = opencv_world_from_camera_from_blender(matrix)
        frames.append(CameraFrame(int(frame) - int(solution.frame_start), K.copy(), pose))
    extra = {"method": "blender-tracker", "frame_count": int(solution.frames),
             "registered": len(frames),
             "reprojection_error_px": solution.average_error if math.isfinite(solution.average_error) else None,
             **solution.details}
    return Cameras(solution.width, solution.height, frames, extra)


def write_solution(job: str | os.PathLike, cameras: Cameras, points) -> None:
    """JOB/camera/cameras.json and JOB/camera/points.ply (xyz only) of a peer's solve."""
    job = Path(job)
    write_cameras(job / "camera" / "cameras.json", cameras)
    write_points_ply(job / "camera" / "points.ply", np.asarray(points, np.float64).reshape(-1, 3))


def write_points_ply(path: str | os.PathLike, points: np.ndarray) -> None:
    """Binary little-endian PLY with float32 x y z."""
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(points)}\n"
              "property float x\nproperty float y\nproperty float z\nend_header\n")
    write_bytes(path, header.encode("ascii") + np.asarray(points, "<f4").tobytes())


_PLY_TYPES = {"char": "i1", "uchar": "u1", "int8": "i1", "uint8": "u1", "short": "<i2", "ushort": "<u2",
              "int16": "<i2", "uint16": "<u2", "int": "<i4", "uint": "<u4", "int32": "<i4", "uint32": "<u4",
              "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8"}


def read_points_ply(path: str | os.PathLike) -> np.ndarray:
    """The x y z of the vertices of a binary little-endian PLY whose only element is `vertex` with scalar
    properties (what Shotfield's solve and `write_points_ply` write). Returns (P, 3) float64."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    lines = data[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise ValueError(f"{path}: only binary little-endian PLY is read here")
    count, props = 0, []
    for line in lines:
        parts = line.split()
        if parts[:2] == ["element", "vertex"]:
            count = int(parts[2])
        elif parts[:1] == ["element"]:
            raise ValueError(f"{path}: unexpected element {parts[1]!r}")
        elif parts[:1] == ["property"]:
            if parts[1] == "list":
                raise ValueError(f"{path}: list properties are not read here")
            props.append((parts[2], _PLY_TYPES[parts[1]]))
    vertex = np.frombuffer(data, dtype=np.dtype(props), count=count, offset=end)
    return np.stack([vertex[k].astype(np.float64) for k in "xyz"], axis=1) if count else np.zeros((0, 3))
