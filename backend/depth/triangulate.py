"""Depth of static pixels from the flow and known cameras: each flow vector t -> s is a pair of rays, whose
closest approach (midpoint method) gives the planar depth in frame t. With the solve's cameras (ATE well
under 1 %) and sub-pixel DIS flow this is the strongest depth signal the shot has; the network learns the
rest (moving objects, low parallax, occlusions) and smooths it.

Per frame, the estimates of all its pairs are fused in log depth, weighted by the squared parallax angle
(a longer baseline pins depth better) and kept where at least MIN_PAIRS agree within AGREE (ratio).
"""
from __future__ import annotations

import numpy as np

from .shot import ShotInputs

MIN_ANGLE_RAD = 0.002   # rays closer to parallel than this say little about depth
AGREE = 0.2             # |log depth - fused| within this for a pair to count as agreeing
MIN_PAIRS = 2


def pair_depth(flow: np.ndarray, K_t: np.ndarray, K_s: np.ndarray, world_from_t: np.ndarray,
               world_from_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Planar depth in frame t (H, W) and the parallax angle in radians (H, W) of every pixel's flow ray pair;
    depth is NaN where the rays meet behind either camera."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    pt = np.stack([xs + 0.5, ys + 0.5, np.ones((h, w))], -1)
    ps = pt.copy()
    ps[..., :2] += flow
    dt = (pt @ np.linalg.inv(K_t).T) @ world_from_t[:3, :3].T   # world directions, unit z in camera t
    ds = (ps @ np.linalg.inv(K_s).T) @ world_from_s[:3, :3].T
    base = world_from_s[:3, 3] - world_from_t[:3, 3]
    # minimise |a dt - b ds - base|^2 over (a, b)
    a11 = (dt * dt).sum(-1)
    a12 = -(dt * ds).sum(-1)
    a22 = (ds * ds).sum(-1)
    r1 = (dt * base).sum(-1)
    r2 = -(ds * base).sum(-1)
    det = a11 * a22 - a12 * a12
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (a22 * r1 - a12 * r2) / det
        b = (a11 * r2 - a12 * r1) / det
        cos = (dt * ds).sum(-1) / np.sqrt(a11 * a22)
    angle = np.arccos(np.clip(cos, -1.0, 1.0))
    depth = np.where((a > 0) & (b > 0) & np.isfinite(a), a, np.nan)
    return depth, angle


def triangulate_shot(shot: ShotInputs) -> tuple[np.ndarray, np.ndarray]:
    """(depth (F, H, W) float32, confidence (F, H, W) float32 in [0, 1]); depth 0 where unknown.

    Uses only static, forward-backward consistent pixels (the motion masks leave the moving objects to the
    network)."""
    assert shot.has_cameras
    n = shot.frames
    h, w = shot.size
    logs: list[list[np.ndarray]] = [[] for _ in range(n)]
    weights: list[list[np.ndarray]] = [[] for _ in range(n)]
    for p in shot.pairs:
        depth, angle = pair_depth(p.flow, shot.K[p.t], shot.K[p.s], shot.world_from_camera[p.t], shot.world_from_camera[p.s])
        ok = p.valid & ~shot.moving[p.t] & np.isfinite(depth) & (angle > MIN_ANGLE_RAD)
        logs[p.t].append(np.where(ok, np.log(np.where(ok, depth, 1.0)), 0.0))
        weights[p.t].append(np.where(ok, angle**2, 0.0))
    depth_out = np.zeros((n, h, w), np.float32)
    conf_out = np.zeros((n, h, w), np.float32)
    for t in range(n):
        if not logs[t]:
            continue
        L, W = np.stack(logs[t]), np.stack(weights[t])
        total = W.sum(0)
        fused = np.where(total > 0, (L * W).sum(0) / np.maximum(total, 1e-30), 0.0)
        agree = (np.abs(L - fused) < AGREE) & (W > 0)   # refit on the pairs that agree (drops flow outliers)
        W2 = W * agree
        total2 = W2.sum(0)
        fused = np.where(total2 > 0, (L * W2).sum(0) / np.maximum(total2, 1e-30), 0.0)
        good = (agree.sum(0) >= MIN_PAIRS) & (total2 > 0)
        depth_out[t] = np.where(good, np.exp(fused), 0.0)
        # confidence: share of the pairs that agree, times how well the baseline pins depth
        strength = np.sqrt(total2) / (np.sqrt(total2) + 0.01)
        conf_out[t] = np.where(good, strength * agree.sum(0) / np.maximum((W > 0).sum(0), 1), 0.0)
    return depth_out, conf_out
