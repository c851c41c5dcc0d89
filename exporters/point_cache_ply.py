"""Scene-flow point caches as a PLY sequence: `points/00000.ply`, one binary little-endian file per frame.

    element vertex N
      float x, y, z            world position
      uchar red, green, blue   sRGB colour (the footage's)
      float vx, vy, vz         scene flow, world units per frame, forward (t -> t+1)
      uchar dynamic            1 = on a moving object

`exporters.ply.points_and_colours` reads the positions and colours back (extra properties are ignored);
`read_point_frame` reads everything.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import ply
from .atomic import write_bytes
from .point_cache_usd import PointFrame

FIELDS = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
          ("vx", "<f4"), ("vy", "<f4"), ("vz", "<f4"), ("dynamic", "u1")]
TYPES = {"<f4": "float", "u1": "uchar"}


def write_point_frame(path: str | os.PathLike, frame: PointFrame, comment: str = "shotfield scene-flow points") -> None:
    vertex = np.empty(len(frame.positions), dtype=FIELDS)
    for k, name in enumerate("xyz"):
        vertex[name] = frame.positions[:, k]
        vertex["v" + name] = frame.velocities[:, k]
    for k, name in enumerate(("red", "green", "blue")):
        vertex[name] = frame.colours[:, k]
    vertex["dynamic"] = frame.dynamic.astype(np.uint8)
    header = f"ply\nformat binary_little_endian 1.0\ncomment {comment} (frame {frame.index})\nelement vertex {len(vertex)}\n"
    header += "".join(f"property {TYPES[t]} {name}\n" for name, t in FIELDS) + "end_header\n"
    write_bytes(path, header.encode("ascii") + vertex.tobytes())


def write_point_sequence(folder: str | os.PathLike, frames: list[PointFrame]) -> list[Path]:
    folder = Path(folder)
    paths = []
    for frame in frames:
        path = folder / f"{frame.index:05d}.ply"
        write_point_frame(path, frame)
        paths.append(path)
    return paths


def read_point_frame(path: str | os.PathLike, index: int = 0) -> PointFrame:
    v = ply.read_vertices(path)
    missing = [name for name, _ in FIELDS if name not in v]
    if missing:
        raise ply.PlyError(f"{path}: not a point-cache PLY (missing {', '.join(missing)})")
    return PointFrame(index, np.stack([v[k] for k in "xyz"], 1).astype(np.float32),
                      np.stack([v[k] for k in ("red", "green", "blue")], 1).astype(np.uint8),
                      np.stack([v[k] for k in ("vx", "vy", "vz")], 1).astype(np.float32), v["dynamic"].astype(bool))
