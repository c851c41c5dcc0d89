"""Per-frame camera tables, JSON and CSV, for any tool without a format of its own (numpy + stdlib).

One row per frame. Columns (`COLUMNS` holds this text; the JSON file carries it too):

    frame                  job frame index (frames/NNNNN.png)
    time                   frame time in frames; the index unless cameras.json gave another
    width, height          image size, pixels
    fx, fy, cx, cy         pinhole intrinsics, pixels; (0, 0) is the top-left corner of the top-left pixel
    lens_mm                focal length for a sensor `sensor_width_mm` wide spanning the image width
    sensor_width_mm        that sensor width (36 mm)
    hfov_deg, vfov_deg     lens angles of view, 2 atan(W / 2 fx) and 2 atan(H / 2 fy), degrees
    px, py, pz             camera centre in the world (Z up, Shotfield's world units)
    qw, qx, qy, qz         rotation of world_from_camera as a unit quaternion (w >= 0), OpenCV camera
                           axes (x right, y down, z forward)
    m00 ... m33            world_from_camera, 4x4, row-major (m03, m13, m23 = px, py, pz)

JSON: ``{"format": "shotfield-camera-table", "version": 1, "convention": "opencv", "columns": {...},
"rows": [{column: value}, ...]}``. CSV: a header line of the column names, then one line per frame.
Numbers are written with the shortest round-trip repr, so reading back is exact. The readers rebuild
Cameras from frame, time, width, height, fx, fy, cx, cy and m00..m33 (the matrix is authoritative;
position and quaternion are derived columns for convenience).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from ..atomic import write_json, write_text
from ..cameras_json import CameraFrame, Cameras
from ..conventions import DEFAULT_SENSOR_WIDTH_MM
from ._common import K_from_pinhole, check_cameras, num, pinhole_from_K, quat_wxyz_from_matrix

FORMAT = "shotfield-camera-table"
VERSION = 1
MATRIX_COLUMNS = tuple(f"m{r}{c}" for r in range(4) for c in range(4))
COLUMNS: dict[str, str] = {
    "frame": "job frame index (frames/NNNNN.png)",
    "time": "frame time in frames; the index unless cameras.json gave another",
    "width": "image width, pixels",
    "height": "image height, pixels",
    "fx": "focal length along x, pixels",
    "fy": "focal length along y, pixels",
    "cx": "principal point x, pixels; 0 is the left edge of the image",
    "cy": "principal point y, pixels; 0 is the top edge of the image",
    "lens_mm": "focal length in mm for a sensor sensor_width_mm wide spanning the image width",
    "sensor_width_mm": "sensor width the lens_mm column assumes",
    "hfov_deg": "horizontal lens angle of view 2 atan(W / 2 fx), degrees",
    "vfov_deg": "vertical lens angle of view 2 atan(H / 2 fy), degrees",
    "px": "camera centre x, world (Z up)",
    "py": "camera centre y, world",
    "pz": "camera centre z, world",
    "qw": "world_from_camera rotation quaternion w (w >= 0), OpenCV camera axes",
    "qx": "world_from_camera rotation quaternion x",
    "qy": "world_from_camera rotation quaternion y",
    "qz": "world_from_camera rotation quaternion z",
    **{name: f"world_from_camera[{name[1]}][{name[2]}] (camera to world, OpenCV camera axes, row-major)"
       for name in MATRIX_COLUMNS},
}
INT_COLUMNS = ("frame", "width", "height")


def table_rows(cameras: Cameras, sensor_width_mm: float = DEFAULT_SENSOR_WIDTH_MM) -> list[dict]:
    """Cameras -> one dict per frame, keys in `COLUMNS` order."""
    check_cameras(cameras)
    W, H = int(cameras.width), int(cameras.height)
    rows = []
    for f in cameras.frames:
        fx, fy, cx, cy = pinhole_from_K(f.K)
        pose = np.asarray(f.world_from_camera, dtype=np.float64)
        q = quat_wxyz_from_matrix(pose[:3, :3])
        values = {
            "frame": int(f.index), "time": float(f.index if f.time is None else f.time), "width": W, "height": H,
            "fx": fx, "fy": fy, "cx": cx, "cy": cy,
            "lens_mm": fx * sensor_width_mm / W, "sensor_width_mm": float(sensor_width_mm),
            "hfov_deg": math.degrees(2 * math.atan(W / (2 * fx))), "vfov_deg": math.degrees(2 * math.atan(H / (2 * fy))),
            "px": pose[0, 3], "py": pose[1, 3], "pz": pose[2, 3],
            "qw": q[0], "qx": q[1], "qy": q[2], "qz": q[3],
            **{name: pose[int(name[1]), int(name[2])] for name in MATRIX_COLUMNS},
        }
        rows.append({k: (v if k in INT_COLUMNS else float(v)) for k, v in values.items()})
    return rows


def _cameras_from_rows(rows: list[dict], source: str) -> Cameras:
    if not rows:
        raise ValueError(f"{source}: no rows")
    missing = [c for c in ("frame", "width", "height", "fx", "fy", "cx", "cy", *MATRIX_COLUMNS) if c not in rows[0]]
    if missing:
        raise ValueError(f"{source}: missing columns {missing}")
    frames = []
    for row in rows:
        index = int(row["frame"])
        pose = np.array([float(row[name]) for name in MATRIX_COLUMNS]).reshape(4, 4)
        time = float(row["time"]) if row.get("time") not in (None, "") else None
        frames.append(CameraFrame(index, K_from_pinhole(*(float(row[k]) for k in ("fx", "fy", "cx", "cy"))), pose,
                                  None if time is None or time == index else time))
    return Cameras(int(rows[0]["width"]), int(rows[0]["height"]), frames)


def write_table_json(path: str | os.PathLike, cameras: Cameras,
                     sensor_width_mm: float = DEFAULT_SENSOR_WIDTH_MM) -> Path:
    write_json(path, {"format": FORMAT, "version": VERSION, "convention": "opencv", "columns": COLUMNS,
                      "rows": table_rows(cameras, sensor_width_mm)})
    return Path(path)


def read_table_json(path: str | os.PathLike) -> Cameras:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    return _cameras_from_rows(data["rows"], str(path))


def write_table_csv(path: str | os.PathLike, cameras: Cameras,
                    sensor_width_mm: float = DEFAULT_SENSOR_WIDTH_MM) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in table_rows(cameras, sensor_width_mm):
        writer.writerow([str(row[k]) if k in INT_COLUMNS else num(row[k]) for k in COLUMNS])
    write_text(path, buffer.getvalue())
    return Path(path)


def read_table_csv(path: str | os.PathLike) -> Cameras:
    with open(path, newline="", encoding="utf-8") as handle:
        return _cameras_from_rows(list(csv.DictReader(handle)), str(path))
