"""Synthetic scenes with exact answers for the solve's unit tests (numpy only, milliseconds to build).

- `scene(...)`: cameras (a `CameraTrack`) and anchored point correspondences as the dense bundle adjustment
  sees them, exact or with pixel noise; with translation (hand-held) or without (tripod).
- `homography_job(...)`: a job folder whose flow store holds the exact flow of a rotating camera looking at
  a textured plane (a homography per frame pair) with a square patch that moves on its own.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from backend import flow_store
from backend.solve.correspondences import Correspondences
from backend.solve.track import CameraTrack, Intrinsics, so3_exp


def camera_path(frames: int, translation: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rotations (F, 3, 3) world_from_camera, centres (F, 3)): a pan with wobble, moving sideways if asked."""
    rng = np.random.default_rng(seed)
    u = np.linspace(0.0, 1.0, frames)
    angles = np.stack([0.02 * np.sin(7 * u), 0.25 * u - 0.12, 0.01 * np.cos(5 * u)], -1) + rng.normal(0, 0.002, (frames, 3))
    rotation = so3_exp(angles)
    centre = np.stack([1.5 * u, 0.05 * np.sin(3 * u), 0.2 * u], -1) if translation else np.zeros((frames, 3))
    return rotation, centre


def scene(frames: int = 10, width: int = 160, height: int = 120, f: float = 150.0, translation: bool = True,
          points_per_frame: int = 120, gaps=(1, 2, 4), noise_px: float = 0.0, seed: int = 0):
    """(truth CameraTrack, Correspondences, true inverse depths (N,)). Depths 3..12 along the optical axis."""
    rng = np.random.default_rng(seed)
    rotation, centre = camera_path(frames, translation, seed)
    truth = CameraTrack(Intrinsics(f, width / 2.0, height / 2.0), rotation, centre, width, height)
    K, Kinv = truth.intrinsics.K, np.linalg.inv(truth.intrinsics.K)
    ref_frame, ref_xy, rho, point, frame, xy = [], [], [], [], [], []
    count = 0
    for t in range(frames):
        uv = rng.uniform([4, 4], [width - 4, height - 4], (points_per_frame, 2))
        depth = rng.uniform(3.0, 12.0, points_per_frame)
        world = centre[t] + (np.c_[uv, np.ones(len(uv))] @ Kinv.T * depth[:, None]) @ rotation[t].T
        for b in range(frames):
            if abs(b - t) not in gaps:
                continue
            cam = (world - centre[b]) @ rotation[b]
            p = cam @ K.T
            p = p[:, :2] / p[:, 2:]
            ok = (p[:, 0] > 0.5) & (p[:, 0] < width - 0.5) & (p[:, 1] > 0.5) & (p[:, 1] < height - 0.5) & (cam[:, 2] > 0)
            point.append(count + np.flatnonzero(ok))
            frame.append(np.full(ok.sum(), b))
            xy.append(p[ok] + rng.normal(0, noise_px, (ok.sum(), 2)) if noise_px else p[ok])
        ref_frame.append(np.full(points_per_frame, t))
        ref_xy.append(uv)
        # Inverse depth along the ray: X = c + R K^-1 [u, 1] / rho with the ray's z = 1, so rho = 1 / depth.
        rho.append(1.0 / depth)
        count += points_per_frame
    corr = Correspondences(np.concatenate(ref_frame), np.concatenate(ref_xy), np.zeros((count, 3), np.uint8),
                           np.concatenate(point), np.concatenate(frame), np.concatenate(xy))
    seen = np.zeros(count, bool)
    seen[corr.point] = True  # drop points no other frame sees, as correspondences.gather does
    return truth, corr.subset(np.ones(corr.observations, bool)), np.concatenate(rho)[seen]


def perturbed(track: CameraTrack, rotation_deg: float, centre: float, focal_factor: float, seed: int = 1) -> CameraTrack:
    """The track with every pose but the first disturbed, and its focal length scaled."""
    rng = np.random.default_rng(seed)
    noise = so3_exp(rng.normal(0, np.radians(rotation_deg), (track.frames, 3)))
    noise[0] = np.eye(3)
    shift = rng.normal(0, centre, (track.frames, 3))
    shift[0] = 0
    k = track.intrinsics
    return track.copy(intrinsics=Intrinsics(k.f * focal_factor, k.cx, k.cy),
                      rotation=noise @ track.rotation, centre=track.centre + shift)


def homography_job(job: Path, frames: int = 10, width: int = 128, height: int = 96, f: float = 120.0,
                   patch: int = 24, patch_speed: float = 1.5, gaps=(1, 2, 4), patch_left: float | None = None):
    """A job folder with exact flow of a pure rotation (homographies) plus a moving square patch.

    Returns (truth CameraTrack (centres 0), moving (F, H, W) bool: the patch). The patch (none if patch=0)
    starts at x = patch_left (default: left of the centre) and slides right by `patch_speed` px a frame
    across the screen -- independently of the background, which follows the homographies."""
    rotation, _ = camera_path(frames, translation=False)
    truth = CameraTrack(Intrinsics(f, width / 2.0, height / 2.0), rotation, np.zeros((frames, 3)), width, height)
    K, Kinv = truth.intrinsics.K, np.linalg.inv(truth.intrinsics.K)
    xs, ys = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pix = np.stack([xs, ys], -1).reshape(-1, 2)
    x0 = width / 2 - patch - 10.0 if patch_left is None else patch_left

    def in_patch(t, p):
        if patch == 0:
            return np.zeros(len(p), bool)
        left = x0 + patch_speed * t
        return (p[:, 0] >= left) & (p[:, 0] < left + patch) & (p[:, 1] >= height / 2 - patch / 2) & (p[:, 1] < height / 2 + patch / 2)

    def flow(a, b):
        H = K @ rotation[b].T @ rotation[a] @ Kinv  # x_b ~ K R_b^T R_a K^-1 x_a
        q = np.c_[pix, np.ones(len(pix))] @ H.T
        target = q[:, :2] / q[:, 2:]
        moving = in_patch(a, pix)
        target[moving] = pix[moving] + [patch_speed * (b - a), 0.0]
        return (target - pix).reshape(height, width, 2).astype(np.float32)

    moving = np.stack([in_patch(t, pix).reshape(height, width) for t in range(frames)])
    valid = np.ones((height, width), bool)
    for g in gaps:
        writer = flow_store.FlowWriter(job, g, frames - g, height, width)
        for t in range(frames - g):
            writer.put(t, flow(t, t + g), flow(t + g, t), valid, valid)
        writer.close(ok=True)
    flow_store.write_index(job, list(gaps), frames, width, height, method="synthetic")
    return truth, moving


def textured_gray(frames: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """(F, H, W) uint8 random smooth texture (for code that needs images beside the flow)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (height, width)).astype(np.float32), (0, 0), 1.5)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.repeat(base[None], frames, 0)
