"""Camera metrics on hand-made trajectories with known answers."""
import math

import numpy as np
import pytest

from backend.metrics.camera import (camera_errors, focal_error_percent, orientation_alignment, path_length,
                                    rotation_angle_deg, umeyama_sim3)


def rot(axis, degrees):
    """Rotation matrix about a unit axis (Rodrigues)."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = math.radians(degrees)
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


def poses(centres, rotations):
    out = np.tile(np.eye(4), (len(centres), 1, 1))
    out[:, :3, :3] = rotations
    out[:, :3, 3] = centres
    return out


def handheld(frames=12):
    """A curved, non-planar path with orientations that turn as the camera moves."""
    t = np.linspace(0, 1, frames)
    centres = np.stack([2 * t, 0.3 * np.sin(3 * t), 0.2 * t**2], axis=1)
    rotations = np.stack([rot([0.1, 1, 0.2], 20 * ti) for ti in t])
    return poses(centres, rotations)


def transform(pose, s, R, t):
    """Express poses in a world where x_new = s R x_old + t (what an SfM solve could return)."""
    out = pose.copy()
    out[:, :3, 3] = s * pose[:, :3, 3] @ R.T + t
    out[:, :3, :3] = R @ pose[:, :3, :3]
    return out


SIM = (0.37, rot([1, -2, 0.5], 123), np.array([4.0, -1.0, 7.0]))


def test_similar_copy_has_zero_error_and_recovers_the_scale():
    gt = handheld()
    est = transform(gt, *SIM)
    errors = camera_errors(est, gt)
    assert errors.alignment.mode == "sim3"
    assert errors.ate == pytest.approx(0, abs=1e-9)
    assert errors.rotation_mean_deg == pytest.approx(0, abs=1e-5)
    assert errors.alignment.sim3.scale == pytest.approx(1 / 0.37)
    assert errors.frames == 12


def test_known_offset_gives_known_ate():
    # Square in z = 0, estimate lifted ±e alternately: Umeyama keeps R = I, t = 0, s = 2 / (2 + e²),
    # so the mean squared error is 2(1-s)² + s²e² = 2e² / (2 + e²): ATE = e · sqrt(2 / (2 + e²)).
    e = 0.1
    gt = poses(np.array([[1, 1, 0], [1, -1, 0], [-1, -1, 0], [-1, 1, 0]], float), np.tile(np.eye(3), (4, 1, 1)))
    est = gt.copy()
    est[:, 2, 3] = e * np.array([1, -1, 1, -1])
    expected = e * math.sqrt(2 / (2 + e**2))
    errors = camera_errors(est, gt)
    assert errors.alignment.sim3.scale == pytest.approx(2 / (2 + e**2))
    assert errors.ate == pytest.approx(expected)
    assert errors.gt_path_length == pytest.approx(6.0)
    assert errors.ate_percent == pytest.approx(100 * expected / 6.0)
    # The same error seen through an arbitrary similarity: ATE is measured in GT units, so unchanged.
    assert camera_errors(transform(est, *SIM), gt).ate == pytest.approx(expected)


def test_rotation_error_of_a_constant_tilt():
    gt = handheld()
    est = transform(gt, *SIM)
    est[:, :3, :3] = est[:, :3, :3] @ rot([0, 0, 1], 5.0)  # each camera rolled 5° about its own axis
    errors = camera_errors(est, gt)
    assert errors.ate == pytest.approx(0, abs=1e-9)
    assert errors.rotation_mean_deg == pytest.approx(5.0)
    assert errors.rotation_median_deg == pytest.approx(5.0)


def test_orientation_error_is_free_of_the_alignments_own_error():
    # Centres off by a few mm on a gently curved path, orientations exact: the Sim(3)'s rotation tilts,
    # and with it the rotation error; the orientation error does not.
    t = np.linspace(0, 1, 20)
    gt = poses(np.stack([3 * t, 0.05 * np.sin(6 * t), 0.02 * t], axis=1), np.stack([rot([0, 1, 0], 10 * ti) for ti in t]))
    est = gt.copy()
    est[:, :3, 3] += np.random.default_rng(0).normal(scale=0.01, size=(20, 3))
    errors = camera_errors(transform(est, *SIM), gt)
    assert errors.alignment.mode == "sim3"
    assert errors.rotation_median_deg > 0.1
    assert errors.orientation_median_deg == pytest.approx(0, abs=1e-5)
    # Errors no global rotation can undo: cameras rolled +5° and -5° in turn.
    wobbly = gt.copy()
    wobbly[:, :3, :3] = np.stack([rot([0, 0, 1], 5.0 * (-1) ** i) for i in range(20)])
    level = gt.copy()
    level[:, :3, :3] = np.eye(3)
    errors = camera_errors(transform(wobbly, *SIM), level)
    assert errors.orientation_mean_deg == pytest.approx(5.0)
    # The caveat: a constant roll in the camera frame is almost a global rotation when the orientations
    # vary little, so the orientation error hides most of it (the rotation error does not).
    tilted = transform(gt, *SIM)
    tilted[:, :3, :3] = tilted[:, :3, :3] @ rot([0, 0, 1], 5.0)
    errors = camera_errors(tilted, gt)
    assert errors.orientation_median_deg < 1.0 and errors.rotation_median_deg == pytest.approx(5.0)


def test_focal_error_in_percent_and_with_resized_frames():
    K = np.array([[500.0, 0, 160], [0, 500, 120], [0, 0, 1]])
    gt_K = np.tile(K, (3, 1, 1))
    est_K = gt_K.copy()
    est_K[:, 0, 0] = [510, 490, 520]
    assert focal_error_percent(est_K, gt_K) == pytest.approx([2, 2, 4])
    gt = handheld(3)
    assert camera_errors(gt, gt, est_K, gt_K).focal_percent == pytest.approx(2.0)
    half = gt_K.copy()
    half[:, 0, 0] = 250  # solved on 160-wide frames
    assert camera_errors(gt, gt, half, gt_K, est_width=160, gt_width=320).focal_percent == pytest.approx(0.0)
    assert math.isnan(camera_errors(gt, gt).focal_percent)


def test_tripod_shot_solved_as_tripod_scores_zero():
    rotations = np.stack([rot([0, 1, 0], a) for a in np.linspace(0, 30, 8)])
    gt = poses(np.tile([1.0, 2.0, 3.0], (8, 1)), rotations)
    est = transform(poses(np.zeros((8, 3)), rotations), 2.0, rot([1, 1, 1], 40), np.array([5.0, 0, 0]))
    errors = camera_errors(est, gt)
    assert errors.alignment.mode == "tripod"
    assert errors.ate == pytest.approx(0, abs=1e-9)
    assert errors.rotation_median_deg == pytest.approx(0, abs=1e-5)
    assert math.isnan(errors.ate_percent)


def test_tripod_shot_with_a_moving_estimate_reports_its_spread():
    rotations = np.tile(np.eye(3), (2, 1, 1))
    gt = poses(np.zeros((2, 3)), rotations)
    est = poses(np.array([[0.0, 0, 0], [2.0, 0, 0]]), rotations)
    errors = camera_errors(est, gt)
    assert errors.alignment.mode == "tripod"
    assert errors.ate == pytest.approx(1.0)  # each centre 1 from the centroid, in the estimate's units


def test_static_estimate_of_a_moving_camera_misses_all_the_motion():
    gt = handheld(5)
    est = poses(np.zeros((5, 3)), gt[:, :3, :3])
    errors = camera_errors(est, gt)
    assert errors.alignment.mode == "orientation"
    assert errors.alignment.sim3.scale == 0.0
    spread = math.sqrt(np.mean(np.sum((gt[:, :3, 3] - gt[:, :3, 3].mean(0)) ** 2, axis=1)))
    assert errors.ate == pytest.approx(spread)


def test_straight_dolly_takes_its_rotation_from_the_orientations():
    # Collinear centres leave the roll about the line free; Umeyama alone would report a bogus rotation error.
    t = np.linspace(0, 1, 6)
    rotations = np.stack([rot([0, 1, 0], 10 * ti) for ti in t])
    gt = poses(np.stack([3 * t, 0 * t, 0 * t], axis=1), rotations)
    est = transform(gt, *SIM)
    errors = camera_errors(est, gt)
    assert errors.alignment.mode == "orientation"
    assert errors.ate == pytest.approx(0, abs=1e-9)
    assert errors.rotation_mean_deg == pytest.approx(0, abs=1e-5)
    assert errors.alignment.sim3.scale == pytest.approx(1 / 0.37)


def test_two_frames_align_exactly():
    gt = handheld(2)
    errors = camera_errors(transform(gt, *SIM), gt)
    assert errors.ate == pytest.approx(0, abs=1e-9)
    assert errors.rotation_mean_deg == pytest.approx(0, abs=1e-5)


def test_umeyama_recovers_a_known_similarity_and_never_reflects():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    s, R, t = SIM
    fit = umeyama_sim3(x, s * x @ R.T + t)
    assert fit.scale == pytest.approx(s)
    np.testing.assert_allclose(fit.rotation, R, atol=1e-10)
    np.testing.assert_allclose(fit.translation, t, atol=1e-10)
    mirrored = umeyama_sim3(x, x * np.array([1, 1, -1]))
    assert np.linalg.det(mirrored.rotation) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        umeyama_sim3(np.ones((5, 3)), x[:5])


def test_orientation_alignment_and_helpers():
    R = rot([1, 2, 3], 77)
    est = np.stack([rot([0, 0, 1], a) for a in (0, 30, 60)])
    np.testing.assert_allclose(orientation_alignment(est, R @ est), R, atol=1e-12)
    assert rotation_angle_deg(rot([1, 0, 0], 33)) == pytest.approx(33)
    assert path_length(np.array([[0, 0, 0], [3, 4, 0], [3, 4, 1.0]])) == pytest.approx(6.0)
