"""Scoring a solved camera track (a job's camera/cameras.json) against a test shot's gt/cameras.json.

The trajectory errors (Sim(3)-aligned ATE, rotation, orientation and focal error) come from
`backend.metrics.camera`; this module adds what the camera-solve benchmark reports besides them:

- registered frames: frames with a camera in cameras.json out of the frames of the shot. A frame without
  one is missing; the trajectory errors are measured over the registered frames only.
- relative rotation error (RPE on rotation, Sturm et al. 2012 with Δ = 1 frame): for every pair of
  consecutive registered frames, the angle of (gt_Rᵢᵀ gt_Rᵢ₊₁)ᵀ (est_Rᵢᵀ est_Rᵢ₊₁); needs no alignment.
- tripod translation: how far a solve lets the camera wander on a shot with no camera translation, as a
  share of the scene's depth: max ‖cᵢ - c̄‖ / median depth, in %. A solve's own scale is arbitrary, so the
  depth is that of its own points (median planar depth of its sparse points in its cameras, counting a
  point in a camera when it projects inside the image in front of it). That is the figure of the ground
  truth's median depth once the solve is scaled so that its depth matches the ground truth's.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from backend.metrics.camera import camera_errors, rotation_angle_deg
from exporters.cameras_json import Cameras, read_cameras
from exporters.conventions import project_points

from .solve_peers import read_points_ply


def relative_rotation_errors_deg(est_R: np.ndarray, gt_R: np.ndarray) -> np.ndarray:
    """Per consecutive pair: angle of (gt_Rᵢᵀ gt_Rⱼ)ᵀ (est_Rᵢᵀ est_Rⱼ), j = i + 1, degrees.

    est_R, gt_R: (F, 3, 3) world_from_camera rotations of the same frames in order -> (F - 1,).
    """
    est_R, gt_R = np.asarray(est_R, np.float64), np.asarray(gt_R, np.float64)
    assert est_R.shape == gt_R.shape and est_R.shape[1:] == (3, 3), (est_R.shape, gt_R.shape)
    est_rel = np.einsum("fji,fjk->fik", est_R[:-1], est_R[1:])
    gt_rel = np.einsum("fji,fjk->fik", gt_R[:-1], gt_R[1:])
    return rotation_angle_deg(np.einsum("fji,fjk->fik", gt_rel, est_rel))


def median_point_depth(points: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray, width: int,
                       height: int) -> float:
    """Median planar depth of points (P, 3) over the cameras (F, 3, 3) K, (F, 4, 4) poses that see them
    (in front and inside the image). NaN when no camera sees any point."""
    depths = []
    for k, pose in zip(K, world_from_camera):
        xy, z = project_points(k, pose, points)
        seen = (z > 0) & (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
        depths.append(z[seen])
    depths = np.concatenate(depths) if depths else np.zeros(0)
    return float(np.median(depths)) if len(depths) else math.nan


def tripod_translation_percent(centres: np.ndarray, depth: float) -> float:
    """100 · max ‖cᵢ - c̄‖ / depth. centres: (F, 3) in the units of `depth`. 0 for a solve that does not
    move; NaN when the depth is unknown and the camera moves."""
    centres = np.asarray(centres, np.float64)
    wander = float(np.max(np.linalg.norm(centres - centres.mean(0), axis=1))) if len(centres) else 0.0
    if wander == 0.0:
        return 0.0
    return 100.0 * wander / depth if depth > 0 and math.isfinite(depth) else math.nan


def reprojection_px(extra: dict) -> float | None:
    """The solve's own reprojection error, px: a number, or Shotfield's {"median", "rms_inliers", ...}
    (its RMS over the observations it kept: like COLMAP's and Blender's, which are means over the
    observations their solves kept)."""
    value = extra.get("reprojection_error_px")
    if isinstance(value, dict):
        value = value.get("rms_inliers", value.get("median"))
    return None if value is None else float(value)


def evaluate_cameras(est: Cameras, frame_count: int, gt: Cameras | None = None,
                     points: np.ndarray | None = None, tripod: bool = False) -> dict:
    """The solve benchmark's metrics of `est` on a shot of `frame_count` frames (see the module docstring).

    With `gt`, est frames are matched to gt frames by index (the solve must run at the GT's frame rate;
    its size may differ: focal lengths are compared at the GT's width). `tripod`: also the tripod
    translation, from `points` (P, 3) in est's world.
    """
    registered = sorted({f.index for f in est.frames if 0 <= f.index < frame_count})
    m = {"frames": frame_count, "registered": len(registered), "registered_str": f"{len(registered)}/{frame_count}",
         "reprojection_px": reprojection_px(est.extra), "focal_px": None}
    if est.frames:
        m["focal_px"] = float(np.median(est.K[:, 0, 0]))
    if gt is None or not registered:
        return m
    gt_by_index = {f.index: f for f in gt.frames}
    pairs = [(f, gt_by_index[f.index]) for f in sorted(est.frames, key=lambda f: f.index) if f.index in gt_by_index]
    if not pairs:
        return m
    est_pose = np.stack([a.world_from_camera for a, _ in pairs])
    gt_pose = np.stack([b.world_from_camera for _, b in pairs])
    errors = camera_errors(est_pose, gt_pose, np.stack([a.K for a, _ in pairs]), np.stack([b.K for _, b in pairs]),
                           est_width=est.width, gt_width=gt.width)
    scores = errors.as_dict()
    scores["evaluated_frames"] = scores.pop("frames")  # "frames" stays the shot's frame count
    m.update(scores)
    index = np.array([a.index for a, _ in pairs])
    consecutive = np.flatnonzero(np.diff(index) == 1)
    rel = relative_rotation_errors_deg(est_pose[:, :3, :3], gt_pose[:, :3, :3])[consecutive]
    m["rel_rotation_mean_deg"] = float(np.mean(rel)) if len(rel) else math.nan
    m["rel_rotation_max_deg"] = float(np.max(rel)) if len(rel) else math.nan
    m["rel_rotation_pairs"] = int(len(rel))
    if tripod:
        depth = math.nan
        if points is not None and len(points):
            depth = median_point_depth(points, np.stack([a.K for a, _ in pairs]), est_pose, est.width, est.height)
        m["est_median_depth"] = depth
        m["tripod_translation_pct"] = tripod_translation_percent(est_pose[:, :3, 3], depth)
    return m


def evaluate_job(job: Path, frame_count: int, gt_dir: Path | None, tripod: bool = False) -> dict:
    """`evaluate_cameras` on JOB/camera/cameras.json (+ points.ply when there is one) against
    GT_DIR/cameras.json."""
    est = read_cameras(job / "camera" / "cameras.json")
    ply = job / "camera" / "points.ply"
    points = read_points_ply(ply) if tripod and ply.is_file() else None
    gt = read_cameras(gt_dir / "cameras.json") if gt_dir is not None else None
    metrics = evaluate_cameras(est, frame_count, gt, points, tripod)
    metrics["solver"] = {k: v for k, v in est.extra.items() if k not in ("frame_count",)}
    return metrics
