"""Cameras withheld: the learned ego-motion and intrinsics (the solve's fallback where SfM fails)."""
import numpy as np
import pytest

from backend.depth import ego_motion
from backend.depth.self_calibration import scan_focal
from backend.depth.shot import load_shot
from backend.solve import fallback
from backend.solve.track import CameraTrack


def test_fallback_hands_over_to_the_depth_module():
    assert fallback.fallback_available()


def test_estimate_cameras_returns_a_track(pipeline_job, test_shot):
    job = pipeline_job()
    n = test_shot.frame_count
    w, h = test_shot.size
    moving = np.zeros((n, h, w), bool)
    track = ego_motion.estimate_cameras(job, moving, "cpu", effort=0.02)  # the minimum: 20 steps
    assert isinstance(track, CameraTrack) and track.frames == n and (track.width, track.height) == (w, h)
    assert np.allclose(track.rotation[0], np.eye(3)) and np.allclose(track.centre[0], 0)
    assert np.all(np.isfinite(track.centre)) and 0.3 * w < track.intrinsics.f < 3 * w


def test_self_calibration_finds_the_focal_length(pipeline_job, test_shot):
    """The epipolar focal scan alone (no training): static flow matches fit an essential matrix best at the
    true focal length; a wrong one leaves a larger Sampson residual."""
    n = test_shot.frame_count
    moving = np.stack([test_shot.object_index(i) > 0 for i in range(n)])
    shot = load_shot(pipeline_job(), use_cameras=False, moving=moving)
    scan = scan_focal(shot)
    true_f = test_shot.cameras().K[0, 0, 0]
    assert abs(scan.f / true_f - 1) < 0.03, (scan.f, true_f)
    far = np.abs(np.log(scan.candidates / true_f)) > np.log(1.5)
    assert scan.costs[far].min() > 1.2 * scan.costs.min()


@pytest.mark.slow
def test_learned_focal_length_within_5_percent(pipeline_job, test_shot):
    job = pipeline_job()
    n = test_shot.frame_count
    w, h = test_shot.size
    moving = np.stack([test_shot.object_index(i) > 0 for i in range(n)])
    track = ego_motion.estimate_cameras(job, moving, "cpu", effort=3.0)
    true_f = test_shot.cameras().K[0, 0, 0]
    assert abs(track.intrinsics.f / true_f - 1) < 0.05, (track.intrinsics.f, true_f)
