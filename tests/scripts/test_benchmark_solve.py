"""The pure pieces of the camera-solve benchmark (scripts/benchmarks/): the peers' pose conversions, the
extra metrics (relative rotation error, tripod translation) and the evaluation of a cameras.json against
ground truth. Synthetic rigs only: no rendering, no solving, no timing."""
import math

import numpy as np
import pycolmap
import pytest

from exporters.atomic import write_bytes
from exporters.cameras_json import CameraFrame, Cameras, write_cameras
from exporters.conventions import OPENCV_FROM_BLENDER_CAMERA, project_points
from scripts.benchmarks import solve_metrics as sm
from scripts.benchmarks import solve_peers as sp

W, H = 320, 240
K = np.array([[280.0, 0, 160.0], [0, 280.0, 120.0], [0, 0, 1]])


def rot(axis, deg):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = math.radians(deg)
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * k @ k


def rig(frames=12, tripod=False):
    """(F, 4, 4) OpenCV world_from_camera: cameras on a curved path (or at one point) looking along +Y at
    a scene about 5 units away, turning a little from frame to frame."""
    looking_along_y = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])   # camera z -> world +Y, camera y -> -Z
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for i in range(frames):
        poses[i, :3, :3] = rot([0, 0, 1], 2.0 * i) @ rot([1, 0, 0], 0.7 * i) @ looking_along_y
        if not tripod:
            poses[i, :3, 3] = [0.1 * i, 0.02 * i**2, 0.05 * math.sin(i)]
    return poses


def scene_points(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-2, 2, n), rng.uniform(4.5, 5.5, n), rng.uniform(-1.5, 1.5, n)]


def cameras(poses, indices=None, k=K, extra=None):
    indices = range(len(poses)) if indices is None else indices
    return Cameras(W, H, [CameraFrame(i, k.copy(), poses[i]) for i in indices], dict(extra or {}))


# ------------------------------------------------------------------------------------------------ conversions
def test_pycolmap_cam_from_world_becomes_opencv_world_from_camera():
    poses = rig()
    points = scene_points()
    camera = pycolmap.Camera(model="SIMPLE_PINHOLE", width=W, height=H, params=[K[0, 0], K[0, 2], K[1, 2]])
    for pose in poses:
        inv = np.linalg.inv(pose)
        cam_from_world = pycolmap.Rigid3d(pycolmap.Rotation3d(inv[:3, :3]), inv[:3, 3])
        converted = sp.world_from_camera_from_cam_from_world(cam_from_world.matrix())
        np.testing.assert_allclose(converted, pose, atol=1e-12)
        # COLMAP's own projection agrees with Shotfield's through the converted pose.
        colmap_xy = camera.img_from_cam(cam_from_world * points)
        xy, z = project_points(K, converted, points)
        assert np.all(z > 0)
        np.testing.assert_allclose(xy, colmap_xy, atol=1e-9)
    # The wrong reading (cam_from_world taken as world_from_camera) puts the cameras elsewhere.
    wrong = np.vstack([pycolmap.Rigid3d(np.linalg.inv(poses[5])[:3]).matrix(), [0, 0, 0, 1]])
    assert np.linalg.norm(wrong[:3, 3] - poses[5][:3, 3]) > 0.1


def blender_solution(poses, frame_start=1, indices=None, principal_point=(160.0, 120.0)):
    indices = range(len(poses)) if indices is None else indices
    return sp.BlenderSolution(
        width=W, height=H, frames=len(poses), frame_start=frame_start,
        cameras=[(i + frame_start, (poses[i] @ OPENCV_FROM_BLENDER_CAMERA).tolist()) for i in indices],
        focal_px=K[0, 0], principal_point_px=principal_point, average_error=0.25, bundles=[[0, 5, 0]])


