"""Flow metrics on hand-made flow fields with known answers."""
import numpy as np
import pytest

from backend.metrics.flow import endpoint_error, flow_errors, forward_backward_consistent


def constant(h, w, dx, dy):
    return np.broadcast_to(np.array([dx, dy], np.float32), (h, w, 2)).copy()


def test_constant_error_of_five_pixels():
    gt = constant(4, 5, 200.0, 0.0)
    pred = gt + constant(4, 5, 3.0, 4.0)
    np.testing.assert_allclose(endpoint_error(pred, gt), 5.0)
    e = flow_errors(pred, gt)
    assert (e.epe_mean, e.epe_median, e.outliers_1px, e.outliers_3px, e.pixels) == (5.0, 5.0, 100.0, 100.0, 20)
    assert e.fl == 0.0                          # 5 px is under 5 % of a 200 px motion
    assert flow_errors(constant(4, 5, 3, 4), constant(4, 5, 0, 0)).fl == 100.0


def test_mixed_errors_and_valid_mask():
    gt = np.zeros((2, 2, 2, 2))                 # two frame pairs of 2x2
    pred = gt.copy()
    pred[0, 0, 0] = [2.0, 0]                    # EPE 2: an outlier at 1 px, not at 3 px
    pred[0, 0, 1] = [0, 0.5]
    pred[1, 1, 1] = [100.0, 0]                  # excluded below
    valid = np.ones((2, 2, 2), bool)
    valid[1, 1, 1] = False
    e = flow_errors(pred, gt, valid)
    assert e.pixels == 7
    assert e.epe_mean == pytest.approx(2.5 / 7)
    assert e.epe_median == 0.0
    assert e.outliers_1px == pytest.approx(100 / 7)
    assert e.outliers_3px == 0.0
    pred[0, 1, 1] = np.nan                      # a missing prediction counts as an infinite error
    assert flow_errors(pred, gt, valid).outliers_3px == pytest.approx(100 / 7)


def test_forward_backward_check_of_a_translation():
    h, w = 10, 12
    consistent = forward_backward_consistent(constant(h, w, 3, 2), constant(h, w, -3, -2))
    expected = np.zeros((h, w), bool)
    expected[: h - 2, : w - 3] = True           # x + f must land inside the image
    np.testing.assert_array_equal(consistent, expected)
    # A backward flow that does not undo the forward one fails: 13 px² > 0.01 · 13 + 0.5.
    assert not forward_backward_consistent(constant(h, w, 3, 2), constant(h, w, 0, 0)).any()
    # Within the tolerance: a 0.5 px disagreement passes (0.25 < 0.5 + 0.01 · (13 + 9.25)).
    assert forward_backward_consistent(constant(h, w, 3, 2), constant(h, w, -2.5, -2))[:8, :9].all()
