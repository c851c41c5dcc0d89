"""Focal length from the flow alone (self-calibration), the starting point of the learned-camera mode.

With the cameras withheld, the photometric loss from per-frame poses at identity falls into a short-focal,
shallow-scene minimum (measured: f = 61.6 px learned for a true 142.2 px). The epipolar geometry pins f
much better: the flow of static pixels between two frames satisfies an essential matrix only with the
right intrinsics. A translation alone produces flow radial from the epipole whatever the focal length,
but the rotation-induced part of the flow (x^2 / f terms) does not fit an essential matrix at a wrong f.

    scan_focal(shot) -> FocalScan(f, candidates, costs, pairs)

For candidate focal lengths (a geometric grid, then a finer one around the best), the static,
forward-backward consistent flow correspondences of several frame pairs are normalised with
K = [[f, 0, w/2], [0, f, h/2], [0, 0, 1]], an essential matrix is fitted to each pair with OpenCV's
MAGSAC++ (USAC), and the cost is the mean Sampson distance in pixels, truncated at TRUNCATE_PX (outliers count as a
constant). The focal length of least cost wins; the principal point is taken at the image centre.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .shot import ShotInputs

COARSE = np.geomspace(0.3, 3.0, 41)    # candidate f / max(w, h)
FINE_SPAN, FINE_COUNT = 0.12, 49       # then +-12 % around the best coarse candidate (0.5 % steps)
TRUNCATE_PX = 1.0
RANSAC_PX = 0.5
METHOD = cv2.USAC_MAGSAC   # measured: plain RANSAC leaves 5-18 % noise on the minimum, MAGSAC++ < 0.5 %
MAX_PAIRS = 12
POINTS_PER_PAIR = 1500
#: A longer gap gives more rotation per pair; gap 4 measured better than 8 on the quick shot (plain RANSAC:
#: 0.8 % against 5 % off; gap 8 has more occlusion and fewer consistent pixels).
GAPS = (4, 2)


@dataclass
class FocalScan:
    f: float                    # pixels, working resolution
    candidates: np.ndarray      # (C,) focal lengths tried
    costs: np.ndarray           # (C,) mean truncated Sampson distance (px)
    pairs: int                  # frame pairs used

    def summary(self) -> dict:
        """For depth.json; `contrast`: the least cost of the focal lengths more than 1.5x off over the best
        (near 1 means the flow does not pin f: little camera rotation)."""
        best = float(self.costs.min())
        far = np.abs(np.log(self.candidates / self.f)) > np.log(1.5)
        contrast = float(self.costs[far].min() / max(best, 1e-9)) if far.any() else None
        return {"f": round(self.f, 3), "pairs": self.pairs, "cost_px": round(best, 5),
                "contrast": None if contrast is None else round(contrast, 3)}


def correspondences(shot: ShotInputs, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to MAX_PAIRS (p_t, p_s) arrays (N, 2) of static, forward-backward consistent flow matches, from
    the longest gap in GAPS the shot has, spread over the shot."""
    rng = np.random.default_rng(seed)
    by_gap = {}
    for p in shot.pairs:
        if p.s > p.t:
            by_gap.setdefault(p.s - p.t, []).append(p)
    gap = next((g for g in GAPS if g in by_gap), max(by_gap, default=None))
    if gap is None:
        return []
    pairs = by_gap[gap]
    spread = np.unique(np.linspace(0, len(pairs) - 1, min(MAX_PAIRS, len(pairs))).round().astype(int))
    chosen = [pairs[i] for i in spread]
    out = []
    for p in chosen:
        static = ~cv2.dilate(shot.moving[p.t].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        ys, xs = np.nonzero(p.valid & static)
        if len(xs) < 50:
            continue
        k = rng.choice(len(xs), min(POINTS_PER_PAIR, len(xs)), replace=False)
        a = np.stack([xs[k] + 0.5, ys[k] + 0.5], 1).astype(np.float64)
        out.append((a, a + p.flow[ys[k], xs[k]].astype(np.float64)))
    return out


def _sampson_px(E: np.ndarray, a: np.ndarray, b: np.ndarray, f: float) -> np.ndarray:
    a3, b3 = np.c_[a, np.ones(len(a))], np.c_[b, np.ones(len(b))]
    Ea, Etb = a3 @ E.T, b3 @ E
    num = (b3 * Ea).sum(1) ** 2
    den = Ea[:, 0] ** 2 + Ea[:, 1] ** 2 + Etb[:, 0] ** 2 + Etb[:, 1] ** 2
    return np.sqrt(num / np.maximum(den, 1e-30)) * f


def epipolar_cost(matches, f: float, cx: float, cy: float) -> float:
    """Mean over pairs of the truncated mean Sampson distance (px) of the best essential matrix at focal f."""
    costs = []
    for a, b in matches:
        an = (a - (cx, cy)) / f
        bn = (b - (cx, cy)) / f
        E, _ = cv2.findEssentialMat(an, bn, np.eye(3), METHOD, 0.999, RANSAC_PX / f)
        if E is None or E.shape[0] < 3:
            costs.append(TRUNCATE_PX)
            continue
        # RANSAC may return several solutions stacked; keep the one that fits best
        costs.append(min(float(np.minimum(_sampson_px(E[i:i + 3], an, bn, f), TRUNCATE_PX).mean())
                         for i in range(0, E.shape[0] - 2, 3)))
    return float(np.mean(costs)) if costs else TRUNCATE_PX


def scan_focal(shot: ShotInputs, seed: int = 0) -> FocalScan | None:
    """The self-calibrated focal length (pixels of the working resolution), or None without usable flow."""
    matches = correspondences(shot, seed)
    if not matches:
        return None
    h, w = shot.size
    cx, cy = w / 2, h / 2
    cv2.setRNGSeed(seed)  # RANSAC's sampling: the same shot gives the same focal length
    coarse = COARSE * max(w, h)
    coarse_cost = np.array([epipolar_cost(matches, f, cx, cy) for f in coarse])
    best = coarse[int(np.argmin(coarse_cost))]
    fine = best * np.geomspace(1 - FINE_SPAN, 1 + FINE_SPAN, FINE_COUNT)
    fine_cost = np.array([epipolar_cost(matches, f, cx, cy) for f in fine])
    # RANSAC leaves some noise on each cost: the minimum of the 3-tap smoothed fine curve
    smooth = np.convolve(np.pad(fine_cost, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    f = float(fine[int(np.argmin(smooth))])
    candidates = np.concatenate([coarse, fine])
    costs = np.concatenate([coarse_cost, fine_cost])
    order = np.argsort(candidates)
    return FocalScan(f, candidates[order], costs[order], len(matches))
