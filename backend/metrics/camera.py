"""Camera-trajectory metrics: Sim(3) alignment, ATE, rotation error, focal error. numpy only.

Poses are `world_from_camera` (F, 4, 4) in OpenCV axes (see `exporters/cameras_json.py`); the camera centre
of frame i is `world_from_camera[i, :3, 3]` and its orientation `world_from_camera[i, :3, :3]`.
An estimated trajectory lives in its own world frame and scale (structure from motion cannot know either),
so every error here is measured after the similarity transform that best maps the estimate onto the ground
truth: `gt ≈ s · R · est + t`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

# Centres whose RMS spread about their centroid is below this fraction of their magnitude (or of 1) count as
# one point (a tripod); a second singular value below this fraction of the first counts as a line.
DEGENERATE_TOL = 1e-6


class Sim3(NamedTuple):
    """`y = scale · rotation @ x + translation`. scale: float; rotation: (3, 3); translation: (3,)."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """points: (N, 3) -> (N, 3)."""
        return self.scale * points @ self.rotation.T + self.translation


def _proper_rotation(u: np.ndarray, vt: np.ndarray) -> np.ndarray:
    """U diag(1, 1, det(U Vᵀ)) Vᵀ: the nearest rotation (det +1), never a reflection."""
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    return (u * d) @ vt


def umeyama_sim3(source: np.ndarray, target: np.ndarray, with_scale: bool = True) -> Sim3:
    """Least-squares similarity transform mapping `source` onto `target` (Umeyama 1991, eqs. 34-42).

    Minimises Σᵢ ‖targetᵢ - (s R sourceᵢ + t)‖². With μ, σ² the means and source variance and
    Σ = (1/N) Σᵢ (targetᵢ - μ_t)(sourceᵢ - μ_s)ᵀ = U D Vᵀ: R = U S Vᵀ with S = diag(1, 1, det(U Vᵀ)),
    s = tr(D S) / σ²_source, t = μ_t - s R μ_s.

    source, target: (N, 3). The rotation is unique only when the points span a plane (N ≥ 3, not collinear);
    raises ValueError when the source points all coincide (no scale or rotation can be recovered).
    """
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    assert source.shape == target.shape and source.ndim == 2 and source.shape[1] == 3, (source.shape, target.shape)
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    var_s = float(np.mean(np.sum(xs**2, axis=1)))
    if var_s <= (DEGENERATE_TOL * max(1.0, float(np.abs(source).max()))) ** 2:
        raise ValueError("umeyama_sim3: the source points all coincide; no rotation or scale can be recovered")
    cov = xt.T @ xs / len(source)
    u, sv, vt = np.linalg.svd(cov)
    rotation = _proper_rotation(u, vt)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    scale = float(np.sum(sv * d) / var_s) if with_scale else 1.0
    return Sim3(scale, rotation, mu_t - scale * rotation @ mu_s)


def orientation_alignment(est_rotations: np.ndarray, gt_rotations: np.ndarray) -> np.ndarray:
    """Rotation A minimising Σᵢ ‖A · est_Rᵢ - gt_Rᵢ‖²_F (orthogonal Procrustes on camera orientations).

    A = U diag(1, 1, det(U Vᵀ)) Vᵀ where Σᵢ gt_Rᵢ est_Rᵢᵀ = U D Vᵀ. est_rotations, gt_rotations: (F, 3, 3)
    world_from_camera rotations. Used where the centres cannot fix the rotation (tripod, a straight dolly).
    """
    m = np.einsum("fij,fkj->ik", np.asarray(gt_rotations, np.float64), np.asarray(est_rotations, np.float64))
    u, _, vt = np.linalg.svd(m)
    return _proper_rotation(u, vt)


def rotation_angle_deg(rotations: np.ndarray) -> np.ndarray:
    """Angle of each rotation in degrees: arccos((tr R - 1) / 2). rotations: (..., 3, 3) -> (...)."""
    cos = (np.trace(rotations, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def path_length(centres: np.ndarray) -> float:
    """Σᵢ ‖cᵢ₊₁ - cᵢ‖ over consecutive frames. centres: (F, 3)."""
    return float(np.sum(np.linalg.norm(np.diff(centres, axis=0), axis=1))) if len(centres) > 1 else 0.0


def _spread(centres: np.ndarray) -> np.ndarray:
    """Singular values of the centred (F, 3) centres divided by √F (RMS extent along the principal axes)."""
    return np.linalg.svd(centres - centres.mean(0), compute_uv=False) / np.sqrt(len(centres))


def _is_point(centres: np.ndarray) -> bool:
    return float(np.linalg.norm(_spread(centres))) <= DEGENERATE_TOL * max(1.0, float(np.abs(centres).max()))


def _is_line(centres: np.ndarray) -> bool:
    sv = _spread(centres)
    return len(centres) < 3 or sv[1] <= DEGENERATE_TOL * sv[0]


class Alignment(NamedTuple):
    """The Sim(3) applied to the estimate and how it was found.

    mode: "sim3" (Umeyama on the centres); "orientation" (rotation from the camera orientations, then the
    least-squares scale ≥ 0 and translation given that rotation: fewer than 3 frames or collinear centres);
    "tripod" (ground-truth centres coincide: rotation from orientations, scale 1, centroids matched).
    """

    sim3: Sim3
    mode: str


def align_trajectories(est_world_from_camera: np.ndarray, gt_world_from_camera: np.ndarray) -> Alignment:
    """Sim(3) mapping the estimated trajectory onto the ground truth. Both (F, 4, 4) world_from_camera."""
    est_c, gt_c = est_world_from_camera[:, :3, 3], gt_world_from_camera[:, :3, 3]
    if _is_point(gt_c):
        rotation = orientation_alignment(est_world_from_camera[:, :3, :3], gt_world_from_camera[:, :3, :3])
        return Alignment(Sim3(1.0, rotation, gt_c.mean(0) - rotation @ est_c.mean(0)), "tripod")
    if not (_is_line(est_c) or _is_line(gt_c)):
        return Alignment(umeyama_sim3(est_c, gt_c), "sim3")
    rotation = orientation_alignment(est_world_from_camera[:, :3, :3], gt_world_from_camera[:, :3, :3])
    xs, xt = est_c - est_c.mean(0), gt_c - gt_c.mean(0)
    denom = float(np.sum(xs**2))
    scale = max(0.0, float(np.sum(xt * (xs @ rotation.T))) / denom) if denom > 0 else 0.0
    return Alignment(Sim3(scale, rotation, gt_c.mean(0) - scale * rotation @ est_c.mean(0)), "orientation")


@dataclass
class CameraErrors:
    """Errors of an estimated camera track against ground truth (see `camera_errors`)."""

    ate: float                      # RMSE of aligned camera centres, GT world units (estimate units if tripod)
    ate_percent: float              # 100 · ate / GT path length; NaN when the GT camera does not move
    rotation_mean_deg: float        # mean angle of gt_Rᵢᵀ · R · est_Rᵢ, R: the Sim(3)'s rotation
    rotation_median_deg: float
    orientation_mean_deg: float     # the same with R fitted to the orientations alone (see camera_errors)
    orientation_median_deg: float
    focal_percent: float            # median over frames of 100 · |fx_est - fx_gt| / fx_gt; NaN without K
    gt_path_length: float
    frames: int
    alignment: Alignment

    def as_dict(self) -> dict:
        return {"ate": self.ate, "ate_percent": self.ate_percent, "rotation_mean_deg": self.rotation_mean_deg,
                "rotation_median_deg": self.rotation_median_deg, "orientation_mean_deg": self.orientation_mean_deg,
                "orientation_median_deg": self.orientation_median_deg, "focal_percent": self.focal_percent,
                "gt_path_length": self.gt_path_length, "frames": self.frames, "alignment": self.alignment.mode,
                "scale": self.alignment.sim3.scale}


def focal_error_percent(est_K: np.ndarray, gt_K: np.ndarray, est_width: float | None = None,
                        gt_width: float | None = None) -> np.ndarray:
    """Per-frame relative focal error 100 · |fx_est - fx_gt| / fx_gt, in percent. est_K, gt_K: (F, 3, 3).

    A focal length in pixels does not depend on the world's scale, so no alignment is needed. When the
    estimate was solved on resized frames, pass both widths: fx_est is first rescaled by gt_width / est_width.
    """
    fx_est = np.asarray(est_K, np.float64)[:, 0, 0]
    fx_gt = np.asarray(gt_K, np.float64)[:, 0, 0]
    if est_width is not None and gt_width is not None:
        fx_est = fx_est * (float(gt_width) / float(est_width))
    return 100.0 * np.abs(fx_est - fx_gt) / fx_gt


def camera_errors(est_world_from_camera: np.ndarray, gt_world_from_camera: np.ndarray,
                  est_K: np.ndarray | None = None, gt_K: np.ndarray | None = None,
                  est_width: float | None = None, gt_width: float | None = None) -> CameraErrors:
    """ATE, rotation and focal error of an estimated camera track. Poses: (F, 4, 4) world_from_camera, frame
    for frame; K: (F, 3, 3) pixels (optional).

    - ATE (Sturm et al. 2012, with the Sim(3) of Umeyama 1991 as is usual for monocular SfM):
      sqrt(mean_i ‖gt_cᵢ - (s R est_cᵢ + t)‖²), in GT world units, and as a percentage of the GT path length.
    - Rotation error: the angle of gt_Rᵢᵀ · R · est_Rᵢ (R: the alignment's rotation), mean and median, degrees
      (evo's APE on rotation). It includes the uncertainty of R itself: on a short, nearly straight path,
      centre errors of 0.5 % of the path tilt R by most of a degree even when every orientation is exact.
    - Orientation error: the same angle with R = `orientation_alignment` (the best global rotation for the
      orientations alone), which isolates the error of the solved orientations from that of the centres but,
      when the orientations vary little, also absorbs an error common to all frames (a constant roll).
      Report both.
    - Focal error: see `focal_error_percent` (median over frames).

    Degenerate cases (see `Alignment.mode`): with fewer than 3 frames or collinear centres (a straight dolly)
    the centres cannot fix the rotation about the line, so it comes from the orientations. When the GT camera
    does not move (a tripod shot) no scale exists to compare translations with: the estimate is aligned by
    rotation and centroid only (scale 1), `ate` is then the RMS spread of the estimated centres in the
    estimate's own units (0 when the estimate is a tripod too: a right answer scores 0) and `ate_percent`
    is NaN. When only the estimate does not move, the scale is 0 and `ate` is the GT's spread: all of the
    motion was missed.
    """
    est = np.asarray(est_world_from_camera, np.float64)
    gt = np.asarray(gt_world_from_camera, np.float64)
    assert est.shape == gt.shape and est.shape[1:] == (4, 4) and len(est) >= 1, (est.shape, gt.shape)
    alignment = align_trajectories(est, gt)
    aligned = alignment.sim3.apply(est[:, :3, 3])
    ate = float(np.sqrt(np.mean(np.sum((aligned - gt[:, :3, 3]) ** 2, axis=1))))
    length = path_length(gt[:, :3, 3])
    ate_percent = 100.0 * ate / length if alignment.mode != "tripod" and length > 0 else float("nan")
    angles = rotation_angle_deg(np.einsum("fji,jk,fkl->fil", gt[:, :3, :3], alignment.sim3.rotation, est[:, :3, :3]))
    own = orientation_alignment(est[:, :3, :3], gt[:, :3, :3])
    own_angles = rotation_angle_deg(np.einsum("fji,jk,fkl->fil", gt[:, :3, :3], own, est[:, :3, :3]))
    focal = float("nan")
    if est_K is not None and gt_K is not None:
        focal = float(np.median(focal_error_percent(est_K, gt_K, est_width, gt_width)))
    return CameraErrors(ate, ate_percent, float(np.mean(angles)), float(np.median(angles)),
                        float(np.mean(own_angles)), float(np.median(own_angles)), focal, length, len(est), alignment)
