"""Tripod (nodal pan) and low-parallax shots: detection, and a rotation + focal initialisation.

Detection: when the camera only rotates, or translates too little for the depth differences in view,
the static scene's flow between two frames is a homography, however far apart the frames are. Over the
longest gaps of the static correspondences (correspondences.py) we fit a homography and a fundamental
matrix and compare their inliers: with real parallax the homography loses most of them, without it
both keep the same. Such a shot is solved for
rotation and focal length only (what Blender calls the tripod solver) instead of inventing translation
from noise.

Initialisation: for a rotating camera H = K M K^-1 with M = R_b^T R_a a rotation, so the focal length is
the one that makes K^-1 H K closest to orthogonal over the long-gap homographies (a 1-D search), and the
rotations chain from the consecutive-frame homographies. The dense bundle adjustment (rotation_only)
then refines both on all gaps.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .correspondences import Correspondences
from .motion_masks import sampson_distance, transfer_error
from .track import CameraTrack, Intrinsics, nearest_rotation

FLAT_INLIER_RATIO = 0.9    # a pair is flat when a homography keeps this share of the epipolar inliers
TRIPOD_PAIR_SHARE = 0.8    # tripod when at least this share of the long-gap pairs is flat


@dataclass
class ParallaxReport:
    tripod: bool
    flat_share: float       # share of the long-gap pairs a homography explains as well as F
    inlier_ratio: float     # median over those pairs of (homography inliers / epipolar inliers)
    pairs: int
    gap: int


def pair_samples(corr: Correspondences, t: int, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Correspondences (K, 2), (K, 2) from frame t to frame t + gap."""
    sel = (corr.ref_frame[corr.point] == t) & (corr.frame == t + gap)
    return corr.ref_xy[corr.point[sel]], corr.xy[sel]


def _fit(p1: np.ndarray, p2: np.ndarray, threshold: float, fundamental: bool):
    a, b = p1.astype(np.float32), p2.astype(np.float32)
    if fundamental:
        F, _ = cv2.findFundamentalMat(a, b, cv2.USAC_MAGSAC, threshold, 0.999, 2000)
        return F if F is not None and F.shape == (3, 3) else None
    Hm, _ = cv2.findHomography(a, b, cv2.USAC_MAGSAC, threshold, maxIters=2000, confidence=0.999)
    return Hm


def detect_tripod(corr: Correspondences, frames: int, width: int, height: int) -> ParallaxReport:
    """Decide from the correspondences of the two longest gaps whether the shot has usable parallax.

    Inlier counts rather than residual sizes: a few bad correspondences inflate any residual statistic
    of both models alike, while a homography keeps (nearly) all of the fundamental matrix's inliers only
    when there is no parallax."""
    spans = np.abs(corr.frame - corr.ref_frame[corr.point])
    gaps = sorted(set(spans.tolist()))[-2:]
    threshold = max(1.0, max(width, height) / 320)
    ratios = []
    for gap in gaps:
        for t in range(0, frames - gap, max(1, (frames - gap) // 12)):
            p1, p2 = pair_samples(corr, t, gap)
            if len(p1) < 30:
                continue
            Hm, F = _fit(p1, p2, threshold, False), _fit(p1, p2, threshold, True)
            if Hm is None or F is None:
                continue
            h_in = np.sum(transfer_error(Hm, p1, p2) < threshold)
            f_in = np.sum(sampson_distance(F, p1, p2) < threshold)
            ratios.append(h_in / max(f_in, 1))
    if not ratios:
        return ParallaxReport(False, float("nan"), float("nan"), 0, gaps[-1] if gaps else 0)
    flat = float(np.mean(np.array(ratios) >= FLAT_INLIER_RATIO))
    return ParallaxReport(flat >= TRIPOD_PAIR_SHARE, flat, float(np.median(ratios)), len(ratios), gaps[-1])


def _rotation_from_homography(Hm: np.ndarray, K: np.ndarray) -> np.ndarray:
    M = np.linalg.inv(K) @ Hm @ K
    M = M / np.cbrt(np.linalg.det(M))
    return nearest_rotation(M)


def focal_from_homographies(homographies: list[np.ndarray], width: int, height: int) -> float:
    """The focal length (px) that makes K^-1 H K most nearly a rotation, principal point at the centre."""
    def cost(f):
        K = Intrinsics.centred(f, width, height).K
        Kinv = np.linalg.inv(K)
        total = 0.0
        for Hm in homographies:
            M = Kinv @ Hm @ K
            M = M / np.cbrt(np.linalg.det(M))
            total += float(np.sum((M @ M.T - np.eye(3)) ** 2))
        return total

    long_side = max(width, height)
    grid = np.geomspace(0.25, 5.0, 80) * long_side
    f = grid[int(np.argmin([cost(x) for x in grid]))]
    lo, hi = f / 1.04, f * 1.04
    for _ in range(40):  # golden-section refinement on the bracket around the best grid value
        a, b = hi - 0.618 * (hi - lo), lo + 0.618 * (hi - lo)
        if cost(a) < cost(b):
            hi = b
        else:
            lo = a
    return float((lo + hi) / 2)


def rotation_only_track(corr: Correspondences, frames: int, width: int, height: int) -> CameraTrack:
    """Initial tripod solve: focal from the longest-gap homographies, rotations chained from the
    consecutive-frame ones (the first camera's rotation is the identity; centres are all 0)."""
    threshold = max(1.0, max(width, height) / 320)
    gap = int(np.max(np.abs(corr.frame - corr.ref_frame[corr.point])))
    long_h = []
    for t in range(0, frames - gap, max(1, (frames - gap) // 10)):
        p1, p2 = pair_samples(corr, t, gap)
        if len(p1) >= 16 and (Hm := _fit(p1, p2, threshold, False)) is not None:
            long_h.append(Hm)
    f = focal_from_homographies(long_h, width, height) if long_h else 1.2 * max(width, height)
    K = Intrinsics.centred(f, width, height).K
    rotation = np.tile(np.eye(3), (frames, 1, 1))
    for t in range(frames - 1):
        p1, p2 = pair_samples(corr, t, 1)
        Hm = _fit(p1, p2, threshold, False) if len(p1) >= 16 else None
        # x_{t+1} ~ K R_{t+1}^T R_t K^-1 x_t, so R_{t+1} = R_t M^T; an unusable pair holds the rotation.
        rotation[t + 1] = rotation[t] @ (_rotation_from_homography(Hm, K).T if Hm is not None else np.eye(3))
    return CameraTrack(Intrinsics.centred(f, width, height), rotation, np.zeros((frames, 3)), width, height)
