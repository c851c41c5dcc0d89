"""Cameras that make convention mistakes visible, and the comparisons the round trips share.

`moving_cameras`: a 640x360 shot whose camera turns through large angles about every axis (yaw round
the whole circle, pitch from -85 to +85 degrees, roll up to +-120), travels, zooms (fx 380..755 px),
has non-square pixels (fy = 1.04 fx) and a principal point well off the image centre that also drifts.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from exporters.cameras_json import CameraFrame, Cameras

WIDTH, HEIGHT = 640, 360


def rot_x(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=float)


def rot_y(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=float)


def rot_z(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=float)


def make_cameras(frames: int = 16, aspect: float = 1.04, zoom: bool = True, drift: bool = True,
                 first_index: int = 0) -> Cameras:
    out = []
    for i in range(frames):
        s = i / max(frames - 1, 1)
        yaw, pitch, roll = math.radians(-175 + 350 * s), math.radians(-85 + 170 * s), math.radians(120 * math.sin(5 * s))
        pose = np.eye(4)
        pose[:3, :3] = rot_z(yaw) @ rot_x(pitch) @ rot_y(roll)
        pose[:3, 3] = [4 * math.cos(2 * s), 3 * math.sin(2 * s) - 1.5, 1.6 + s]
        fx = 380.0 + (375.0 * s if zoom else 0.0)
        cx, cy = 347.25 + (3.5 * s if drift else 0.0), 161.75 - (2.25 * s if drift else 0.0)
        K = np.array([[fx, 0, cx], [0, aspect * fx, cy], [0, 0, 1]])
        out.append(CameraFrame(first_index + i, K, pose))
    return Cameras(WIDTH, HEIGHT, out)


@pytest.fixture
def moving_cameras() -> Cameras:
    return make_cameras()


def points_in_front(cameras: Cameras, per_frame: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Per frame, world points (n, 3) that the OpenCV camera sees inside the image at depths 1.5..20."""
    rng = np.random.default_rng(seed)
    out = []
    for f in cameras.frames:
        xy = rng.uniform([5, 5], [cameras.width - 5, cameras.height - 5], size=(per_frame, 2))
        depth = rng.uniform(1.5, 20, size=per_frame)
        pc = np.column_stack([xy, np.ones(per_frame)]) @ np.linalg.inv(f.K).T * depth[:, None]
        out.append(pc @ f.world_from_camera[:3, :3].T + f.world_from_camera[:3, 3])
    return out


def assert_cameras_match(actual: Cameras, expected: Cameras, rtol: float = 1e-6, check_K: bool = True) -> None:
    """Same size and frame indices; K and world_from_camera equal to `rtol` relative (of each matrix's scale)."""
    assert (actual.width, actual.height) == (expected.width, expected.height)
    assert [f.index for f in actual.frames] == [f.index for f in expected.frames]
    for a, e in zip(actual.frames, expected.frames):
        if check_K:
            np.testing.assert_allclose(a.K, e.K, rtol=rtol, atol=rtol * np.abs(e.K).max(), err_msg=f"K, frame {e.index}")
        np.testing.assert_allclose(a.world_from_camera, e.world_from_camera, rtol=rtol,
                                   atol=rtol * np.abs(e.world_from_camera).max(), err_msg=f"pose, frame {e.index}")
