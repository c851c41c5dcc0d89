"""CameraTrack, rotation helpers, keyframe choice, input checks and flow correspondences."""
from __future__ import annotations

import numpy as np
import pytest

from backend.errors import ShotfieldError
from backend.flow_store import FlowStore
from backend.solve import checks, correspondences, fallback, sfm
from backend.solve.track import CameraTrack, Intrinsics, interpolate_track, so3_exp, so3_log
from exporters.cameras_json import cameras_from_dict, cameras_to_dict

from .synthetic import camera_path, homography_job, textured_gray


def test_so3_exp_and_log_round_trip():
    w = np.random.default_rng(0).normal(0, 0.8, (20, 3))
    R = so3_exp(w)
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(so3_log(R), w, atol=1e-9)
    assert np.allclose(so3_exp(np.zeros(3)), np.eye(3))


def test_interpolation_fills_gaps_between_registered_frames():
    rotation, centre = camera_path(9, translation=True)
    truth = CameraTrack(Intrinsics(150, 80, 60), rotation, centre, 160, 120)
    holes = truth.copy(registered=np.array([1, 0, 1, 0, 0, 1, 1, 1, 0], bool))
    filled = interpolate_track(holes)
    assert np.allclose(filled.centre[1], (truth.centre[0] + truth.centre[2]) / 2)
    assert np.allclose(filled.rotation[8], truth.rotation[7])  # held after the last registered frame
    assert np.allclose(filled.rotation[3:5], truth.rotation[3:5], atol=0.01)  # a smooth path: nearly exact


def test_track_to_cameras_json_and_back():
    rotation, centre = camera_path(4, translation=True)
    track = CameraTrack(Intrinsics(150, 81, 59), rotation, centre, 160, 120)
    cams = cameras_from_dict(cameras_to_dict(track.to_cameras({"model": "pinhole", "tripod": False})))
    assert cams.extra == {"model": "pinhole", "tripod": False}
    assert np.allclose(cams.world_from_camera, track.world_from_camera())
    assert np.allclose(cams.K[2], track.intrinsics.K)


def test_a_similarity_moves_cameras_and_keeps_them_rigid():
    rotation, centre = camera_path(4, translation=True)
    track = CameraTrack(Intrinsics(150, 80, 60), rotation, centre, 160, 120)
    R = so3_exp(np.array([0.1, 0.2, 0.3]))
    moved = track.transformed(2.0, R, np.array([1.0, 2.0, 3.0]))
    assert np.allclose(moved.centre, 2.0 * centre @ R.T + [1, 2, 3])
    assert np.allclose(moved.rotation, R @ rotation)


def test_keyframes_cover_the_shot():
    assert sfm.choose_keyframes(10) == list(range(10))
    keys = sfm.choose_keyframes(40)
    assert keys[0] == 0 and keys[-1] == 39 and len(keys) <= sfm.MAX_KEYFRAMES + 1
    assert max(np.diff(keys)) <= 2


def test_checks_refuse_textureless_and_frozen_footage(tmp_path):
    flat = np.full((6, 64, 96), 128, np.uint8)
    with pytest.raises(ShotfieldError, match="no texture"):
        checks.check_texture(flat)
    homography_job(tmp_path, frames=6, width=96, height=64, patch=0)
    frozen = textured_gray(6, 96, 64)
    with pytest.raises(ShotfieldError, match="same image"):
        checks.check_camera_motion(frozen, FlowStore(tmp_path))
    moving_camera = frozen.copy()
    moving_camera[1:] = np.roll(frozen[1:], 2, axis=2)
    assert checks.check_camera_motion(moving_camera, FlowStore(tmp_path)) > 1.0


def test_fallback_hook_explains_why_until_the_depth_stage_exists(tmp_path):
    if fallback.fallback_available():
        pytest.skip("the depth stage's ego-motion exists")
    with pytest.raises(ShotfieldError, match="SfM failed: pycolmap registered 1 of 9.*depth stage"):
        fallback.learned_ego_motion(tmp_path, np.zeros((2, 4, 4), bool), "cpu", "pycolmap registered 1 of 9 keyframes")


def test_correspondences_follow_exact_flow_and_chain_long_gaps(tmp_path):
    truth, moving = homography_job(tmp_path, frames=10, gaps=(1, 2, 4, 8))
    store = FlowStore(tmp_path)
    gray = textured_gray(10, 128, 96)
    rgb = np.repeat(gray[..., None], 3, -1)
    corr = correspondences.gather(store, gray, rgb, moving, [1, 2, 4, 8], per_frame=80, refine=False)
    assert corr.points > 300 and set(np.abs(corr.frame - corr.ref_frame[corr.point])) == {1, 2, 4, 8}
    K, Kinv = truth.intrinsics.K, np.linalg.inv(truth.intrinsics.K)
    a, b = corr.ref_frame[corr.point], corr.frame
    ray = np.c_[corr.ref_xy[corr.point], np.ones(len(a))] @ Kinv.T
    q = np.einsum("mji,mj->mi", truth.rotation[b], np.einsum("mij,mj->mi", truth.rotation[a], ray)) @ K.T
    error = np.linalg.norm(q[:, :2] / q[:, 2:] - corr.xy, axis=1)
    assert np.percentile(error, 99) < 0.1  # the stored flow's 1/32 px steps, nothing more
    # No point starts on the moving patch, and none is observed on it.
    assert not moving[corr.ref_frame, corr.ref_xy[:, 1].astype(int), corr.ref_xy[:, 0].astype(int)].any()


def test_a_broken_long_gap_flow_is_replaced_by_the_chain(tmp_path):
    """Garbage in the stored gap-8 flow that still passed the forward-backward check: the chain of shorter
    gaps disagrees with it, and the observation comes from the chain."""
    truth, moving = homography_job(tmp_path, frames=10, gaps=(1, 2, 4, 8), patch=0)
    forward = np.load(tmp_path / "flow" / "gap_008" / "forward.npy", mmap_mode="r+")
    forward[:] = 0  # "no motion": wrong, but consistent with an equally wrong backward flow
    forward.flush()
    store = FlowStore(tmp_path)
    gray = textured_gray(10, 128, 96)
    corr = correspondences.gather(store, gray, np.repeat(gray[..., None], 3, -1), None, [1, 2, 4, 8], per_frame=60, refine=False)
    sel = (corr.frame - corr.ref_frame[corr.point]) == 8
    assert sel.sum() > 20
    moved = np.linalg.norm(corr.xy[sel] - corr.ref_xy[corr.point[sel]], axis=1)
    assert np.median(moved) > 3.0  # the camera pans: points do move over 8 frames
