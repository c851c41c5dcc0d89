"""After training: which of the seed's failure modes happened, if any, and how temporally consistent the
depth is. numpy only (works on the arrays the stage writes).

Failure modes (Li et al. 2020; the seed's list):
- "collapse": depth shrank far below the geometric depth while motion grew (the near-camera/huge-motion trap);
- "motion_explains_all": large residual translation on the static scene (outside the motion masks);
- "lazy": the motion masks hold pixels whose flow the static warp cannot explain, yet the residual motion
  there stays near zero.
Thresholds are relative to the median camera step between frames (the scale of the scene's motion).
"""
from __future__ import annotations

import numpy as np

COLLAPSE_RATIO = 1 / 3
STATIC_MOTION_SHARE = 0.2       # share of static pixels with motion above STATIC_MOTION_STEP camera steps
STATIC_MOTION_STEP = 0.25
LAZY_MOTION_STEP = 0.05
UNEXPLAINED_PX = 1.0
LAZY_RATIO = 1.5             # residual motion where it is needed vs on the static scene


def camera_step(world_from_camera: np.ndarray) -> float:
    c = world_from_camera[:, :3, 3]
    steps = np.linalg.norm(np.diff(c, axis=0), axis=1)
    return float(np.median(steps)) if len(steps) else 0.0


def reproject(depth_t: np.ndarray, K_t, K_s, world_from_t, world_from_s, motion_t=None):
    """Pixels of frame t moved into frame s: (pixels (H, W, 2), planar depth in s (H, W))."""
    h, w = depth_t.shape
    ys, xs = np.mgrid[0:h, 0:w]
    p = np.stack([xs + 0.5, ys + 0.5, np.ones((h, w))], -1)
    cam = (p @ np.linalg.inv(K_t).T) * depth_t[..., None]
    world = cam @ world_from_t[:3, :3].T + world_from_t[:3, 3]
    if motion_t is not None:
        world = world + motion_t
    s_from_world = np.linalg.inv(world_from_s)
    cam_s = world @ s_from_world[:3, :3].T + s_from_world[:3, 3]
    z = cam_s[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam_s @ K_s.T)[..., :2] / z[..., None]
    return uv, z


def temporal_consistency(depth: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray, moving: np.ndarray) -> dict:
    """Neighbouring frames' depths after reprojection, in static regions: median and mean of
    |z_{t->t+1} - D_{t+1}(x')| / D_{t+1}(x') over static pixels landing inside frame t+1 (nearest pixel)."""
    import cv2

    errs = []
    n, h, w = depth.shape
    for t in range(n - 1):
        uv, z = reproject(depth[t], K[t], K[t + 1], world_from_camera[t], world_from_camera[t + 1])
        map_x, map_y = (uv[..., 0] - 0.5).astype(np.float32), (uv[..., 1] - 0.5).astype(np.float32)
        d_next = cv2.remap(depth[t + 1].astype(np.float32), map_x, map_y, cv2.INTER_NEAREST, borderValue=0)
        mov_next = cv2.remap(moving[t + 1].astype(np.uint8), map_x, map_y, cv2.INTER_NEAREST, borderValue=1)
        ok = ~moving[t] & (mov_next == 0) & (d_next > 0) & (z > 0) & np.isfinite(z)
        # a point hidden in t+1 meets a nearer surface there: not a disagreement about depth
        ok &= z < d_next * 1.25
        errs.append(np.abs(z[ok] - d_next[ok]) / d_next[ok])
    e = np.concatenate(errs) if errs else np.zeros(0)
    if e.size == 0:
        return {"median_rel": None, "mean_rel": None, "pixels": 0}
    return {"median_rel": round(float(np.median(e)), 5), "mean_rel": round(float(np.mean(e)), 5), "pixels": int(e.size)}


def failure_modes(depth: np.ndarray, motion: np.ndarray, moving: np.ndarray, world_from_camera: np.ndarray,
                  K: np.ndarray, geometric_median: float | None, flows: dict | None = None) -> dict:
    """{"mode": "none" | "collapse" | "motion_explains_all" | "lazy", "facts": {...}}.

    flows: optional {t: observed flow t -> t+1 (H, W, 2)} to tell the lazy case."""
    step = camera_step(world_from_camera)
    unit = max(step, 1e-9)
    mag = np.linalg.norm(motion, axis=-1)
    static = ~moving
    facts = {"camera_step": round(step, 6), "median_depth": round(float(np.median(depth[depth > 0])), 6) if (depth > 0).any() else None}
    facts["static_motion_share"] = round(float(np.mean(mag[static] > STATIC_MOTION_STEP * unit)) if static.any() else 0.0, 5)
    facts["moving_mean_motion_steps"] = round(float(mag[moving].mean() / unit) if moving.any() else 0.0, 5)
    mode = "none"
    if geometric_median and facts["median_depth"] and facts["median_depth"] < COLLAPSE_RATIO * geometric_median:
        mode = "collapse"
    elif facts["static_motion_share"] > STATIC_MOTION_SHARE:
        mode = "motion_explains_all"
    elif flows and moving.any():
        # pixels of the motion masks whose flow the static warp misses by > UNEXPLAINED_PX: the residual field
        # has to move them; "lazy" when it moves them no more than it moves the static scene
        h, w = depth.shape[1:]
        ys, xs = np.mgrid[0:h, 0:w]
        there, everywhere = [], []
        for t, flow in flows.items():
            uv, _ = reproject(depth[t], K[t], K[t + 1], world_from_camera[t], world_from_camera[t + 1])
            miss = np.linalg.norm(uv - np.stack([xs + 0.5, ys + 0.5], -1) - flow, axis=-1) > UNEXPLAINED_PX
            there.append(mag[t][moving[t] & miss])
            everywhere.append(mag[t][static[t]])
        there = np.concatenate(there) if there else np.zeros(0)
        base = float(np.concatenate(everywhere).mean()) if everywhere else 0.0
        facts["unexplained_moving_pixels"] = int(there.size)
        if there.size >= 50:
            # a static scene held at exactly 0 (the measured output, scene_flow.py) is compared with a thousandth
            # of a camera step, so that the ratio stays a readable number
            ratio = float(there.mean()) / max(base, 1e-3 * unit)
            facts["unexplained_vs_static_motion"] = round(ratio, 4)
            if ratio < LAZY_RATIO or there.mean() < LAZY_MOTION_STEP * unit:
                mode = "lazy"
    return {"mode": mode, "facts": facts}
