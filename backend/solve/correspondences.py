"""Flow correspondences for the dense bundle adjustment: points anchored at well-textured static pixels of
a reference frame, observed in the frames the stored flow reaches from there (t +- g for every gap g).

Why anchored points and not long chained tracks: each point has a single unknown (its inverse depth along
the reference pixel's ray), which keeps the bundle adjustment's Schur complement trivial (see dense_ba.py),
and every observation is matched against the reference frame itself, so errors do not accumulate.

Long gaps are verified against the chain of shorter ones (see `_follow`): DIS fails at large
displacements. Every observation is then refined with Lucas-Kanade started at the flow: DIS is a dense,
smoothed field, while LK around a chosen corner snaps to the local texture. The LK window is small on
purpose: LK assumes the patch only translates, and on slanted surfaces (the ground) a large window's
foreshortening biases the match along the motion, which the bundle adjustment turns into a focal-length
error (measured on rendered shots: 15 px windows at 320 px gave 0.4-3 % focal error, 7 px 0.03-0.5 %).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..flow_store import FlowStore

CELL_PX = 8            # one candidate per CELL_PX x CELL_PX cell at 320 px: spreads points over the image
MIN_TEXTURE = 1e-4     # cornerMinEigenVal (image in 0..1) below this: flow there is a guess
LK_HALF_WINDOW_PX = 3  # LK window (2 * 3 + 1 = 7 px at 320 px, scaled with the size): see below
LK_MAX_MOVE_PX = 1.5   # an LK refinement that moves further than this from DIS is not trusted
CHAIN_AGREE_PX = 1.0   # direct long-gap flow within this of the chained flow is trusted (at 320 px)
MAX_TRUSTED_STEP = 4   # chain links are at most this many frames long


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
    gaps = sorted(g for g in gaps if g in store.gaps and g < n)
    ref_frame, ref_xy, colour, point, frame, xy = [], [], [], [], [], []
    count = 0
    for t in (range(n) if frames is None else frames):
        allowed = np.ones((h, w), bool) if moving is None else ~moving[t]
        pix = pick_pixels(texture_score(gray[t]), allowed, cell, per_frame, rng)
        if len(pix) == 0:
            continue
        observed = [obs for d in (1, -1) for obs in _follow(store, gray, moving, t, pix, gaps, d, refine)]
        if not observed:
            continue
        keep = np.any([ok for _, _, ok in observed], axis=0)
        new_index = count + np.cumsum(keep) - 1
        count += int(keep.sum())
        ref_frame.append(np.full(keep.sum(), t))
        ref_xy.append(pix[keep] + 0.5)
        colour.append(rgb[t][pix[keep, 1], pix[keep, 0]])
        for other, target, ok in observed:
            point.append(new_index[ok])
            frame.append(np.full(ok.sum(), other))
            xy.append(target[ok])
    cat = lambda parts, shape, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)  # noqa: E731
    return Correspondences(cat(ref_frame, (0,), np.int64), cat(ref_xy, (0, 2), np.float64), cat(colour, (0, 3), np.uint8),
                           cat(point, (0,), np.int64), cat(frame, (0,), np.int64), cat(xy, (0, 2), np.float64))


def _flow_between(store: FlowStore, src: int, dst: int):
    """(flow (H, W, 2), valid (H, W)) carrying pixels of frame src to frame dst; dst - src must be a stored gap."""
    g = abs(dst - src)
    if dst > src:
        return store.forward(src, g), store.forward_valid(src, g)
    return store.backward(dst, g), store.backward_valid(dst, g)


def _follow(store: FlowStore, gray: np.ndarray, moving: np.ndarray | None, t: int, pix: np.ndarray,
            gaps: list[int], direction: int, refine: bool):
    """Observations [(frame, xy (K, 2), ok (K,))] of pixels `pix` (K, 2) of frame t at t + direction * g.

    Long-gap flow is checked against the chain through the previous gap (t -> t+g' -> t+g): DIS fails at
    large displacements (a fast pan moves 50 px in 8 frames) and the forward-backward check can pass
    such failures when both directions fail alike. The chain is built from links of at most
    MAX_TRUSTED_STEP frames, whose flow is reliable. Where the direct flow agrees with the chain it is used
    (it does not accumulate error), otherwise the chain is (LK then removes its drift); a point whose
    chain broke is not followed on."""
    n, h, w = gray.shape
    centres = pix + 0.5
    out = []
    prev_gap, prev_pos, prev_ok = 0, centres, np.ones(len(pix), bool)
    agree_px = CHAIN_AGREE_PX * max(h, w) / 320
    for g in gaps:
        other = t + direction * g
        if not 0 <= other < n:
            break
        flow, valid = _flow_between(store, t, other)
        direct = centres + flow[pix[:, 1], pix[:, 0]]
        direct_ok = valid[pix[:, 1], pix[:, 0]].copy()
        if prev_gap > 0:
            chain, chain_ok = _chain(store, t, direction, prev_gap, g, prev_pos, prev_ok)
            agree = direct_ok & chain_ok & (np.linalg.norm(direct - chain, axis=1) < agree_px)
            pos, ok = np.where(agree[:, None], direct, chain), chain_ok
        else:
            pos, ok = direct, direct_ok
        if refine:
            pos, ok = _lk_refine(gray[t], gray[other], centres, pos, ok)
        ok &= (pos[:, 0] > 0.5) & (pos[:, 0] < w - 0.5) & (pos[:, 1] > 0.5) & (pos[:, 1] < h - 0.5)
        if moving is not None:
            ti = np.clip(pos.astype(int), 0, [w - 1, h - 1])
            ok &= ~moving[other][ti[:, 1], ti[:, 0]]
        out.append((other, pos.astype(np.float64), ok))
        prev_gap, prev_pos, prev_ok = g, pos, ok
    return out


def _chain(store: FlowStore, t: int, direction: int, start: int, end: int, pos: np.ndarray, ok: np.ndarray):
    """Carry positions pos (K, 2) at frame t + direction * start on to t + direction * end through stored
    flows of at most MAX_TRUSTED_STEP frames each; (positions, ok)."""
    h, w = store.height, store.width
    pos, ok = pos.copy(), ok.copy()
    current = start
    while current < end:
        usable = [s for s in store.gaps if s <= min(MAX_TRUSTED_STEP, end - current)]
        if not usable:
            return pos, np.zeros_like(ok)
        step = max(usable)
        flow, valid = _flow_between(store, t + direction * current, t + direction * (current + step))
        xi = np.clip(np.rint(pos - 0.5).astype(int), 0, [w - 1, h - 1])
        ok &= valid[xi[:, 1], xi[:, 0]]
        pos = pos + _sample(flow, pos)
        current += step
    return pos, ok


def _lk_refine(gray_a: np.ndarray, gray_b: np.ndarray, xy_a: np.ndarray, xy_b: np.ndarray, ok: np.ndarray):
    """Refine targets xy_b of points xy_a (K, 2) with LK started at DIS's answer; (xy_b', ok')."""
    if not ok.any():
        return xy_b, ok
    sel = np.flatnonzero(ok)
    p0 = (xy_a[sel] - 0.5).astype(np.float32).reshape(-1, 1, 2)
    p1 = (xy_b[sel] - 0.5).astype(np.float32).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.003)
    half = max(2, round(LK_HALF_WINDOW_PX * max(gray_a.shape) / 320))
    p1, status, _ = cv2.calcOpticalFlowPyrLK(gray_a, gray_b, p0, p1.copy(), winSize=(2 * half + 1, 2 * half + 1), maxLevel=1,
                                             criteria=criteria, flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
    refined = p1.reshape(-1, 2).astype(np.float64) + 0.5
    moved = np.linalg.norm(refined - xy_b[sel], axis=1)
    good = (status.ravel() == 1) & (moved < LK_MAX_MOVE_PX)
    out, ok = xy_b.copy(), ok.copy()
    out[sel[good]] = refined[good]
    ok[sel[~good]] = False
    return out, ok
