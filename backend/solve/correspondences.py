"""Flow correspondences for the dense bundle adjustment: points anchored at well-textured static pixels of
a reference frame, observed in the frames the stored flow reaches from there (t +- g for every gap g).

Why anchored points and not chained tracks: every observation then comes from one flow field straight
from the reference frame, so errors do not accumulate along a chain, and each point has a single unknown
(its inverse depth along the reference pixel's ray), which keeps the bundle adjustment's Schur complement
trivial (see dense_ba.py).

Observations are refined with pyramidal Lucas-Kanade started at the DIS flow: DIS is a dense, smoothed
field (patches averaged over a neighbourhood), while LK on a 15x15 window around a chosen corner snaps to
the local texture, which measurably lowers the reprojection error on sharp footage.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..flow_store import FlowStore

CELL_PX = 8            # one candidate per CELL_PX x CELL_PX cell at 320 px: spreads points over the image
MIN_TEXTURE = 1e-4     # cornerMinEigenVal (image in 0..1) below this: flow there is a guess
LK_WINDOW = (15, 15)
LK_MAX_MOVE_PX = 1.5   # an LK refinement that moves further than this from DIS is not trusted


@dataclass
class Correspondences:
    """N points, M observations. Pixel coordinates use the pixel-corner origin (centres at i + 0.5).

    ref_frame: (N,) int64 frame a point is anchored in; ref_xy: (N, 2) float64 its pixel there;
    colour: (N, 3) uint8 RGB at that pixel; point: (M,) int64 observation -> point;
    frame: (M,) int64 frame of the observation; xy: (M, 2) float64 where the point is seen in that frame.
    """

    ref_frame: np.ndarray
    ref_xy: np.ndarray
    colour: np.ndarray
    point: np.ndarray
    frame: np.ndarray
    xy: np.ndarray

    @property
    def points(self) -> int:
        return len(self.ref_frame)

    @property
    def observations(self) -> int:
        return len(self.point)

    def subset(self, keep_obs: np.ndarray) -> "Correspondences":
        """Keep the observations where `keep_obs` (M,) is True and the points that still have one."""
        keep_obs = np.asarray(keep_obs, bool)
        used = np.zeros(self.points, bool)
        used[self.point[keep_obs]] = True
        new_index = np.cumsum(used) - 1
        return Correspondences(self.ref_frame[used], self.ref_xy[used], self.colour[used],
                               new_index[self.point[keep_obs]], self.frame[keep_obs], self.xy[keep_obs])


def texture_score(gray: np.ndarray) -> np.ndarray:
    """(H, W) float32: the smaller eigenvalue of the 3x3 structure tensor (Shi-Tomasi) of a uint8 image."""
    return cv2.cornerMinEigenVal(gray.astype(np.float32) / 255.0, blockSize=3, ksize=3)


def pick_pixels(score: np.ndarray, allowed: np.ndarray, cell: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `count` pixels (K, 2) int (x, y): the best-scoring allowed pixel of each cell x cell block
    whose score passes MIN_TEXTURE, then a random subset."""
    h, w = score.shape
    s = np.where(allowed, score, -1.0)
    hc, wc = h // cell, w // cell
    blocks = s[:hc * cell, :wc * cell].reshape(hc, cell, wc, cell).transpose(0, 2, 1, 3).reshape(hc, wc, -1)
    best = blocks.argmax(-1)
    ok = np.take_along_axis(blocks, best[..., None], -1)[..., 0] >= MIN_TEXTURE
    by, bx = np.nonzero(ok)
    k = best[by, bx]
    xy = np.stack([bx * cell + k % cell, by * cell + k // cell], -1)
    if len(xy) > count:
        xy = xy[rng.choice(len(xy), count, replace=False)]
    return xy


def _sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear sample of (H, W, C) at pixel-corner coordinates xy (K, 2) -> (K, C)."""
    pts = (xy - 0.5).astype(np.float32)
    out = cv2.remap(image.astype(np.float32), pts[:, 0:1], pts[:, 1:2], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(len(xy), -1)


def gather(store: FlowStore, gray: np.ndarray, rgb: np.ndarray, moving: np.ndarray | None, gaps: list[int],
           per_frame: int = 300, frames: list[int] | None = None, refine: bool = True,
           seed: int = 0) -> Correspondences:
    """Sample points in each frame of `frames` (default all) and observe them through the stored flow.

    gray: (F, H, W) uint8; rgb: (F, H, W, 3) uint8; moving: (F, H, W) bool or None (True = moving, never
    sampled nor accepted as an observation); gaps: frame gaps to follow, forward and backward.
    """
    n, h, w = gray.shape
    cell = max(2, round(CELL_PX * max(h, w) / 320))
    rng = np.random.default_rng(seed)
    gaps = [g for g in gaps if g in store.gaps and g < n]
    ref_frame, ref_xy, colour, point, frame, xy = [], [], [], [], [], []
    for t in (range(n) if frames is None else frames):
        allowed = np.ones((h, w), bool) if moving is None else ~moving[t]
        pix = pick_pixels(texture_score(gray[t]), allowed, cell, per_frame, rng)
        if len(pix) == 0:
            continue
        centres = pix + 0.5
        obs_frames, obs_xy, obs_ok = [], [], []
        for g in gaps:
            for other, flow, valid in ((t + g, lambda: store.forward(t, g), lambda: store.forward_valid(t, g)),
                                       (t - g, lambda: store.backward(t - g, g), lambda: store.backward_valid(t - g, g))):
                if not 0 <= other < n:
                    continue
                f, v = flow(), valid()
                target = centres + f[pix[:, 1], pix[:, 0]]
                ok = v[pix[:, 1], pix[:, 0]].copy()
                if refine:
                    target, ok = _lk_refine(gray[t], gray[other], centres, target, ok)
                ok &= (target[:, 0] > 0.5) & (target[:, 0] < w - 0.5) & (target[:, 1] > 0.5) & (target[:, 1] < h - 0.5)
                if moving is not None:
                    ti = np.clip(target.astype(int), 0, [w - 1, h - 1])
                    ok &= ~moving[other][ti[:, 1], ti[:, 0]]
                obs_frames.append(other)
                obs_xy.append(target)
                obs_ok.append(ok)
        if not obs_frames:
            continue
        ok = np.stack(obs_ok)           # (G, K)
        keep = ok.any(0)
        base = sum(len(r) for r in ref_xy)
        new_index = base + np.cumsum(keep) - 1
        ref_frame.append(np.full(keep.sum(), t))
        ref_xy.append(centres[keep].astype(np.float64))
        colour.append(rgb[t][pix[keep, 1], pix[keep, 0]])
        for of, oxy, ook in zip(obs_frames, obs_xy, obs_ok):
            point.append(new_index[ook])
            frame.append(np.full(ook.sum(), of))
            xy.append(oxy[ook].astype(np.float64))
    cat = lambda parts, shape, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)  # noqa: E731
    return Correspondences(cat(ref_frame, (0,), np.int64), cat(ref_xy, (0, 2), np.float64), cat(colour, (0, 3), np.uint8),
                           cat(point, (0,), np.int64), cat(frame, (0,), np.int64), cat(xy, (0, 2), np.float64))


def _lk_refine(gray_a: np.ndarray, gray_b: np.ndarray, xy_a: np.ndarray, xy_b: np.ndarray, ok: np.ndarray):
    """Refine targets xy_b of points xy_a (K, 2) with LK started at DIS's answer; (xy_b', ok')."""
    if not ok.any():
        return xy_b, ok
    sel = np.flatnonzero(ok)
    p0 = (xy_a[sel] - 0.5).astype(np.float32).reshape(-1, 1, 2)
    p1 = (xy_b[sel] - 0.5).astype(np.float32).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.003)
    p1, status, _ = cv2.calcOpticalFlowPyrLK(gray_a, gray_b, p0, p1.copy(), winSize=LK_WINDOW, maxLevel=1,
                                             criteria=criteria, flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
    refined = p1.reshape(-1, 2).astype(np.float64) + 0.5
    moved = np.linalg.norm(refined - xy_b[sel], axis=1)
    good = (status.ravel() == 1) & (moved < LK_MAX_MOVE_PX)
    out, ok = xy_b.copy(), ok.copy()
    out[sel[good]] = refined[good]
    ok[sel[~good]] = False
    return out, ok
