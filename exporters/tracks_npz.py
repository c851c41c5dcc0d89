"""Point tracks (`tracks/tracks.npz`, and what `shotfield track` writes) and query files. numpy only: the
Blender add-on reads and writes these too.

    tracks.npz   queries (N, 3) float32 [frame, x, y]: the query points (job frame index, pixels)
                 xy      (F, N, 2) float32: the point's position in every frame, pixels
                 visible (F, N) bool: in frame and not occluded
                 world   (F, N, 3) float32: world position (cameras.json's world), NaN where unknown
                 + optional extra arrays (e.g. query_object in the test shots' ground truth)
    queries      a JSON list of [frame, x, y] rows, or a .npy array (N, 3)

Pixel coordinates follow DESIGN.md: (0, 0) is the top-left corner of the top-left pixel, pixel centres at
(i + 0.5, j + 0.5).
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_path, write_bytes


class TracksFileError(ValueError):
    """A tracks or queries file that is missing, unreadable or inconsistent; the message names the file."""


@dataclass
class Tracks:
    queries: np.ndarray         # (N, 3) float32
    xy: np.ndarray              # (F, N, 2) float32
    visible: np.ndarray         # (F, N) bool
    world: np.ndarray           # (F, N, 3) float32, NaN unknown
    extra: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return self.xy.shape[0]

    @property
    def count(self) -> int:
        return self.xy.shape[1]


def validate(tracks: Tracks, source: str = "tracks.npz") -> Tracks:
    """Check shapes and types; returns the tracks with canonical dtypes. Raises TracksFileError."""
    q = np.asarray(tracks.queries, np.float32)
    xy = np.asarray(tracks.xy, np.float32)
    vis = np.asarray(tracks.visible)
    world = np.asarray(tracks.world, np.float32)
    if q.ndim != 2 or q.shape[1] != 3:
        raise TracksFileError(f"{source}: queries must be (N, 3) [frame, x, y], not {q.shape}")
    n = q.shape[0]
    if xy.ndim != 3 or xy.shape[1:] != (n, 2):
        raise TracksFileError(f"{source}: xy must be (F, {n}, 2), not {xy.shape}")
    f = xy.shape[0]
    if vis.shape != (f, n) or vis.dtype != bool:
        raise TracksFileError(f"{source}: visible must be a ({f}, {n}) bool array, not {vis.shape} {vis.dtype}")
    if world.shape != (f, n, 3):
        raise TracksFileError(f"{source}: world must be ({f}, {n}, 3), not {world.shape}")
    if not np.all(np.isfinite(q)):
        raise TracksFileError(f"{source}: queries must be finite")
    if n and (q[:, 0].min() < 0 or q[:, 0].max() > f - 1):
        raise TracksFileError(f"{source}: query frames must lie in 0..{f - 1}")
    if np.any(vis & ~np.all(np.isfinite(xy), axis=-1)):
        raise TracksFileError(f"{source}: a visible point has no finite position")
    return Tracks(q, xy, vis, world, dict(tracks.extra))


def write_tracks(path: str | os.PathLike, tracks: Tracks) -> None:
    """Validate and write atomically (np.savez_compressed)."""
    tracks = validate(tracks, str(path))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, queries=tracks.queries, xy=tracks.xy, visible=tracks.visible, world=tracks.world,
                        **{k: np.asarray(v) for k, v in tracks.extra.items()})
    write_bytes(path, buffer.getvalue())


def read_tracks(path: str | os.PathLike) -> Tracks:
    """Raises TracksFileError for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise TracksFileError(f"{path}: no such tracks file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise TracksFileError(f"{path}: not a readable .npz ({exc})") from exc
    missing = [k for k in ("queries", "xy", "visible", "world") if k not in arrays]
    if missing:
        raise TracksFileError(f"{path}: missing array(s) {', '.join(missing)}")
    core = {k: arrays.pop(k) for k in ("queries", "xy", "visible", "world")}
    return validate(Tracks(**core, extra=arrays), str(path))


def read_queries(path: str | os.PathLike, frames: int | None = None, width: int | None = None,
                 height: int | None = None) -> np.ndarray:
    """(N, 3) float32 [frame, x, y] from a JSON list or a .npy array. With frames/width/height given, frames
    must be whole numbers in range and points inside the image. Raises TracksFileError."""
    path = Path(path)
    if not path.is_file():
        raise TracksFileError(f"{path}: no such queries file")
    try:
        if path.suffix.lower() == ".npy":
            q = np.load(path, allow_pickle=False)
        else:
            q = np.array(json.loads(path.read_text()), dtype=np.float64)
    except (OSError, ValueError, TypeError) as exc:
        raise TracksFileError(f"{path}: not a JSON list or .npy array of [frame, x, y] rows ({exc})") from exc
    q = np.asarray(q, np.float64)
    if q.size == 0:
        raise TracksFileError(f"{path}: no query points")
    if q.ndim != 2 or q.shape[1] != 3 or not np.all(np.isfinite(q)):
        raise TracksFileError(f"{path}: expected rows of [frame, x, y] numbers, got an array of shape {q.shape}")
    if frames is not None:
        if np.any(q[:, 0] != np.round(q[:, 0])) or q[:, 0].min() < 0 or q[:, 0].max() > frames - 1:
            raise TracksFileError(f"{path}: query frames must be whole numbers in 0..{frames - 1}")
    if width is not None and height is not None:
        if q[:, 1].min() < 0 or q[:, 1].max() > width or q[:, 2].min() < 0 or q[:, 2].max() > height:
            raise TracksFileError(f"{path}: query points must lie inside the {width}x{height} frame")
    return q.astype(np.float32)


def write_queries(path: str | os.PathLike, queries) -> None:
    """A JSON list of [frame, x, y] rows (what the add-on hands to `shotfield track`)."""
    q = np.asarray(queries, np.float64).reshape(-1, 3)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps([[float(v) for v in row] for row in q]) + "\n")