def test_blender_tracker_cameras_become_opencv():
    poses = rig()
    cams = sp.cameras_from_blender_solution(blender_solution(poses, indices=[0, 1, 2, 5]))
    assert [f.index for f in cams.frames] == [0, 1, 2, 5]           # clip frame 1 is the first image
    for f in cams.frames:
        np.testing.assert_allclose(f.world_from_camera, poses[f.index], atol=1e-12)
        np.testing.assert_allclose(f.K, K)
    assert cams.extra["frame_count"] == 12 and cams.extra["registered"] == 4
    assert cams.extra["reprojection_error_px"] == 0.25
    # A Blender camera looks down its -Z with +Y up: a point ahead of it and above its axis lands in the
    # upper half of the image (y < cy), in front of the converted camera.
    blender_matrix = np.asarray(blender_solution(poses).cameras[5][1])
    ahead_and_up = (blender_matrix @ np.array([0.0, 0.5, -4.0, 1.0]))[:3]
    xy, z = project_points(cams.frames[3].K, cams.frames[3].world_from_camera, ahead_and_up[None])
    assert cams.frames[3].index == 5
    assert z[0] == pytest.approx(4.0) and xy[0, 1] == pytest.approx(120 - 280 * 0.5 / 4) and xy[0, 0] == pytest.approx(160)


def test_blender_principal_point_is_measured_from_the_bottom():
    cams = sp.cameras_from_blender_solution(blender_solution(rig(3), principal_point=(150.0, 100.0), frame_start=5))
    assert cams.frames[0].index == 0
    np.testing.assert_allclose(cams.frames[0].K[:2, 2], [150.0, H - 100.0])


