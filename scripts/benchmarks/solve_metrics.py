"""Scoring a solved camera track (a job's camera/cameras.json) against a test shot's gt/cameras.json.

The trajectory errors (Sim(3)-aligned ATE, rotation, orientation and focal error) come from
`backend.metrics.camera`; this module adds what the camera-solve benchmark reports besides them:

Rotation error: three figures, one measure for the bar (solve_bars.ROTATION_KEY), computed identically for
Shotfield and every peer.
- relative rotation error over ALL frame pairs (`rpe_rotation_mean_deg`, the bar's "mean rotation error"):
  the mean angle of (gt_Rᵢᵀ gt_Rⱼ)ᵀ (est_Rᵢᵀ est_Rⱼ) over all i < j (RPE on rotation, Sturm et al. 2012,
  with every Δ). It needs no alignment at all, so no choice of aligner can favour anyone, and it scores the
  rotations only (the ATE already scores the centres). For independent per-frame errors of ε it is about
  √2 ε, so it is no more lenient than a per-frame error after the best rotation alignment.
- rotation error after a joint Sim(3) (`rotation_joint_mean_deg`, per frame in
  `rotation_joint_per_frame_deg`): the mean over frames of the angle of gt_Rᵢᵀ · A · est_Rᵢ, the
  similarity (s, A, t) fitted to the centres AND the orientations together (`joint_sim3`):
  minimising Σᵢ ‖x̂ᵢ - s A x̂ᵢ'‖² / (F σ²) + Σᵢ ‖A est_Rᵢ - gt_Rᵢ‖²_F / (2F), x̂, x̂' the centred gt / est
  centres, σ² the gt centres' variance. Both terms are in radians² per frame (a rotation δ of A moves a
  centre at the RMS radius by δ σ, and ‖·‖²_F of a small rotation δ is 2δ²), so the centres decide the axes
  they pin and the orientations the axis they do not: every axis is determined whatever the path's shape.
  It is the absolute-rotation reading under the alignment the ATE is reported with, made well-posed; it
  also charges a solve whose centres' path is turned against its orientations (a translation direction
  off by a fraction of a degree, e.g. from a focal error), which the RPE does not see.
- `rotation_mean_deg` (kept, printed as "positions-only"): A from Umeyama on the centres alone, the
  `backend.metrics.camera` figure. On a nearly straight camera path the centres do not fix the rotation
  about the path's axis (their second and third singular values are tiny), so A picks up whatever small
  lateral noise the centres have and every frame inherits that roll. Measured on the default shot
  (benchmark of 2026-11-22): Shotfield 0.244° positions-only against 0.018° with A from the orientations
  and 0.024° all-pairs RPE; pycolmap-incremental 7.6° against 0.085° / 0.113°. It measures the aligner, not
  the solve, and ranks methods by the lateral noise of their centres; it stays in the table, never hidden.
  (`orientation_mean_deg`: A from the orientations alone, also printed.)
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

from backend.metrics.camera import Sim3, camera_errors, orientation_alignment, rotation_angle_deg, umeyama_sim3
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


def pairwise_rotation_errors_deg(est_R: np.ndarray, gt_R: np.ndarray) -> np.ndarray:
    """All pairs i < j: angle of (gt_Rᵢᵀ gt_Rⱼ)ᵀ (est_Rᵢᵀ est_Rⱼ), degrees. (F, 3, 3) each -> (F (F - 1) / 2,).

    Gauge free: a rotation of the estimate's world (any alignment) leaves it unchanged."""
    est_R, gt_R = np.asarray(est_R, np.float64), np.asarray(gt_R, np.float64)
    i, j = np.triu_indices(len(est_R), k=1)
    est_rel = np.einsum("fji,fjk->fik", est_R[i], est_R[j])
    gt_rel = np.einsum("fji,fjk->fik", gt_R[i], gt_R[j])
    return rotation_angle_deg(np.einsum("fji,fjk->fik", gt_rel, est_rel))


JOINT_ITERATIONS = 50


