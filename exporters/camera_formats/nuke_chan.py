"""Nuke `.chan` camera files (numpy + standard library).

One line per frame, eight columns separated by spaces, as Nuke's Camera "import chan file" reads them
(and Blender's Nuke chan add-on, and 3DEqualizer's exporter, write them):

    frame  tx ty tz  rx ry rz  vfov

Conventions chosen here:

- **World axes.** Nuke's 3D world is Y up; Shotfield's is Z up. A Shotfield point (x, y, z) is written
  as Nuke's (x, z, -y): a -90 degree turn about X, so Nuke's ground plane (XZ) is Shotfield's ground
  plane (XY) and nothing is mirrored. The reader turns it back.
- **Camera axes.** A Nuke camera looks down -Z with +Y up (like Blender/OpenGL): the OpenCV camera's
  y and z axes are flipped, as in `exporters.conventions`.
- **Rotation.** Degrees, Nuke's default rotation order ZXY and transform order SRT: the camera's
  rotation matrix (column vectors) is ``Ry(ry) @ Rx(rx) @ Rz(rz)`` (rotate about Z first, then X,
  then Y). Angles are made continuous from frame to frame (the equivalent Euler triple nearest the
  previous frame's, multiples of 360 included) so that Nuke's interpolation between keys never spins.
  At gimbal lock (rx = +-90) rz is taken as 0.
- **Field of view.** ``vfov = 2 atan(H / (2 fy))`` in degrees: the lens's vertical angle of view
  (symmetric, whatever the principal point). Nuke derives the focal length from it through the
  camera's vertical aperture, focal = vaperture / (2 tan(vfov / 2)); for the horizontal view to come
  out right too, set the Nuke camera's vertical aperture to haperture * (H / W) * (fx / fy) before
  importing (Nuke's default 24.576 x 18.672 mm film back is 1.316:1, not the plate's aspect).
- **Frames.** frame = frame_start + the job frame index (frame_start 1, as the Blender add-on uses).
- **Not stored.** A .chan has no principal point and one focal length: the reader puts the principal
  point at the image centre and fx = fy unless told otherwise (`principal_point`, `fx_over_fy`).
  Nuke's window translate would carry the principal point; the JSON/CSV table has it exactly.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..cameras_json import CameraFrame, Cameras
from ..conventions import OPENCV_FROM_BLENDER_CAMERA
from ._common import K_from_pinhole, check_cameras, num, pinhole_from_K

#: Shotfield world (Z up) -> Nuke world (Y up): (x, y, z) -> (x, z, -y).
NUKE_FROM_SHOTFIELD_WORLD = np.array([[1.0, 0.0, 0.0, 0.0],
                                      [0.0, 0.0, 1.0, 0.0],
                                      [0.0, -1.0, 0.0, 0.0],
                                      [0.0, 0.0, 0.0, 1.0]])


def _rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def matrix_from_euler_zxy(rx: float, ry: float, rz: float) -> np.ndarray:
    """Nuke's ZXY rotation order, radians -> (3, 3) = Ry @ Rx @ Rz."""
    return _ry(ry) @ _rx(rx) @ _rz(rz)


def euler_zxy_from_matrix(R: np.ndarray) -> tuple[float, float, float]:
    """(3, 3) = Ry @ Rx @ Rz -> (rx, ry, rz) radians, rx in [-pi/2, pi/2]; rz = 0 at gimbal lock.

    From the product: R[1, 2] = -sin rx; R[1, 0], R[1, 1] = cos rx (sin rz, cos rz);
    R[0, 2], R[2, 2] = cos rx (sin ry, cos ry).
    """
    R = np.asarray(R, dtype=np.float64)
    rx = math.asin(max(-1.0, min(1.0, -R[1, 2])))
    if math.hypot(R[1, 0], R[1, 1]) < 1e-12:  # cos rx == 0: only ry +- rz is defined
        return rx, math.atan2(-R[2, 0], R[0, 0]), 0.0
    return rx, math.atan2(R[0, 2], R[2, 2]), math.atan2(R[1, 0], R[1, 1])


