"""Helpers shared by the camera formats (numpy + standard library): rotations as quaternions, pinhole
intrinsics, frame image names and exact number formatting.

Quaternions are Hamilton quaternions ordered `(w, x, y, z)` (COLMAP's and USD's order), unit length,
with `w >= 0` so that each rotation has one representative.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..cameras_json import Cameras


class Pinhole(NamedTuple):
    """Pinhole intrinsics in pixels, pixel-corner origin (exporters/conventions.py)."""

    fx: float
    fy: float
    cx: float
    cy: float


def pinhole_from_K(K: np.ndarray) -> Pinhole:
    """(3, 3) -> Pinhole. Skew must be zero: none of the camera formats here can store it."""
    K = np.asarray(K, dtype=np.float64)
    assert K.shape == (3, 3), K.shape
    if abs(K[0, 1]) > 1e-9 * abs(K[0, 0]):
        raise ValueError("K has skew; the camera formats cannot represent it")
    return Pinhole(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))


def K_from_pinhole(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """-> (3, 3) float64"""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def quat_wxyz_from_matrix(R: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) -> unit quaternion (4,) `(w, x, y, z)` with w >= 0.

    Shepperd's method: branch on the largest of w, x, y, z so that the division is always well
    conditioned (also for rotations near 180 degrees, where w -> 0).
    """
    R = np.asarray(R, dtype=np.float64)
    assert R.shape == (3, 3), R.shape
    trace = R[0, 0] + R[1, 1] + R[2, 2]
    diag = (trace, R[0, 0], R[1, 1], R[2, 2])
    k = int(np.argmax(diag))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif k == 1:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif k == 2:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def matrix_from_quat_wxyz(q) -> np.ndarray:
    """Quaternion (4,) `(w, x, y, z)`, normalised here -> rotation matrix (3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    assert q.shape == (4,), q.shape
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def image_name(index: int) -> str:
    """Frame index -> the job folder's image name, `00042.png`."""
    return f"{int(index):05d}.png"


def num(x: float) -> str:
    """A float as the shortest text that reads back to the same float64 (text formats round-trip exactly)."""
    return repr(float(x))


def check_cameras(cameras: Cameras) -> None:
    """Shapes and finiteness at the public boundary of every writer."""
    if not cameras.frames:
        raise ValueError("no camera frames to export")
    for f in cameras.frames:
        K, pose = np.asarray(f.K), np.asarray(f.world_from_camera)
        assert K.shape == (3, 3), (f.index, K.shape)
        assert pose.shape == (4, 4), (f.index, pose.shape)
        if not (np.all(np.isfinite(K)) and np.all(np.isfinite(pose))):
            raise ValueError(f"frame {f.index}: K or world_from_camera is not finite")
