"""Depth-map metrics of Eigen et al. 2014 (AbsRel, SqRel, RMSE, RMSE log, δ thresholds). numpy only."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class DepthErrors:
    """Depth errors over the evaluated pixels (see `depth_errors`)."""

    abs_rel: float      # mean |d - d*| / d*
    sq_rel: float       # mean (d - d*)² / d*
    rmse: float         # sqrt(mean (d - d*)²), GT units
    rmse_log: float     # sqrt(mean (log d - log d*)²)
    delta1: float       # fraction with max(d/d*, d*/d) < 1.25
    delta2: float       # ... < 1.25²
    delta3: float       # ... < 1.25³
    scale: float        # factor applied to the prediction (1 without median scaling)
    pixels: int         # number of evaluated pixels
    coverage: float     # evaluated pixels / valid GT pixels (the prediction is missing on the rest)

    def as_dict(self) -> dict:
        return asdict(self)


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """Pixels holding a depth: finite and > 0 (Shotfield writes 0 or inf where depth is unknown)."""
    depth = np.asarray(depth)
    return np.isfinite(depth) & (depth > 0)


def depth_errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, median_scaling: bool = False,
                 max_depth: float | None = None) -> DepthErrors:
    """Standard monocular-depth errors (Eigen, Puhrsch & Fergus 2014), d = prediction, d* = ground truth.

    pred, gt: (...,) planar depth of the same shape, e.g. (H, W) or (F, H, W). mask: optional bool of that
    shape, True = evaluate. Pixels are evaluated where the GT is valid (finite, > 0, ≤ max_depth if given),
    the mask is True and the prediction is valid too; `coverage` reports the share of valid GT pixels whose
    prediction is valid, so a method cannot gain by leaving hard pixels empty unnoticed.

    median_scaling: for scale-ambiguous depth (monocular, SfM), multiply the prediction by
    s = median(d*) / median(d) over the evaluated pixels first (Zhou et al. 2017); `scale` records s.
    Returns NaN metrics (pixels = 0) when nothing can be evaluated.
    """
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    assert pred.shape == gt.shape, (pred.shape, gt.shape)
    gt_ok = valid_depth(gt)
    if max_depth is not None:
        gt_ok &= gt <= max_depth
    if mask is not None:
        mask = np.asarray(mask, bool)
        assert mask.shape == gt.shape, (mask.shape, gt.shape)
        gt_ok &= mask
    sel = gt_ok & valid_depth(pred)
    n_gt, n = int(gt_ok.sum()), int(sel.sum())
    coverage = n / n_gt if n_gt else float("nan")
    if n == 0:
        nan = float("nan")
        return DepthErrors(nan, nan, nan, nan, nan, nan, nan, nan, 0, coverage)
    d, d_star = pred[sel], gt[sel]
    scale = float(np.median(d_star) / np.median(d)) if median_scaling else 1.0
    d = d * scale
    diff = d - d_star
    ratio = np.maximum(d / d_star, d_star / d)
    return DepthErrors(
        abs_rel=float(np.mean(np.abs(diff) / d_star)),
        sq_rel=float(np.mean(diff**2 / d_star)),
        rmse=float(np.sqrt(np.mean(diff**2))),
        rmse_log=float(np.sqrt(np.mean((np.log(d) - np.log(d_star)) ** 2))),
        delta1=float(np.mean(ratio < 1.25)),
        delta2=float(np.mean(ratio < 1.25**2)),
        delta3=float(np.mean(ratio < 1.25**3)),
        scale=scale,
        pixels=n,
        coverage=coverage,
    )
