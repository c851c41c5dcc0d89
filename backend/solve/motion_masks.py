"""What moves independently of the camera, found in the stored flow. Two passes:

1. Before any camera is known (`epipolar_masks`): for each frame pair (t, t+g) a robust global model of
   the static scene's motion is fitted to the flow -- a fundamental matrix, or a homography where one
   explains the flow as well (little parallax, where F is degenerate and would swallow moving things) --
   and every pixel of both frames votes "moving" where its flow disagrees with the model.
2. Once the cameras are solved (`geometric_masks`): each pixel's flows to all frames within the gaps are
   triangulated to one depth with the solved cameras, and a pixel whose observations cannot be explained
   by any static depth is moving. This also catches motion along the epipolar lines, which pass 1 cannot.

Thresholds adapt to each pair: a residual counts as moving above NOISE_SIGMAS robust standard deviations
of the static set's residuals in that pair (measured on the static model's inliers, so an object that
fills most of the frame does not inflate it). Objects that move roughly along the epipolar lines -- the
usual case of a camera and a subject both moving sideways -- stray from the static model by well under a
pixel, so fixed pixel thresholds miss them.
Votes from every pair and gap touching a frame are pooled per pixel (the consolidation over time), then a
hysteresis step keeps only regions that contain a strong seed, holes are closed and the mask is grown by a
margin, since flow is least reliable at an object's boundary.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..flow_store import FlowStore
from .track import CameraTrack

GRID_STEP = 4            # sample every 4th pixel for the robust model fits
FIT_THRESHOLD_PX = 1.0   # RANSAC inlier threshold of the model fits (at 320 px)
MIN_THRESHOLD_PX = 0.25  # a residual below this is flow noise, at any size (at 320 px)
NOISE_SIGMAS = 6.0       # moving where the residual exceeds this many robust sigmas of the pair's residuals
ALONG_EPIPOLAR_DISCOUNT = 4.0  # pass 2: an error along the epipolar line counts a quarter (see below)
MAX_GAP = 8              # longer gaps: DIS flow fails too often at large displacements to judge motion
MIN_SECOND_SHARE = 0.15  # a second motion is looked for when the first leaves this share of the samples
VOTE_FRACTION = 0.5      # moving where at least this share of the pixel's valid pairs says so
MARGIN_FRACTION = 0.01   # grow masks by 1 % of the long side (3 px at 320)


def pixel_grid(h: int, w: int, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    return xs.ravel(), ys.ravel()


def sampson_distance(F: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """First-order geometric distance (px) of correspondences p1 -> p2 (K, 2) to the epipolar geometry F."""
    x1 = np.c_[p1, np.ones(len(p1))]
    x2 = np.c_[p2, np.ones(len(p2))]
    Fx1 = x1 @ F.T
    Ftx2 = x2 @ F
    num = np.sum(x2 * Fx1, axis=1)
    den = Fx1[:, 0] ** 2 + Fx1[:, 1] ** 2 + Ftx2[:, 0] ** 2 + Ftx2[:, 1] ** 2
    return np.abs(num) / np.sqrt(np.maximum(den, 1e-12))


def transfer_error(Hm: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    q = np.c_[p1, np.ones(len(p1))] @ Hm.T
    return np.linalg.norm(q[:, :2] / q[:, 2:3] - p2, axis=1)


def fit_motion(p1: np.ndarray, p2: np.ndarray, threshold: float):
    """Robust two-view model of correspondences p1 -> p2 (K, 2): (kind 'F' | 'H', residual function,
    inlier mask) or None. The homography wins when it keeps at least 95 % of the fundamental matrix's
    inliers: with little parallax F is degenerate and would swallow independent motion."""
    if len(p1) < 16:
        return None
    a, b = p1.astype(np.float32), p2.astype(np.float32)
    Hm, _ = cv2.findHomography(a, b, cv2.USAC_MAGSAC, threshold, maxIters=2000, confidence=0.999)
    F, _ = cv2.findFundamentalMat(a, b, cv2.USAC_MAGSAC, threshold, 0.999, 2000)
    h_in = transfer_error(Hm, p1, p2) < threshold if Hm is not None else np.zeros(len(p1), bool)
    f_in = sampson_distance(F, p1, p2) < threshold if F is not None and F.shape == (3, 3) else np.zeros(len(p1), bool)
    if not h_in.any() and not f_in.any():
        return None
    if h_in.sum() >= 0.95 * f_in.sum():
        return "H", (lambda x, y: transfer_error(Hm, x, y)), h_in
    return "F", (lambda x, y: sampson_distance(F, x, y)), f_in


def fit_static_model(p1: np.ndarray, p2: np.ndarray, threshold: float):
    """The two-view model of the static scene: ('F' | 'H', residual function, noise sigma px) or None.
    sigma comes from the model's own inliers (median |r| / 0.674), so it measures the flow noise of the
    static set, not a mixture with whatever moves.

    The dominant motion is not always the static scene: an object close to the camera can fill half the
    frame or more. So a second model is fitted to what the first leaves over, and the one whose inliers are
    spread more widely over the image (the larger total variance of their positions) is the static set:
    what moves independently is one compact object, while the static set surrounds it and reaches the
    image edges on several sides -- even when it covers less area."""
    first = fit_motion(p1, p2, threshold)
    if first is None:
        return None
    chosen = first
    rest = ~first[2]
    if rest.sum() >= max(16, MIN_SECOND_SHARE * len(p1)):
        second = fit_motion(p1[rest], p2[rest], threshold)
        if second is not None:
            # Each sample goes to the model that explains it better (an F, a 1-D constraint, also passes
            # many samples of the other motion), then the two groups' spreads are compared.
            r1, r2 = first[1](p1, p2), second[1](p1, p2)
            own1 = (r1 < threshold) & (r1 <= r2)
            own2 = (r2 < threshold) & (r2 < r1)

            def spread(inliers):
                return float(np.trace(np.cov(p1[inliers].T))) if inliers.sum() > 2 else 0.0

            if spread(own2) > spread(own1):
                chosen = (second[0], second[1], own2)
    kind, residual, inliers = chosen
    sigma = float(np.median(residual(p1[inliers], p2[inliers]))) / 0.674 if inliers.sum() > 8 else None
    return kind, residual, sigma


class _Votes:
    """Per-frame tallies of moving votes and valid votes, pooled over every pair that touches a frame.
    Thresholds are in pixels at the working size `long_side` (the constants above are at 320 px)."""

    def __init__(self, n: int, h: int, w: int, long_side: int):
        self.moving = np.zeros((n, h, w), np.float32)
        self.strong = np.zeros((n, h, w), np.float32)
        self.total = np.zeros((n, h, w), np.float32)
        self.floor = MIN_THRESHOLD_PX * long_side / 320
        self.fit = FIT_THRESHOLD_PX * long_side / 320

    def add(self, t: int, residual: np.ndarray, valid: np.ndarray, weight: float, sigma: float | None = None) -> None:
        """Residuals (H, W) px of one pair seen from frame t: moving above NOISE_SIGMAS times the pair's noise
        sigma (given, or from its residuals below the fit threshold, which are static), never below the floor.
        Votes are weighted by the pair's gap: over a short gap a two-view model absorbs slow independent
        motion (an F has 7 degrees of freedom for a few pixels of flow), over a long one it cannot."""
        if valid.sum() < 16:
            return
        if sigma is None:
            small = residual[valid & (residual < self.fit)]
            sigma = float(np.median(small if small.size > 16 else residual[valid])) / 0.674
        threshold = max(self.floor, NOISE_SIGMAS * sigma)
        self.moving[t] += weight * ((residual > threshold) & valid)
        self.strong[t] += weight * ((residual > 2.0 * threshold) & valid)
        self.total[t] += weight * valid

    def masks(self) -> np.ndarray:
        """(F, H, W) bool, cleaned up."""
        share = self.moving / np.maximum(self.total, 1.0)
        strong = self.strong / np.maximum(self.total, 1.0)
        return np.stack([clean_mask(s >= VOTE_FRACTION, st >= VOTE_FRACTION) for s, st in zip(share, strong)])


def clean_mask(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """Hysteresis (weak regions that contain a strong pixel), speckle removal, hole closing and a margin."""
    h, w = weak.shape
    weak = cv2.morphologyEx(weak.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels = cv2.connectedComponents(weak, connectivity=8)
    seeded = np.zeros(count, bool)
    seeded[np.unique(labels[strong & (weak > 0)])] = True
    seeded[0] = False
    # A region also needs some size: a few pixels of bad flow are not an object.
    sizes = np.bincount(labels.ravel(), minlength=count)
    seeded &= sizes >= max(12, int(2e-4 * h * w))
    mask = seeded[labels].astype(np.uint8)
    r = max(1, round(MARGIN_FRACTION * max(h, w)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, k)
    return cv2.dilate(mask, k).astype(bool)


def _gaps(store: FlowStore, gaps: list[int] | None) -> list[int]:
    return [g for g in (gaps or store.gaps) if g in store.gaps and g < store.frames and g <= MAX_GAP]


def epipolar_masks(store: FlowStore, gaps: list[int] | None = None, step: int = 2) -> np.ndarray:
    """(F, H, W) bool: pixels whose flow the static scene's two-view model cannot explain (pass 1).
    Judged at every `step`-th pixel (masks are grown by a margin anyway), then scaled up."""
    n, h, w = store.frames, store.height, store.width
    gaps = _gaps(store, gaps)
    xs, ys = pixel_grid(h, w, step)
    hs, ws = len(range(0, h, step)), len(range(0, w, step))
    votes = _Votes(n, hs, ws, max(h, w))
    gx, gy = pixel_grid(h, w, GRID_STEP)
    centres = np.c_[xs, ys] + 0.5
    for g in gaps:
        for t in range(n - g):
            fwd, fok = store.forward(t, g), store.forward_valid(t, g)
            sel = fok[gy, gx]
            p1 = np.c_[gx[sel], gy[sel]] + 0.5
            p2 = p1 + fwd[gy[sel], gx[sel]]
            model = fit_static_model(p1, p2, votes.fit)
            if model is None:
                continue
            kind, residual, sigma = model
            bwd, bok = store.backward(t, g), store.backward_valid(t, g)
            r_fwd = residual(centres, centres + fwd[ys, xs]).reshape(hs, ws)
            r_bwd = residual(centres + bwd[ys, xs], centres).reshape(hs, ws)  # frame t+g pixels, back to t
            votes.add(t, r_fwd, fok[ys, xs].reshape(hs, ws), g, sigma)
            votes.add(t + g, r_bwd, bok[ys, xs].reshape(hs, ws), g, sigma)
    return _upsample(votes.masks(), h, w)


def _upsample(masks: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) for m in masks]).astype(bool)


def geometric_masks(store: FlowStore, track: CameraTrack, gaps: list[int] | None = None, step: int = 2,
                    rotation_only: bool = False) -> np.ndarray:
    """(F, H, W) bool: pixels no static point explains given the solved cameras (pass 2).

    For every `step`-th pixel of frame t, its flows to t +- g are triangulated to the least-squares inverse
    depth (see dense_ba.triangulate_inverse_depth; 0 for a tripod) and its reprojection error in each
    observing frame votes like in pass 1."""
    n, h, w = store.frames, store.height, store.width
    gaps = _gaps(store, gaps)
    K = track.intrinsics.K
    Kinv = np.linalg.inv(K)
    xs, ys = pixel_grid(h, w, step)
    hs, ws = len(range(0, h, step)), len(range(0, w, step))
    centres = np.c_[xs, ys] + 0.5
    ray = np.c_[centres, np.ones(len(xs))] @ Kinv.T
    votes = _Votes(n, hs, ws, max(h, w))
    for t in range(n):
        obs = []  # (frame, xy (K, 2), valid (K,))
        for g in gaps:
            if t + g < n:
                obs.append((t + g, centres + store.forward(t, g)[ys, xs], store.forward_valid(t, g)[ys, xs]))
            if t - g >= 0:
                obs.append((t - g, centres + store.backward(t - g, g)[ys, xs], store.backward_valid(t - g, g)[ys, xs]))
        if not obs:
            continue
        A, B, nrm, ok = [], [], [], []
        for b, xy, valid in obs:
            Rb_T = track.rotation[b].T
            A.append(ray @ (Rb_T @ track.rotation[t]).T)
            B.append(np.broadcast_to(Rb_T @ (track.centre[t] - track.centre[b]), (len(xs), 3)))
            nrm.append(np.c_[xy, np.ones(len(xs))] @ Kinv.T)
            ok.append(valid)
        A, B, nrm, ok = map(np.stack, (A, B, nrm, ok))  # (G, K, 3) / (G, K)
        err = _robust_triangulation_error(A, B, nrm, ok, K, rotation_only)
        for (b, _, _), e, v in zip(obs, err, ok):
            votes.add(t, e.reshape(hs, ws), v.reshape(hs, ws), abs(b - t))
    return _upsample(votes.masks(), h, w)


def _robust_triangulation_error(A, B, nrm, ok, K, rotation_only: bool, iterations: int = 3,
                                scale_px: float = 0.5) -> np.ndarray:
    """Reprojection errors (G, K) px of each pixel's observations at its robustly triangulated inverse depth,
    with the component along the epipolar line divided by ALONG_EPIPOLAR_DISCOUNT.

    The image of the pixel in observing frame b is A + rho B (see dense_ba.triangulate_inverse_depth); rho
    is the least-squares solution reweighted with a Cauchy weight (scale_px) a few times, so that one bad
    flow vector does not drag the depth and make all the pixel's other observations look wrong.
    Why the discount: optical flow is least accurate across depth edges, where it blurs the parallax of a
    thin foreground object into its background -- an error along the epipolar line, which looks like a
    depth that disagrees between gaps. Only a much larger disagreement there is taken as motion."""
    f, c = K[0, 0], K[:2, 2]
    target = nrm[..., :2] * f + c
    k = np.stack([nrm[..., 0] * B[..., 2] - B[..., 0], nrm[..., 1] * B[..., 2] - B[..., 1]], -1)
    m = np.stack([A[..., 0] - nrm[..., 0] * A[..., 2], A[..., 1] - nrm[..., 1] * A[..., 2]], -1)
    weight = ok.astype(np.float64)
    rho = np.zeros(A.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(1 if rotation_only else iterations):
            if not rotation_only:
                num = np.sum((k * m).sum(-1) * weight, 0)
                den = np.sum((k * k).sum(-1) * weight, 0)
                rho = np.maximum(np.where(den > 1e-12, num / np.maximum(den, 1e-12), 0.0), 0.0)
            X = A + rho[None, :, None] * B
            residual = f * X[..., :2] / X[..., 2:3] + c - target
            err = np.linalg.norm(residual, axis=-1)
            err = np.where(np.isfinite(err) & (X[..., 2] > 0), err, 1e3)
            weight = ok / (1.0 + (err / scale_px) ** 2)
        if rotation_only:
            return err
        # Direction of the epipolar line at the prediction: d pred / d rho = f (B_xy X_z - X_xy B_z) / X_z^2.
        d = f * (B[..., :2] * X[..., 2:3] - X[..., :2] * B[..., 2:3]) / X[..., 2:3] ** 2
        norm = np.linalg.norm(d, axis=-1, keepdims=True)
        d = np.where(norm > 1e-9, d / np.maximum(norm, 1e-12), 0.0)
        along = np.sum(residual * d, -1)
        perp = np.sqrt(np.maximum(err**2 - along**2, 0.0))
        out = np.sqrt(perp**2 + (along / ALONG_EPIPOLAR_DISCOUNT) ** 2)
    return np.where(np.isfinite(out) & (err < 1e3), out, 1e3)


def mask_quality(pred: np.ndarray, truth: np.ndarray) -> dict:
    """IoU, recall and false-positive rate of predicted moving masks against true ones (both (F, H, W) bool)."""
    inter = np.logical_and(pred, truth).sum()
    union = np.logical_or(pred, truth).sum()
    return {"iou": float(inter / union) if union else 1.0,
            "recall": float(inter / truth.sum()) if truth.sum() else 1.0,
            "false_positive_rate": float(np.logical_and(pred, ~truth).sum() / max((~truth).sum(), 1))}
