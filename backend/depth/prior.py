"""The depth prior the depth network starts from: the triangulated log depth with its holes (moving objects,
occlusions, low parallax) filled by normalised convolution at growing scales, so that every pixel starts
from the depth of its surroundings."""
from __future__ import annotations

import cv2
import numpy as np

FILL_SIGMAS = (2, 4, 8, 16, 32, 64, 128)


def fill_log_depth(depth: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """depth (H, W) with 0 = unknown, confidence (H, W) -> filled log depth (H, W) float32."""
    known = depth > 0
    if not known.any():
        return np.zeros(depth.shape, np.float32)
    log = np.where(known, np.log(np.where(known, depth, 1.0)), 0.0).astype(np.float32)
    w = np.where(known, np.maximum(confidence, 1e-3), 0.0).astype(np.float32)
    out, done = log.copy(), known.copy()
    for sigma in FILL_SIGMAS:
        if done.all():
            break
        num = cv2.GaussianBlur(log * w, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        den = cv2.GaussianBlur(w, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        reach = (den > 1e-3 * w.max()) & ~done
        out[reach] = num[reach] / den[reach]
        done |= reach
    out[~done] = float(np.median(log[known]))
    return out


def contact_fill(log_depth: np.ndarray, known: np.ndarray, moving: np.ndarray, band: int = 4) -> np.ndarray:
    """Moving objects rest on or move over the ground: each connected region of the motion mask takes the
    median depth of the known static pixels just below its lower edge (per column, the first `band` known
    pixels under the region), where the object meets the ground in the image. Depth of a moving object is
    otherwise ambiguous in a monocular shot (a bigger object farther away moving faster looks the same);
    this is the classical ground-contact cue. Regions with nothing known below keep their values."""
    out = log_depth.copy()
    count, labels = cv2.connectedComponents(moving.astype(np.uint8), connectivity=8)
    h, w = moving.shape
    for k in range(1, count):
        region = labels == k
        cols = np.flatnonzero(region.any(0))
        samples = []
        for x in cols:
            bottom = np.flatnonzero(region[:, x]).max()
            below = np.flatnonzero(known[bottom + 1:, x])[:band] + bottom + 1
            samples.extend(log_depth[below, x])
        if len(samples) >= 3:
            out[region] = float(np.median(samples))
    return out
