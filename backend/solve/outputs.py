"""What the solve leaves in the job besides cameras.json: the static scene points and the motion masks.

    camera/points.ply       binary little-endian PLY, float32 x y z + uchar red green blue, written by
                            exporters.ply (the add-on reads it with the same module)
    masks/motion/00000.png  uint8, 255 = moves independently of the camera
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from exporters.atomic import swap_in_folder, write_bytes

from .correspondences import Correspondences
from .dense_ba import BAResult

MAX_POINT_RESIDUAL_PX = 2.0   # a point whose worst observation is off by more is not written
TRIPOD_POINT_DEPTH = 5.0      # a tripod has no depth: its points are rays drawn out to this distance


def scene_points(result: BAResult, corr: Correspondences) -> tuple[np.ndarray, np.ndarray]:
    """World points (P, 3) and colours (P, 3) uint8 of the correspondences that fit well, in the frame of
    `result.track`. For a tripod solve (all inverse depths 0) the rays at TRIPOD_POINT_DEPTH."""
    track, rho = result.track, result.inverse_depth
    worst = np.zeros(corr.points)
    np.maximum.at(worst, corr.point, result.residual_px)
    keep = worst < MAX_POINT_RESIDUAL_PX
    if np.all(rho == 0):
        depth = np.full(corr.points, TRIPOD_POINT_DEPTH)
    else:
        # Points with (almost) no parallax have no usable depth: drop the far tail rather than place them.
        keep &= rho > 1e-3 * np.median(rho[rho > 0]) if np.any(rho > 0) else rho > 0
        depth = 1.0 / np.maximum(rho, 1e-12)
    ray = np.c_[corr.ref_xy, np.ones(corr.points)] @ np.linalg.inv(track.intrinsics.K).T
    a = corr.ref_frame
    world = track.centre[a] + np.einsum("nij,nj->ni", track.rotation[a], ray) * depth[:, None]
    return world[keep], corr.colour[keep]


def write_masks(folder: str | Path, moving: np.ndarray) -> None:
    """moving (F, H, W) bool -> folder/00000.png ..., swapped in as a whole folder (partial -> final), so
    a crash never leaves old and new masks mixed."""
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for t, m in enumerate(moving):
        ok, png = cv2.imencode(".png", np.where(m, 255, 0).astype(np.uint8))
        write_bytes(partial / f"{t:05d}.png", png.tobytes())
    swap_in_folder(partial, folder)