def test_points_ply_round_trip_and_shotfields_coloured_ply(tmp_path):
    pts = scene_points(7)
    sp.write_points_ply(tmp_path / "a.ply", pts)
    np.testing.assert_allclose(sp.read_points_ply(tmp_path / "a.ply"), pts.astype(np.float32))
    vertex = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vertex["x"], vertex["y"], vertex["z"], vertex["green"] = [1, 2, 3], [4, 5, 6], [7, 8, 9], 200
    header = ("ply\nformat binary_little_endian 1.0\ncomment shotfield\nelement vertex 3\nproperty float x\n"
              "property float y\nproperty float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    write_bytes(tmp_path / "b.ply", header.encode() + vertex.tobytes())
    np.testing.assert_allclose(sp.read_points_ply(tmp_path / "b.ply"), [[1, 4, 7], [2, 5, 8], [3, 6, 9]])
    sp.write_points_ply(tmp_path / "empty.ply", np.zeros((0, 3)))
    assert sp.read_points_ply(tmp_path / "empty.ply").shape == (0, 3)


# ------------------------------------------------------------------------------------------------ metrics
def test_relative_rotation_error_ignores_the_world_frame_and_finds_one_bad_frame():
    """arccos near 1 resolves about 1e-6 degrees."""
    gt = rig()[:, :3, :3]
    assert np.allclose(sm.relative_rotation_errors_deg(gt, gt), 0, atol=1e-5)
    est = np.einsum("ij,fjk->fik", rot([1, 2, 3], 40), gt)              # another world frame
    assert np.allclose(sm.relative_rotation_errors_deg(est, gt), 0, atol=1e-5)
    est[4] = est[4] @ rot([0, 1, 0], 1.0)                               # frame 4 turned by 1° about its own y
    err = sm.relative_rotation_errors_deg(est, gt)
    assert err.shape == (11,)
    np.testing.assert_allclose(err[[3, 4]], 1.0, atol=1e-5)
    assert np.allclose(np.delete(err, [3, 4]), 0, atol=1e-5)


def test_tripod_translation_and_median_depth():
    assert sm.tripod_translation_percent(np.zeros((5, 3)), math.nan) == 0.0     # no motion: 0 at any depth
    centres = np.zeros((4, 3))
    centres[0] = [0.08, 0, 0]                                                   # mean (0.02, 0, 0)
    assert sm.tripod_translation_percent(centres, 6.0) == pytest.approx(100 * 0.06 / 6.0)
    assert math.isnan(sm.tripod_translation_percent(centres, math.nan))
    poses = rig(3, tripod=True)
    forward = poses[0, :3, 2]
    points = np.array([forward * d for d in (2.0, 3.0, 7.0)] + [-forward * 3.0])   # the last one is behind
    assert sm.median_point_depth(points, np.stack([K] * 1), poses[:1], W, H) == pytest.approx(3.0)
    assert math.isnan(sm.median_point_depth(points[3:], np.stack([K] * 1), poses[:1], W, H))


def test_reprojection_error_from_any_solver():
    assert sm.reprojection_px({"reprojection_error_px": 0.5}) == 0.5
    assert sm.reprojection_px({"reprojection_error_px": {"median": 0.2, "rms_inliers": 0.3}}) == 0.3
    assert sm.reprojection_px({"reprojection_error_px": {"median": 0.2}}) == 0.2
    assert sm.reprojection_px({}) is None


def test_evaluation_of_a_similar_copy_with_missing_frames():
    gt_poses = rig()
    s, r, t = 0.3, rot([1, 1, 0], 30), np.array([1.0, -2.0, 0.5])
    est_poses = gt_poses.copy()
    est_poses[:, :3, :3] = np.einsum("ij,fjk->fik", r.T, gt_poses[:, :3, :3])
    est_poses[:, :3, 3] = (gt_poses[:, :3, 3] - t) @ r / s               # gt = s R est + t
    k_est = K.copy()
    k_est[0, 0] = k_est[1, 1] = 1.02 * K[0, 0]
    est = cameras(est_poses, [0, 1, 2, 3, 5, 6, 7, 8, 9, 10], k=k_est, extra={"reprojection_error_px": 0.4})
    m = sm.evaluate_cameras(est, 12, cameras(gt_poses))
    assert (m["registered"], m["frames"], m["registered_str"]) == (10, 12, "10/12")
    assert m["ate"] < 1e-9 and m["ate_percent"] < 1e-7 and m["alignment"] == "sim3"
    assert m["rotation_mean_deg"] < 1e-5 and m["orientation_median_deg"] < 1e-5
    assert m["rel_rotation_pairs"] == 8 and m["rel_rotation_mean_deg"] < 1e-5   # 3->5 and 10->11 are no pairs
    assert m["focal_percent"] == pytest.approx(2.0) and m["focal_px"] == pytest.approx(1.02 * 280)
    assert m["reprojection_px"] == 0.4 and "tripod_translation_pct" not in m
    assert m["scale"] == pytest.approx(s)


def test_evaluation_without_ground_truth_or_without_frames():
    est = cameras(rig(), [0, 1, 2])
    m = sm.evaluate_cameras(est, 5)
    assert m["registered_str"] == "3/5" and "ate" not in m and m["focal_px"] == pytest.approx(280)
    empty = sm.evaluate_cameras(Cameras(W, H, [], {}), 5, cameras(rig(5)))
    assert empty["registered"] == 0 and "ate" not in empty


def test_evaluation_of_a_tripod_solve_that_drifts(tmp_path):
    gt_poses = rig(8, tripod=True)
    est_poses = gt_poses.copy()
    est_poses[3, :3, 3] = [0.0, 0.0, 0.08]                  # one camera 8 cm off; the others at the origin
    points = scene_points(300) * 2.0                         # the scene twice as far in the estimate's units
    write_cameras(tmp_path / "job" / "camera" / "cameras.json", cameras(est_poses))
    sp.write_points_ply(tmp_path / "job" / "camera" / "points.ply", points)
    write_cameras(tmp_path / "gt" / "cameras.json", cameras(gt_poses))
    m = sm.evaluate_job(tmp_path / "job", 8, tmp_path / "gt", tripod=True)
    assert m["alignment"] == "tripod" and math.isnan(m["ate_percent"])
    depth = m["est_median_depth"]
    assert 8.0 < depth < 12.0
    wander = np.linalg.norm([0, 0, 0.08] - est_poses[:, :3, 3].mean(0))
    assert m["tripod_translation_pct"] == pytest.approx(100 * wander / depth)
    assert m["orientation_mean_deg"] < 1e-6 and m["rel_rotation_mean_deg"] < 1e-6
