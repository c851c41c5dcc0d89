"""Where a frame differs from the static scene around it: motion-compensated frame differencing.

Each pixel of frame t is lifted to 3D with t's depth and camera, projected into the frames `NEIGHBOUR_GAPS`
before and after, and its colour (CIELAB, after a 3x3 blur) compared with what those frames show there. A
static surface looks the same from all of them; a pixel on a moving object differs from every one of them
(the object has moved on), so the smallest of the differences is the evidence: background briefly covered
by the object in one neighbour is still matched by another. Gaps of 4 and 8 frames: far enough that an
object has moved off most of its own pixels, near enough that the estimated depth still warps the static
scene to within a pixel.

The solve's motion masks come from optical-flow boundaries and carry a halo of 1.5-2x the object; at low
resolution they also miss parts of it (on the 160x120 test shot's real chain, 16 % of the objects' pixels
and 86 % of the ball on one frame behind a column). This evidence is tight and complete where the object
is textured. Its false alarms are thin lines along depth edges, where a pixel mixes two surfaces and
warps with one surface's depth (5 % of the static pixels of the 160x120 test shot even with ground-truth
depth). Dropping edge pixels unless they touch changed pixels off the edges cut that to 3 % but lost the
ball's rim on the real chain (its one-drawn-frame IoU min 0.76 -> 0.45), so they are left to the consumers,
which only look near the object.
The follower uses it where colour cannot cut the object out (`track.follow`); `propagate.propagate` computes
it once per run, only when a drawn mask moves. `--remove moving` does not:
growing the motion masks by the evidence touching them removed more of the quick shot's ball on the real
chain (+0.45 dB inside the GT masks) but also the static edges beside the objects (default shot -0.31 dB;
-1.9 dB with ground-truth motion masks).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .geometry import pixel_grid, project, unproject
from .masks import disk

NEIGHBOUR_GAPS = (4, 8)
NOISE_FLOOR = 8.0   # CIELAB units (8-bit OpenCV scale): below this a difference is noise, blur or resampling
NOISE_FACTOR = 4.0  # ... or below this many times the frame's median difference (noisier footage)


def _lab(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.GaussianBlur(frame, (3, 3), 0), cv2.COLOR_RGB2LAB).astype(np.float32)


def difference(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray, t: int,
               device="cpu", lab: list[np.ndarray] | None = None) -> np.ndarray:
    """(H, W) float32: the smallest colour difference between frame t and its neighbours warped onto it
    through t's depth (0 where no neighbour sees the pixel or its depth is unknown). lab: the frames already
    converted (`_lab`), when the caller has them."""
    frames, h, w = rgb.shape[:3]
    lab = lab if lab is not None else [_lab(f) for f in rgb]
    v, u = (a.reshape(-1) for a in pixel_grid(h, w, device))
    z = torch.as_tensor(np.nan_to_num(depth[t], nan=0.0, posinf=0.0).reshape(-1), dtype=torch.float32, device=device)
    known = (z > 0).cpu().numpy().reshape(h, w)
    points = unproject(K[t], world_from_camera[t], v, u, z)
    best = np.full((h, w), np.inf, np.float32)
    for gap in NEIGHBOUR_GAPS:
        for s in (t - gap, t + gap):
            if not 0 <= s < frames:
                continue
            xy, zs = project(K[s], world_from_camera[s], points)
            xy = xy.cpu().numpy().reshape(h, w, 2) - 0.5  # remap samples pixel centres at integers
            warped = cv2.remap(lab[s], xy[..., 0].astype(np.float32), xy[..., 1].astype(np.float32), cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(np.nan, np.nan, np.nan))
            d = np.linalg.norm(warped - lab[t], axis=-1)
            seen = np.isfinite(d) & known & (zs.cpu().numpy().reshape(h, w) > 0)
            best = np.where(seen, np.minimum(best, d), best)
    return np.where(np.isfinite(best), best, 0.0).astype(np.float32)


def change_masks(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray,
                 device="cpu") -> np.ndarray:
    """(F, H, W) bool: the pixels of each frame that no neighbouring frame explains as static scene.
    rgb (F, H, W, 3) uint8; depth (F, H, W) planar; K (F, 3, 3); world_from_camera (F, 4, 4)."""
    lab = [_lab(f) for f in rgb]
    out = np.zeros(rgb.shape[:3], bool)
    for t in range(rgb.shape[0]):
        d = difference(rgb, depth, K, world_from_camera, t, device, lab)
        threshold = max(NOISE_FLOOR, NOISE_FACTOR * float(np.median(d)))
        # Closing joins the object's pixels where its texture happens to match the background behind it.
        out[t] = cv2.morphologyEx((d > threshold).astype(np.uint8), cv2.MORPH_CLOSE, disk(2)).astype(bool)
    return out

