"""Depth metrics on hand-made depth maps with known answers."""
import math

import numpy as np
import pytest

from backend.metrics.depth import depth_errors


def ramp():
    return np.linspace(1.0, 10.0, 48).reshape(6, 8)


def test_ten_percent_too_far():
    gt = ramp()
    e = depth_errors(1.1 * gt, gt)
    assert e.abs_rel == pytest.approx(0.1)
    assert e.sq_rel == pytest.approx(0.01 * gt.mean())          # (0.1 d*)² / d* = 0.01 d*
    assert e.rmse == pytest.approx(0.1 * math.sqrt(np.mean(gt**2)))
    assert e.rmse_log == pytest.approx(math.log(1.1))
    assert (e.delta1, e.delta2, e.delta3) == (1.0, 1.0, 1.0)
    assert e.scale == 1.0 and e.pixels == 48 and e.coverage == 1.0


def test_median_scaling_removes_a_global_scale():
    gt = ramp()
    e = depth_errors(0.5 * gt, gt, median_scaling=True)
    assert e.scale == pytest.approx(2.0)
    assert e.abs_rel == pytest.approx(0, abs=1e-12)
    assert depth_errors(0.5 * gt, gt).abs_rel == pytest.approx(0.5)


def test_delta_thresholds_are_symmetric_in_the_ratio():
    gt = ramp()
    pred = gt.copy()
    pred[:3] *= 1.3      # ratio 1.3: fails δ1, passes δ2
    pred[3:] /= 1.6      # ratio 1.6: fails δ1 and δ2 (1.5625), passes δ3
    e = depth_errors(pred, gt)
    assert (e.delta1, e.delta2, e.delta3) == (0.0, 0.5, 1.0)


def test_invalid_ground_truth_and_mask_are_ignored():
    gt = ramp()
    pred = 1.1 * gt
    gt[0, 0], gt[0, 1], gt[0, 2] = 0.0, np.inf, np.nan
    pred[0, :3] = 1e6                                # would dominate if counted
    mask = np.ones_like(gt, bool)
    mask[5] = False
    pred[5] = -3.0                                   # outside the mask
    e = depth_errors(pred, gt, mask=mask)
    assert e.abs_rel == pytest.approx(0.1)
    assert e.pixels == 48 - 3 - 8
    e = depth_errors(pred, gt, max_depth=5.0)
    assert e.pixels == int(np.sum(np.isfinite(gt) & (gt > 0) & (gt <= 5.0)))  # row 5 (-3) lies beyond 5 m
    assert e.abs_rel == pytest.approx(0.1)


def test_missing_predictions_lower_the_coverage():
    gt = ramp()
    pred = gt.copy()
    pred[:, :2] = 0.0                                # a quarter of the pixels unknown
    e = depth_errors(pred, gt)
    assert e.coverage == pytest.approx(0.75)
    assert e.abs_rel == 0.0
    assert depth_errors(np.zeros_like(gt), gt).pixels == 0
