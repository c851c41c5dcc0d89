"""The ground plane of the static scene, for the ground-contact cue (prior.contact_fill).

The contact cue reads the depth of the static pixels just below a moving object. Those pixels border the
object, and there the triangulation is at its worst: the object's flow is smeared onto them and the solve's
mask leaves a few rows under the object unknown, so the nearest known rows are read instead. Measured at the
contact band (the first 4 known pixels below each column of the masks), median log error against the truth:
triangulation -1 to -35 % on the quick test shot's crate (-25 to -35 % in frames 7-11), -1 to -3 % on the
default shot's crate; the ground plane fitted here, evaluated at the same pixels, within 1 %.

    fit_ground(shot, depth) -> (normal (3,), offset) in world units, or None
    ground_log_depth(K, world_from_camera, plane, size) -> (H, W) log planar depth of the plane, nan off it
    snap_to_ground(log_depth, ground, known) -> log_depth with the known pixels near the plane put on it

The plane is fitted by RANSAC to the world points of the static triangulation in the lower half of each
frame, away from the motion masks, then refitted to its inliers by least squares. A pixel is moved onto it
only where its own depth is already within SNAP_TOLERANCE of it: a scene whose lower half is not a ground
(a wall, steps) changes by at most that much.
"""
from __future__ import annotations

import cv2
import numpy as np

from exporters.conventions import pixel_centres, unproject_depth

from .shot import ShotInputs

#: A pixel's log depth within this of the plane's is taken for ground (measured on the test shots, moving
#: AbsRel of the prior: 0.05 default 0.0321 -> 0.0307, quick 0.0887 -> 0.0884; 0.15 0.0327 / 0.0875: the
#: wider tolerance also moves pixels that are not ground).
SNAP_TOLERANCE = 0.05
#: Points farther than this (px at 320 px wide) from the motion masks are fitted: the ground right under an
#: object is where the triangulation errs.
AWAY_PX = 6
RANSAC_ITERATIONS = 500
#: Inlier distance, share of the points' median distance from their centroid.
INLIER_SHARE = 0.01
#: Fewer inliers than this share of the points: no plane.
MIN_INLIERS = 0.2
#: Every STRIDE-th candidate pixel of a frame is a point (40 frames of 320x240 give ~10^5 points).
STRIDE = 7


def fit_ground(shot: ShotInputs, depth: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float] | None:
    """depth: (F, H, W) the static triangulation, 0 = unknown. -> (unit normal, offset) with normal . X +
    offset = 0 on the plane (world units), or None (too few points, no dominant plane)."""
    n, (h, w) = shot.frames, shot.size
    lower = pixel_centres(w, h)[1] > h / 2
    away = max(3, round(AWAY_PX * w / 320))
    kernel = np.ones((2 * away + 1, 2 * away + 1), np.uint8)
    points = []
    for t in range(n):
        near_object = cv2.dilate(shot.moving[t].astype(np.uint8), kernel).astype(bool)
        idx = np.flatnonzero(((depth[t] > 0) & ~near_object & lower).ravel())[::STRIDE]
        if len(idx) == 0:
            continue
        points.append(unproject_depth(shot.K[t], shot.world_from_camera[t], depth[t]).reshape(-1, 3)[idx])
    if not points:
        return None
    P = np.concatenate(points)
    if len(P) < 100:
        return None
    rng = np.random.default_rng(seed)
    tol = INLIER_SHARE * float(np.median(np.linalg.norm(P - P.mean(0), axis=1)))
    best, best_count = None, -1
    for _ in range(RANSAC_ITERATIONS):
        a, b, c = P[rng.choice(len(P), 3, replace=False)]
        normal = np.cross(b - a, c - a)
        norm = np.linalg.norm(normal)
        if norm < 1e-12:
            continue
        inliers = np.abs((P - a) @ (normal / norm)) < tol
        if inliers.sum() > best_count:
            best, best_count = inliers, int(inliers.sum())
    if best is None or best_count < MIN_INLIERS * len(P):
        return None
    Q = P[best]
    centre = Q.mean(0)
    normal = np.linalg.svd(Q - centre, full_matrices=False)[2][-1]
    return normal, float(-normal @ centre)


def ground_log_depth(K: np.ndarray, world_from_camera: np.ndarray, plane: tuple[np.ndarray, float],
                     size: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 log planar depth at which each pixel's ray meets the plane; nan where it does not (in
    front of the camera)."""
    h, w = size
    normal, offset = plane
    # the world direction of each pixel's ray, scaled to planar depth 1: the points at depth 1 less the centre
    directions = unproject_depth(K, world_from_camera, np.ones((h, w))) - world_from_camera[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = -(normal @ world_from_camera[:3, 3] + offset) / (directions @ normal)
        return np.where(z > 0, np.log(np.where(z > 0, z, 1.0)), np.nan).astype(np.float32)


def snap_to_ground(log_depth: np.ndarray, ground: np.ndarray, known: np.ndarray,
                   tolerance: float = SNAP_TOLERANCE) -> np.ndarray:
    """log_depth with the `known` pixels whose value lies within `tolerance` of the plane's set to it."""
    on = known & np.isfinite(ground)
    on[on] = np.abs(log_depth[on] - ground[on]) < tolerance
    return np.where(on, ground, log_depth).astype(np.float32)
