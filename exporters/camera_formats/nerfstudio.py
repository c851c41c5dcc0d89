"""nerfstudio `transforms.json` (numpy + standard library).

Conventions, as nerfstudio's documentation ("Data conventions") and its dataparser
(nerfstudio/data/dataparsers/nerfstudio_dataparser.py) define them:

- ``transform_matrix`` (4x4) is camera-to-world in the OpenGL/Blender camera convention (+X right,
  +Y up, looking down -Z): Shotfield's OpenCV ``world_from_camera`` with the camera's y and z axes
  flipped, ``world_from_camera @ diag(1, -1, -1, 1)``. The world frame is left as it is (Shotfield's is
  already Z up, as nerfstudio's world is); nerfstudio re-orients and re-centres poses itself at load
  time (``--orientation-method``, ``--center-method``).
- ``fl_x, fl_y, cx, cy`` are pixels. nerfstudio shoots the ray of pixel (i, j) through (i + 0.5, j + 0.5)
  (``get_image_coords(pixel_offset=0.5)``), so its cx, cy share Shotfield's pixel-corner origin, as in
  nerfstudio's own COLMAP converter, which copies COLMAP's principal point unchanged.
- ``camera_model`` is ``"OPENCV"`` with zero distortion (``k1 k2 p1 p2`` = 0), what nerfstudio's COLMAP
  converter writes for PINHOLE cameras. ``w`` and ``h`` are top-level. The focal lengths and principal
  point are top-level when every frame shares them, else per frame (the dataparser accepts either,
  key by key).
- ``file_path`` is ``<image_dir>/NNNNN.png``, relative to the folder holding transforms.json; nerfstudio
  sorts frames by file name, which keeps the frame order.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..atomic import write_json
from ..cameras_json import CameraFrame, Cameras
from ..conventions import OPENCV_FROM_BLENDER_CAMERA
from ._common import K_from_pinhole, check_cameras, image_name, pinhole_from_K

CAMERA_MODEL = "OPENCV"
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy")


def nerfstudio_from_opencv(world_from_camera: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world (4, 4) -> nerfstudio transform_matrix (4, 4): flip the camera's y and z."""
    return np.asarray(world_from_camera, dtype=np.float64) @ OPENCV_FROM_BLENDER_CAMERA


def opencv_from_nerfstudio(transform_matrix: np.ndarray) -> np.ndarray:
    """Inverse of `nerfstudio_from_opencv` (the flip is its own inverse). Accepts (3, 4) or (4, 4)."""
    m = np.asarray(transform_matrix, dtype=np.float64)
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    assert m.shape == (4, 4), m.shape
    return m @ OPENCV_FROM_BLENDER_CAMERA


def transforms_dict(cameras: Cameras, image_dir: str = "frames") -> dict:
    """Cameras -> the transforms.json object."""
    check_cameras(cameras)
    pinholes = [pinhole_from_K(f.K) for f in cameras.frames]
    shared = all(p == pinholes[0] for p in pinholes)
    out: dict = {"camera_model": CAMERA_MODEL, "w": int(cameras.width), "h": int(cameras.height)}
    if shared:
        out.update(zip(INTRINSIC_KEYS, pinholes[0]))
    out.update(k1=0.0, k2=0.0, p1=0.0, p2=0.0)
    frames = []
    for f, p in zip(cameras.frames, pinholes):
        frame = {"file_path": f"{image_dir.rstrip('/')}/{image_name(f.index)}" if image_dir else image_name(f.index),
                 "transform_matrix": nerfstudio_from_opencv(f.world_from_camera).tolist()}
        if not shared:
            frame.update(zip(INTRINSIC_KEYS, p))
        if f.time is not None:
            frame["time"] = float(f.time)
        frames.append(frame)
    out["frames"] = frames
    return out


def write_transforms(path: str | os.PathLike, cameras: Cameras, image_dir: str = "frames") -> Path:
    """Write transforms.json at `path` (atomic); `image_dir` is the images' folder relative to it."""
    write_json(path, transforms_dict(cameras, image_dir))
    return Path(path)


def cameras_from_transforms(data: dict, source: str = "transforms.json") -> Cameras:
    """transforms.json object -> Cameras (pinhole; distortion other than zero is refused)."""
    distortion = [float(data.get(k, 0.0)) for k in ("k1", "k2", "k3", "k4", "p1", "p2")]
    if any(distortion):
        raise ValueError(f"{source}: lens distortion {distortion} cannot be represented by a pinhole K")
    frames = []
    for n, fr in enumerate(data["frames"]):
        if any(float(fr.get(k, 0.0)) for k in ("k1", "k2", "k3", "k4", "p1", "p2")):
            raise ValueError(f"{source}: frames[{n}] has lens distortion")
        fx, fy, cx, cy = (float(fr[k] if k in fr else data[k]) for k in INTRINSIC_KEYS)
        stem = Path(fr["file_path"]).stem
        time = fr.get("time")
        frames.append(CameraFrame(int(stem) if stem.isdigit() else n, K_from_pinhole(fx, fy, cx, cy),
                                  opencv_from_nerfstudio(fr["transform_matrix"]),
                                  None if time is None else float(time)))
    width = int(data["w"]) if "w" in data else int(data["frames"][0]["w"])
    height = int(data["h"]) if "h" in data else int(data["frames"][0]["h"])
    return Cameras(width, height, frames)


def read_transforms(path: str | os.PathLike) -> Cameras:
    path = Path(path)
    return cameras_from_transforms(json.loads(path.read_text(encoding="utf-8")), str(path))
