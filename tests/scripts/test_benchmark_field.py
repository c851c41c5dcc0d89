"""The field benchmark's real-chain mode (scripts/benchmarks/field.py): held-out cameras carried into a solve's
world, the peer's warp and the scene-flow error read back in the ground truth's scale. Pure pieces on
hand-made cameras and a hand-made scene; no training."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scipy.spatial.transform import Rotation

from exporters.cameras_json import CameraFrame, Cameras, write_cameras
from scripts.benchmarks import field as bench

K = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])


def poses(count, seed):
    rng = np.random.default_rng(seed)
    out = np.tile(np.eye(4), (count, 1, 1))
    out[:, :3, :3] = Rotation.from_rotvec(rng.normal(0, 0.1, (count, 3))).as_matrix()
    out[:, :3, 3] = np.c_[np.linspace(-1, 1, count), rng.normal(0, 0.2, (count, 2))]
    return out


def cameras(world_from_camera, first=0):
    return Cameras(64, 48, [CameraFrame(first + i, K.copy(), p) for i, p in enumerate(world_from_camera)])


def test_heldout_cameras_land_where_the_solve_put_the_frames(tmp_path: Path):
    """A solve that is the truth up to a similarity (scale 0.37, a turn, a shift): the map found from the
    solved frames carries held-out cameras onto the solve's own cameras of the same places."""
    truth = poses(12, 0)
    sim = bench.Sim3(1 / 0.37, Rotation.from_rotvec([0.3, -0.5, 1.1]).as_matrix(), np.array([2.0, -1.0, 0.5]))
    solved = truth.copy()   # the solve's world: truth = sim(solve)
    solved[:, :3, :3] = sim.rotation.T @ truth[:, :3, :3]
    solved[:, :3, 3] = (truth[:, :3, 3] - sim.translation) @ sim.rotation / sim.scale
    (tmp_path / "gt").mkdir()
    write_cameras(tmp_path / "gt" / "cameras.json", cameras(truth))
    (tmp_path / "job" / "camera").mkdir(parents=True)
    write_cameras(tmp_path / "job" / "camera" / "cameras.json", cameras(solved[2:], first=2))  # 2 unregistered
    found = bench.solve_to_truth(SimpleNamespace(gt=tmp_path / "gt"), tmp_path / "job")
    assert abs(found.scale - sim.scale) < 1e-9 and np.allclose(found.rotation, sim.rotation, atol=1e-9)
    carried = bench.cameras_in_solve(cameras(truth[:2]), found)   # two "held-out" views: frames 0 and 1
    assert np.allclose(carried.world_from_camera, solved[:2], atol=1e-9)
    assert np.allclose(carried.K, K)
    assert np.allclose(bench.cameras_in_solve(cameras(truth), bench.IDENTITY).world_from_camera, truth)


def test_scene_flow_error_is_read_in_the_truths_world(tmp_path: Path):
    """Points of a solve's world moving by the truth's scene flow carried into that world score 0 % once
    carried back; left in the solve's world (no map) they do not."""
    import cv2
    from exporters.point_cache_ply import write_point_frame
    from exporters.point_cache_usd import PointFrame

    sim = bench.Sim3(2.5, Rotation.from_rotvec([0.0, 0.4, 0.2]).as_matrix(), np.array([0.3, 0.0, -1.0]))
    truth_pose, flow = np.eye(4), np.zeros((1, 48, 64, 3), np.float32)
    flow[0, 10:30, 20:40] = [0.02, -0.01, 0.03]         # the moving object, in the truth's units per frame
    solved_pose = np.eye(4)
    solved_pose[:3, :3] = sim.rotation.T
    solved_pose[:3, 3] = -sim.translation @ sim.rotation / sim.scale
    (tmp_path / "gt" / "object_index").mkdir(parents=True)
    np.savez(tmp_path / "gt" / "flow.npz", scene_flow=flow)
    cv2.imwrite(str(tmp_path / "gt" / "object_index" / "00000.png"), (np.abs(flow[0]).sum(-1) > 0).astype(np.uint8))
    (tmp_path / "job" / "camera").mkdir(parents=True)
    write_cameras(tmp_path / "job" / "camera" / "cameras.json", cameras(solved_pose[None]))
    ys, xs = np.mgrid[0:48, 0:64] + 0.5
    local = np.stack([(xs - 32) / 100 * 2.0, (ys - 24) / 100 * 2.0, np.full(xs.shape, 2.0)], -1).reshape(-1, 3)
    world = local @ solved_pose[:3, :3].T + solved_pose[:3, 3]   # a wall 2 solve units away, every pixel
    velocity = flow[0].reshape(-1, 3) @ sim.rotation / sim.scale  # the truth's motion in the solve's world
    write_point_frame(tmp_path / "job" / "points" / "00000.ply",
                      PointFrame(0, world.astype(np.float32), np.zeros((len(world), 3), np.uint8),
                                 velocity.astype(np.float32), np.ones(len(world), bool)))
    shot = SimpleNamespace(gt=tmp_path / "gt")
    assert bench.scene_flow_epe(shot, tmp_path / "job", sim)["sf_epe_pct"] < 1e-3
    assert bench.scene_flow_epe(shot, tmp_path / "job")["sf_epe_pct"] > 50
