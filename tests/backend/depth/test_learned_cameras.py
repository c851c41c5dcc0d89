"""Cameras withheld: the learned ego-motion and intrinsics (the solve's fallback where SfM fails)."""
import numpy as np
import pytest

from backend.depth import ego_motion
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


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: effort 1 learns f = 61.6 px for a true 142.2 px (-57 %); the learned-camera "
                          "mode does not yet pin the focal length (docs/depth.md)")
def test_learned_focal_length_within_5_percent(pipeline_job, test_shot):
    job = pipeline_job()
    n = test_shot.frame_count
    w, h = test_shot.size
    moving = np.stack([test_shot.object_index(i) > 0 for i in range(n)])
    track = ego_motion.estimate_cameras(job, moving, "cpu", effort=3.0)
    true_f = test_shot.cameras().K[0, 0, 0]
    assert abs(track.intrinsics.f / true_f - 1) < 0.05, (track.intrinsics.f, true_f)