def joint_sim3(est_pose: np.ndarray, gt_pose: np.ndarray) -> Sim3:
    """The similarity gt ≈ s · A · est + t fitted to centres and orientations together (see the module
    docstring for the cost and its weights). est_pose, gt_pose: (F, 4, 4) world_from_camera.

    For a fixed scale the best A is the orthogonal Procrustes solution of the summed cross-covariances
    2 s / (F σ²) Σ x̂ᵢ x̂ᵢ'ᵀ + 1 / F Σ gt_Rᵢ est_Rᵢᵀ; for a fixed A the best scale is the least-squares one
    (≥ 0). Alternating the two from Umeyama's scale converges in a few steps (the cost falls each step).
    Centres that all coincide (a tripod) leave only the orientation term: A from the orientations, s = 1.
    """
    est_pose, gt_pose = np.asarray(est_pose, np.float64), np.asarray(gt_pose, np.float64)
    est_c, gt_c = est_pose[:, :3, 3], gt_pose[:, :3, 3]
    xs, xt = est_c - est_c.mean(0), gt_c - gt_c.mean(0)
    f = len(est_pose)
    var_t, var_s = float(np.sum(xt**2)) / f, float(np.sum(xs**2)) / f
    orient = np.einsum("fij,fkj->ik", gt_pose[:, :3, :3], est_pose[:, :3, :3]) / f
    try:
        scale = umeyama_sim3(est_c, gt_c).scale if var_t > 1e-18 else None
    except ValueError:      # the estimate's centres coincide (a tripod solver): nothing to fit a scale to
        scale = None
    if scale is None:
        rotation = orientation_alignment(est_pose[:, :3, :3], gt_pose[:, :3, :3])
        return Sim3(1.0, rotation, gt_c.mean(0) - rotation @ est_c.mean(0))
    cross = xt.T @ xs / f
    for _ in range(JOINT_ITERATIONS):
        u, _, vt = np.linalg.svd(2.0 * scale / var_t * cross + orient)
        d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
        rotation = u @ d @ vt
        new_scale = max(0.0, float(np.sum(xt * (xs @ rotation.T))) / (f * var_s))
        if abs(new_scale - scale) <= 1e-12 * max(scale, 1e-12):
            scale = new_scale
            break
        scale = new_scale
    return Sim3(scale, rotation, gt_c.mean(0) - scale * rotation @ est_c.mean(0))


def joint_rotation_errors_deg(est_pose: np.ndarray, gt_pose: np.ndarray) -> tuple[np.ndarray, Sim3]:
    """Per frame: angle of gt_Rᵢᵀ · A · est_Rᵢ under `joint_sim3`, degrees (F,), and that similarity."""
    sim = joint_sim3(est_pose, gt_pose)
    aligned = np.einsum("ij,fjk->fik", sim.rotation, np.asarray(est_pose, np.float64)[:, :3, :3])
    return rotation_angle_deg(np.einsum("fji,fjk->fik", np.asarray(gt_pose, np.float64)[:, :3, :3], aligned)), sim


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
    joint, sim = joint_rotation_errors_deg(est_pose, gt_pose)
    m["rotation_joint_mean_deg"] = float(np.mean(joint))
    m["rotation_joint_median_deg"] = float(np.median(joint))
    m["rotation_joint_max_deg"] = float(np.max(joint))
    m["rotation_joint_per_frame_deg"] = [round(float(x), 5) for x in joint]
    aligned_c = sim.apply(est_pose[:, :3, 3])
    m["ate_joint"] = float(np.sqrt(np.mean(np.sum((aligned_c - gt_pose[:, :3, 3]) ** 2, axis=1))))
    pairwise = pairwise_rotation_errors_deg(est_pose[:, :3, :3], gt_pose[:, :3, :3])
    m["rpe_rotation_mean_deg"] = float(np.mean(pairwise)) if len(pairwise) else math.nan
    m["rpe_rotation_max_deg"] = float(np.max(pairwise)) if len(pairwise) else math.nan
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
