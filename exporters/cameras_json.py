"""`camera/cameras.json`: per-frame pinhole cameras in OpenCV convention (numpy + standard library).

    {"convention": "opencv", "width": W, "height": H,
     "frames": [{"index": i, "K": 3x3, "world_from_camera": 4x4, "time": float (optional)}, ...]}

The same schema describes the cameras that `shotfield render` is asked to render (with an optional "time").
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import write_json


class CamerasFileError(ValueError):
    """cameras.json is missing or malformed; the message names the file and the problem."""


@dataclass
class CameraFrame:
    index: int
    K: np.ndarray                  # (3, 3) float64, pixels, pixel-corner origin
    world_from_camera: np.ndarray  # (4, 4) float64, OpenCV camera axes
    time: float | None = None      # None: the frame's index


@dataclass
class Cameras:
    width: int
    height: int
    frames: list[CameraFrame] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # other top-level keys are kept (e.g. "model", "tripod")

    @property
    def K(self) -> np.ndarray:
        """(F, 3, 3)"""
        return np.stack([f.K for f in self.frames]) if self.frames else np.zeros((0, 3, 3))

    @property
    def world_from_camera(self) -> np.ndarray:
        """(F, 4, 4)"""
        return np.stack([f.world_from_camera for f in self.frames]) if self.frames else np.zeros((0, 4, 4))


def _matrix(value, shape, where: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CamerasFileError(f"{where}: not a numeric matrix") from exc
    if m.shape != shape or not np.all(np.isfinite(m)):
        raise CamerasFileError(f"{where}: expected a finite {shape[0]}x{shape[1]} matrix, got shape {m.shape}")
    return m


def cameras_from_dict(data: dict, source: str = "cameras.json") -> Cameras:
    if not isinstance(data, dict):
        raise CamerasFileError(f"{source}: expected a JSON object")
    if data.get("convention", "opencv") != "opencv":
        raise CamerasFileError(f"{source}: convention {data.get('convention')!r} is not 'opencv'")
    try:
        width, height = int(data["width"]), int(data["height"])
        raw_frames = data["frames"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CamerasFileError(f"{source}: needs integer 'width', 'height' and a 'frames' list ({exc})") from exc
    if width <= 0 or height <= 0:
        raise CamerasFileError(f"{source}: width and height must be positive, got {width}x{height}")
    frames = []
    for n, fr in enumerate(raw_frames):
        where = f"{source}: frames[{n}]"
        if not isinstance(fr, dict) or "K" not in fr or "world_from_camera" not in fr:
            raise CamerasFileError(f"{where}: needs 'K' and 'world_from_camera'")
        K = _matrix(fr["K"], (3, 3), f"{where}.K")
        pose = _matrix(fr["world_from_camera"], (4, 4), f"{where}.world_from_camera")
        time = fr.get("time")
        frames.append(CameraFrame(int(fr.get("index", n)), K, pose, None if time is None else float(time)))
    extra = {k: v for k, v in data.items() if k not in ("convention", "width", "height", "frames")}
    return Cameras(width, height, frames, extra)


def cameras_to_dict(cameras: Cameras) -> dict:
    frames = []
    for f in cameras.frames:
        d = {"index": int(f.index), "K": np.asarray(f.K).tolist(), "world_from_camera": np.asarray(f.world_from_camera).tolist()}
        if f.time is not None:
            d["time"] = float(f.time)
        frames.append(d)
    return {"convention": "opencv", "width": int(cameras.width), "height": int(cameras.height), **cameras.extra, "frames": frames}


def read_cameras(path: str | os.PathLike) -> Cameras:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CamerasFileError(f"{path}: file not found; has the solve stage run?") from exc
    except (OSError, ValueError) as exc:
        raise CamerasFileError(f"{path}: cannot read JSON ({exc})") from exc
    return cameras_from_dict(data, str(path))


def write_cameras(path: str | os.PathLike, cameras: Cameras) -> None:
    write_json(path, cameras_to_dict(cameras))
