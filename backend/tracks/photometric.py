"""Photometric refinement of a rigid object's pose in a frame: the pose that makes the object's points take the
same brightness in the frame as in frames where it is already posed.

The rigid motion (rigid.py) poses each moving object by PnP on where the flow takes its points. DIS flow is
biased at an object's outline (on the quick test shot's rolling ball: short by 1.4 px within 2 px of it,
0.4 px along the ball's motion on average), so the poses fall short frame after frame and the tracks drift.
Brightness has no such bias: Gauss-Newton on the intensity differences of the object's points between the
frames already posed and the frame being posed (Levenberg-Marquardt damping, Huber weights so that points
that land on an occluder or on the background count little), started from the PnP pose, removes the
systematic part and leaves noise.
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from .geometry import bilinear

ITERATIONS = 5           # Gauss-Newton steps (10: the same tracks on the test shots at twice the time)
HUBER = 0.01          # intensity residual (0..1) beyond which a point counts less: an occluder, the background
BLUR_SIGMA = 0.7      # pixels: light smoothing so that the gradients reach across a pixel's width
DAMPING = 1e-3        # initial Levenberg-Marquardt damping (share of the normal matrix' diagonal)


class Images(NamedTuple):
    """gray: (F, H, W) float32 0..1, lightly blurred; grad: (F, H, W, 2) float32 its x and y derivatives per
    pixel."""

    gray: np.ndarray
    grad: np.ndarray


def images(frames: np.ndarray) -> Images:
    """frames (F, H, W, 3) uint8 RGB or (F, H, W) uint8 gray -> Images."""
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if f.ndim == 3 else f for f in frames])
    gray = gray.astype(np.float32) / 255
    gray = np.stack([cv2.GaussianBlur(g, (0, 0), BLUR_SIGMA) for g in gray])
    gx = np.stack([cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=1, scale=0.5) for g in gray])
    gy = np.stack([cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=1, scale=0.5) for g in gray])
    return Images(gray, np.stack([gx, gy], -1))


def _residuals(A: np.ndarray, X: np.ndarray, K: np.ndarray, gray: np.ndarray, colours: np.ndarray):
    Y = X @ A[:3, :3].T + A[:3, 3]
    z = np.maximum(Y[:, 2], 1e-9)
    p = np.stack([Y[:, 0] / z * K[0, 0] + K[0, 2], Y[:, 1] / z * K[1, 1] + K[1, 2]], -1)
    H, W = gray.shape
    inside = (p[:, 0] >= 0.5) & (p[:, 0] < W - 0.5) & (p[:, 1] >= 0.5) & (p[:, 1] < H - 0.5) & (Y[:, 2] > 0)
    return Y, p, np.where(inside, bilinear(gray, p) - colours, 0.0), inside


def _huber(r: np.ndarray) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= HUBER, 1.0, HUBER / np.maximum(a, 1e-12))


def _cost(r: np.ndarray) -> float:
    a = np.abs(r)
    return float(np.sum(np.where(a <= HUBER, 0.5 * a * a, HUBER * (a - 0.5 * HUBER))))


def refine_pose(A: np.ndarray, X: np.ndarray, colours: np.ndarray, K: np.ndarray, gray: np.ndarray,
                grad: np.ndarray) -> np.ndarray:
    """The pose A (4, 4) (points X (N, 3) -> camera) refined so that the points' brightness in `gray` (H, W)
    matches `colours` (N,) (their brightness where they were seen before): Levenberg-Marquardt on the Huber
    cost, the pose updated on the camera's side (Y -> exp(w) Y + v). Returns the refined pose (A itself where
    nothing improved)."""
    A = A.copy()
    Y, p, r, inside = _residuals(A, X, K, gray, colours)
    cost = _cost(r)
    lam = DAMPING
    for _ in range(ITERATIONS):
        if inside.sum() < 6:
            break
        g = bilinear(grad, p[inside])                        # (n, 2) intensity gradient at the projections
        Yi = Y[inside]
        z = np.maximum(Yi[:, 2], 1e-9)
        # d intensity / d Y through the projection
        jy = np.stack([g[:, 0] * K[0, 0] / z, g[:, 1] * K[1, 1] / z,
                       -(g[:, 0] * K[0, 0] * Yi[:, 0] + g[:, 1] * K[1, 1] * Yi[:, 1]) / (z * z)], -1)
        J = np.concatenate([np.cross(Yi, jy), jy], 1)       # d intensity / d (w, v): dY = w x Y + v
        w = _huber(r[inside])
        JtW = J.T * w
        N = JtW @ J
        b = JtW @ r[inside]
        improved = False
        for _ in range(4):
            step = np.linalg.solve(N + lam * np.diag(np.diag(N)) + 1e-9 * np.eye(6), -b)
            R = cv2.Rodrigues(step[:3])[0]
            B = np.eye(4)
            B[:3, :3], B[:3, 3] = R @ A[:3, :3], R @ A[:3, 3] + step[3:]
            Y2, p2, r2, inside2 = _residuals(B, X, K, gray, colours)
            if inside2.sum() >= inside.sum() * 0.9 and _cost(r2) < cost:
                A, Y, p, r, inside, cost = B, Y2, p2, r2, inside2, _cost(r2)
                lam = max(lam * 0.3, 1e-6)
                improved = True
                break
            lam *= 10
        if not improved:
            break
    return A
