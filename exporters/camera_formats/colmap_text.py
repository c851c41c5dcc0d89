"""COLMAP text model: `cameras.txt`, `images.txt`, `points3D.txt` (numpy + standard library).

What is written (COLMAP's own text format, as `colmap model_converter --output_type TXT` writes it):

cameras.txt
    ``CAMERA_ID PINHOLE WIDTH HEIGHT fx fy cx cy``, one camera per distinct intrinsics (ids from 1, in
    order of first use). COLMAP puts (0, 0) at the top-left corner of the top-left pixel, like Shotfield,
    so fx fy cx cy are K's entries unchanged.
images.txt
    Two lines per image: ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` and the image's 2D points,
    written empty (no feature observations are exported). The quaternion (Hamilton, w first) and
    translation are **cam_from_world**: ``x_cam = R(q) @ x_world + t``, OpenCV camera axes, which are
    COLMAP's. NAME is the job folder's frame name ``NNNNN.png`` (the frame index, zero-padded);
    IMAGE_ID counts frames from 1 in the order given.
points3D.txt
    ``POINT3D_ID X Y Z R G B ERROR`` per sparse point, with an empty track and ERROR -1 (COLMAP's
    "not computed"). Empty when no points are given.

The world frame is Shotfield's (Z up); COLMAP has no up axis of its own. Numbers are written with
Python's shortest round-trip repr, so a read-back is exact.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..cameras_json import CameraFrame, Cameras
from ._common import (K_from_pinhole, check_cameras, image_name, matrix_from_quat_wxyz, num, pinhole_from_K,
                      quat_wxyz_from_matrix)

FILES = ("cameras.txt", "images.txt", "points3D.txt")


@dataclass
class SparsePoints:
    xyz: np.ndarray  # (N, 3) float64, world
    rgb: np.ndarray  # (N, 3) uint8


def _rgb_uint8(rgb, n: int) -> np.ndarray:
    if rgb is None:
        return np.full((n, 3), 128, dtype=np.uint8)
    rgb = np.asarray(rgb)
    assert rgb.shape == (n, 3), rgb.shape
    if np.issubdtype(rgb.dtype, np.floating) and rgb.size and rgb.max() <= 1.0:
        rgb = rgb * 255.0  # floats in 0..1
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def write_colmap_text(folder: str | os.PathLike, cameras: Cameras, points_xyz=None, points_rgb=None) -> list[Path]:
    """Write cameras.txt, images.txt, points3D.txt into `folder`; returns their paths.

    points_xyz: (N, 3) world points, optional; points_rgb: (N, 3) uint8 (or floats in 0..1), optional.
    """
    check_cameras(cameras)
    folder = Path(folder)
    camera_ids: dict[tuple, int] = {}
    image_lines = []
    for n, f in enumerate(cameras.frames, start=1):
        key = tuple(pinhole_from_K(f.K))
        cam_id = camera_ids.setdefault(key, len(camera_ids) + 1)
        cam_from_world = np.linalg.inv(np.asarray(f.world_from_camera, dtype=np.float64))
        q = quat_wxyz_from_matrix(cam_from_world[:3, :3])
        values = " ".join(num(v) for v in (*q, *cam_from_world[:3, 3]))
        image_lines += [f"{n} {values} {cam_id} {image_name(f.index)}", ""]

    cam_lines = [f"{cam_id} PINHOLE {int(cameras.width)} {int(cameras.height)} " + " ".join(num(v) for v in key)
                 for key, cam_id in camera_ids.items()]
    cameras_txt = ["# Camera list with one line of data per camera:",
                   "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
                   f"# Number of cameras: {len(camera_ids)}", *cam_lines]
    images_txt = ["# Image list with two lines of data per image:",
                  "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
                  "#   POINTS2D[] as (X, Y, POINT3D_ID)",
                  f"# Number of images: {len(cameras.frames)}, mean observations per image: 0", *image_lines]

    xyz = np.zeros((0, 3)) if points_xyz is None else np.asarray(points_xyz, dtype=np.float64)
    assert xyz.ndim == 2 and xyz.shape[1] == 3, xyz.shape
    rgb = _rgb_uint8(points_rgb, len(xyz))
    point_lines = [f"{i} {num(p[0])} {num(p[1])} {num(p[2])} {c[0]} {c[1]} {c[2]} -1"
                   for i, (p, c) in enumerate(zip(xyz, rgb), start=1)]
    points_txt = ["# 3D point list with one line of data per point:",
                  "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
                  f"# Number of points: {len(xyz)}, mean track length: 0", *point_lines]

    paths = [folder / name for name in FILES]
    for path, lines in zip(paths, (cameras_txt, images_txt, points_txt)):
        write_text(path, "\n".join(lines) + "\n")
    return paths


def _data_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if not line.lstrip().startswith("#")]


def read_colmap_text(folder: str | os.PathLike) -> Cameras:
    """cameras.txt + images.txt (PINHOLE, SIMPLE_PINHOLE) -> Cameras, frames in IMAGE_ID order.

    A frame's index is the number in its image name (`00042.png` -> 42), else its position.
    """
    folder = Path(folder)
    intrinsics: dict[int, tuple[int, int, np.ndarray]] = {}
    for line in _data_lines(folder / "cameras.txt"):
        if not line:
            continue
        parts = line.split()
        cam_id, model, w, h = int(parts[0]), parts[1], int(parts[2]), int(parts[3])
        p = [float(v) for v in parts[4:]]
        if model == "PINHOLE":
            K = K_from_pinhole(*p[:4])
        elif model == "SIMPLE_PINHOLE":
            K = K_from_pinhole(p[0], p[0], p[1], p[2])
        else:
            raise ValueError(f"{folder / 'cameras.txt'}: camera model {model} is not a pinhole")
        intrinsics[cam_id] = (w, h, K)

    # COLMAP's own reader takes the line after each image line as its 2D points, even when empty.
    lines = iter(_data_lines(folder / "images.txt"))
    images = []
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        next(lines, None)  # POINTS2D
        image_id, values, cam_id, name = int(parts[0]), [float(v) for v in parts[1:8]], int(parts[8]), parts[9]
        cam_from_world = np.eye(4)
        cam_from_world[:3, :3] = matrix_from_quat_wxyz(values[:4])
        cam_from_world[:3, 3] = values[4:]
        images.append((image_id, name, cam_id, np.linalg.inv(cam_from_world)))
    images.sort(key=lambda item: item[0])

    sizes = {intrinsics[cam_id][:2] for _, _, cam_id, _ in images}
    if len(sizes) > 1:
        raise ValueError(f"{folder}: images of different sizes {sorted(sizes)} do not fit one Cameras")
    width, height = sizes.pop() if sizes else next(iter(intrinsics.values()))[:2]
    frames = []
    for pos, (_, name, cam_id, pose) in enumerate(images):
        stem = Path(name).stem
        frames.append(CameraFrame(int(stem) if stem.isdigit() else pos, intrinsics[cam_id][2].copy(), pose))
    return Cameras(width, height, frames)


def read_colmap_points(folder: str | os.PathLike) -> SparsePoints:
    """points3D.txt -> SparsePoints (tracks and errors are dropped)."""
    rows = [line.split() for line in _data_lines(Path(folder) / "points3D.txt") if line]
    xyz = np.array([[float(v) for v in r[1:4]] for r in rows], dtype=np.float64).reshape(-1, 3)
    rgb = np.array([[int(v) for v in r[4:7]] for r in rows], dtype=np.uint8).reshape(-1, 3)
    return SparsePoints(xyz, rgb)
