"""Tripod detection and the rotation + focal initialisation, on synthetic correspondences."""
from __future__ import annotations

import numpy as np
import pytest

from backend.solve import tripod
from backend.solve.track import Intrinsics, so3_exp

from .synthetic import scene


def test_pure_rotation_is_a_tripod():
    _, corr, _ = scene(frames=12, translation=False, noise_px=0.1, gaps=(1, 2, 4, 8), points_per_frame=200)
    report = tripod.detect_tripod(corr, 12, 160, 120)
    assert report.tripod and report.flat_share >= 0.8 and report.inlier_ratio > 0.95


def test_translation_with_depth_is_not():
    _, corr, _ = scene(frames=12, translation=True, noise_px=0.1, gaps=(1, 2, 4, 8), points_per_frame=200)
    report = tripod.detect_tripod(corr, 12, 160, 120)
    assert not report.tripod and report.inlier_ratio < 0.8


def test_focal_from_rotation_homographies():
    K = Intrinsics.centred(180.0, 160, 120).K
    rotations = [so3_exp(np.array(v)) for v in ([0.0, 0.3, 0.02], [0.1, -0.2, 0.0], [0.05, 0.25, -0.03])]
    homographies = [K @ R @ np.linalg.inv(K) for R in rotations]
    assert tripod.focal_from_homographies(homographies, 160, 120) == pytest.approx(180.0, rel=1e-3)


def test_rotation_only_track_starts_close_to_the_truth():
    truth, corr, _ = scene(frames=12, translation=False, noise_px=0.05, gaps=(1, 2, 4, 8), points_per_frame=200)
    track = tripod.rotation_only_track(corr, 12, 160, 120)
    assert np.all(track.centre == 0)
    assert track.intrinsics.f == pytest.approx(truth.intrinsics.f, rel=0.05)
    # Relative to the first camera (the truth's first rotation is not the identity).
    est = np.einsum("ji,fjk->fik", track.rotation[0], track.rotation)
    ref = np.einsum("ji,fjk->fik", truth.rotation[0], truth.rotation)
    cos = (np.trace(np.einsum("fji,fjk->fik", ref, est), axis1=1, axis2=2) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 1.0