def _nearest_equivalent(angles: tuple[float, float, float], previous: np.ndarray | None) -> np.ndarray:
    """The ZXY Euler triple equal in rotation to `angles` that is nearest to `previous` (radians)."""
    a = np.asarray(angles, dtype=np.float64)
    if previous is None:
        return a
    best = None
    # (rx, ry, rz) and (pi - rx, ry + pi, rz + pi) are the same rotation; then each angle mod 2 pi.
    for cand in (a, np.array([math.pi - a[0], a[1] + math.pi, a[2] + math.pi])):
        cand = cand + 2 * math.pi * np.round((previous - cand) / (2 * math.pi))
        if best is None or np.abs(cand - previous).sum() < np.abs(best - previous).sum():
            best = cand
    return best


def chan_rows(cameras: Cameras, frame_start: int = 1) -> np.ndarray:
    """Cameras -> (F, 8) float64 rows [frame, tx, ty, tz, rx, ry, rz, vfov], Nuke world, degrees."""
    check_cameras(cameras)
    rows, previous = [], None
    for f in cameras.frames:
        pose = NUKE_FROM_SHOTFIELD_WORLD @ np.asarray(f.world_from_camera, dtype=np.float64) @ OPENCV_FROM_BLENDER_CAMERA
        previous = _nearest_equivalent(euler_zxy_from_matrix(pose[:3, :3]), previous)
        vfov = 2.0 * math.atan(cameras.height / (2.0 * pinhole_from_K(f.K).fy))
        rows.append([frame_start + f.index, *pose[:3, 3], *np.degrees(previous), math.degrees(vfov)])
    return np.array(rows, dtype=np.float64)


def write_chan(path: str | os.PathLike, cameras: Cameras, frame_start: int = 1) -> Path:
    """Write the .chan file (atomic)."""
    lines = [f"{int(r[0])} " + " ".join(num(v) for v in r[1:]) for r in chan_rows(cameras, frame_start)]
    write_text(path, "\n".join(lines) + "\n")
    return Path(path)


def read_chan(path: str | os.PathLike, width: int, height: int, frame_start: int = 1,
              principal_point: tuple[float, float] | None = None, fx_over_fy: float = 1.0) -> Cameras:
    """A .chan file -> Cameras at `width` x `height`, back in Shotfield's world and OpenCV camera axes.

    The file has no principal point (default: the image centre) nor pixel aspect (default fx = fy).
    A seven-column file (no vfov) gets fy from a 36 mm-wide, 50 mm lens.
    """
    cx, cy = (width / 2.0, height / 2.0) if principal_point is None else map(float, principal_point)
    shotfield_from_nuke = np.linalg.inv(NUKE_FROM_SHOTFIELD_WORLD)
    frames = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines()):
        values = line.split()
        if not values or values[0].startswith("#"):
            continue
        if len(values) < 7:
            raise ValueError(f"{path}:{n + 1}: expected 'frame tx ty tz rx ry rz [vfov]', got {line!r}")
        frame, t, angles = float(values[0]), [float(v) for v in values[1:4]], np.radians([float(v) for v in values[4:7]])
        vfov = math.radians(float(values[7])) if len(values) > 7 else 2 * math.atan(18.0 * height / width / 50.0)
        pose = np.eye(4)
        pose[:3, :3] = matrix_from_euler_zxy(*angles)
        pose[:3, 3] = t
        world_from_camera = shotfield_from_nuke @ pose @ OPENCV_FROM_BLENDER_CAMERA
        fy = height / (2.0 * math.tan(vfov / 2.0))
        frames.append(CameraFrame(int(round(frame)) - frame_start, K_from_pinhole(fx_over_fy * fy, fy, cx, cy),
                                  world_from_camera))
    return Cameras(int(width), int(height), frames)
