"""Optical-flow metrics: endpoint error and forward-backward consistency. numpy + OpenCV (bilinear lookup).

Flow arrays are (..., H, W, 2) float pixels `(dx, dy)`: where each pixel of the first frame moves to in
the second (the layout of `backend.flow_store`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

# Sundaram, Brox & Keutzer 2010: |f + b'|² < α (|f|² + |b'|²) + β.
FB_ALPHA = 0.01
FB_BETA = 0.5


@dataclass
class FlowErrors:
    """Endpoint-error statistics over the evaluated pixels (see `flow_errors`)."""

    epe_mean: float          # px
    epe_median: float        # px
    outliers_1px: float      # % of pixels with EPE > 1 px
    outliers_3px: float      # % of pixels with EPE > 3 px
    fl: float                # % of KITTI-2015 outliers: EPE > 3 px and EPE > 5 % of |gt|
    pixels: int

    def as_dict(self) -> dict:
        return asdict(self)


def endpoint_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-pixel endpoint error ‖pred - gt‖₂ in pixels: (..., H, W, 2) -> (..., H, W)."""
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    assert pred.shape == gt.shape and pred.shape[-1] == 2, (pred.shape, gt.shape)
    return np.sqrt(np.sum((pred - gt) ** 2, axis=-1))


def flow_errors(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> FlowErrors:
    """EPE statistics of a predicted flow against ground truth over the `valid` pixels.

    pred, gt: (..., H, W, 2) px; valid: (..., H, W) bool (e.g. GT-visible, i.e. non-occluded, pixels);
    pixels whose GT is not finite are left out as well. Reports the mean and median EPE, the share (%) of
    pixels with EPE > 1 px and > 3 px (plain thresholds, as in the 1px/3px columns of Sintel and KITTI 2012),
    and KITTI 2015's Fl (%): EPE > 3 px *and* EPE > 0.05 · ‖gt‖. A non-finite prediction counts as an
    infinite error (an outlier, and it pushes the mean to inf). Pixels are pooled over all leading
    dimensions (all frame pairs) before the statistics are taken.
    """
    epe = endpoint_error(pred, gt)
    gt = np.asarray(gt, np.float64)
    sel = np.all(np.isfinite(gt), axis=-1)
    if valid is not None:
        valid = np.asarray(valid, bool)
        assert valid.shape == epe.shape, (valid.shape, epe.shape)
        sel &= valid
    e = np.where(np.isfinite(epe), epe, np.inf)[sel]
    if e.size == 0:
        nan = float("nan")
        return FlowErrors(nan, nan, nan, nan, nan, 0)
    magnitude = np.linalg.norm(gt[sel], axis=-1)
    return FlowErrors(
        epe_mean=float(np.mean(e)),
        epe_median=float(np.median(e)),
        outliers_1px=float(100.0 * np.mean(e > 1.0)),
        outliers_3px=float(100.0 * np.mean(e > 3.0)),
        fl=float(100.0 * np.mean((e > 3.0) & (e > 0.05 * magnitude))),
        pixels=int(e.size),
    )


def sample_bilinear(field: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear lookup of an (H, W, C) field at pixel-index positions xy (H, W, 2) [x = column, y = row].

    Pixel i covers [i - 0.5, i + 0.5]. Returns the (H, W, C) values (edge pixels repeated beyond the outer
    pixel centres) and an (H, W) bool that is False where xy falls outside the image.
    """
    h, w = field.shape[:2]
    map_x = np.ascontiguousarray(xy[..., 0], np.float32)
    map_y = np.ascontiguousarray(xy[..., 1], np.float32)
    values = cv2.remap(np.ascontiguousarray(field, np.float32), map_x, map_y, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    inside = (map_x >= -0.5) & (map_x <= w - 0.5) & (map_y >= -0.5) & (map_y <= h - 0.5)
    return values.reshape(field.shape[:2] + field.shape[2:]), inside


def forward_backward_consistent(forward: np.ndarray, backward: np.ndarray, alpha: float = FB_ALPHA,
                                beta: float = FB_BETA) -> np.ndarray:
    """(H, W) bool: pixels of the first frame whose forward flow the backward flow undoes.

    forward: (H, W, 2) flow t -> t+g; backward: (H, W, 2) flow t+g -> t. With f = forward(x) and
    b' = backward(x + f) (bilinear), x passes when ‖f + b'‖² < α (‖f‖² + ‖b'‖²) + β
    (Sundaram, Brox & Keutzer 2010; α = 0.01, β = 0.5 px²) and x + f lands inside the image. The same rule
    as the flow stage's own mask, so the check scores Shotfield and its peers alike.
    Pixels failing the check are typically occluded in the second frame, or the flow there is wrong.
    """
    forward = np.asarray(forward, np.float32)
    backward = np.asarray(backward, np.float32)
    assert forward.shape == backward.shape and forward.ndim == 3 and forward.shape[2] == 2, (forward.shape, backward.shape)
    h, w = forward.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), axis=-1)
    b_warped, inside = sample_bilinear(backward, grid + forward)
    lhs = np.sum((forward + b_warped) ** 2, axis=-1)
    rhs = alpha * (np.sum(forward**2, axis=-1) + np.sum(b_warped**2, axis=-1)) + beta
    return inside & (lhs < rhs) & np.all(np.isfinite(forward), axis=-1)
