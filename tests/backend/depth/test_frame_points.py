"""depth/points/NNNNN.ply: each frame's depth unprojected through its camera, coloured with the frame. Checked
by projecting every point back into its camera (independently of exporters.depth_maps' unprojection): it
must land on the centre of a pixel of the stride's grid, at that pixel's depth in depth/NNNNN.exr, with that
pixel's colour. Fast on synthetic data through write_outputs; on the real stage through the shared
pipeline job (no training run of its own)."""
import json

import numpy as np
import pytest

from backend.depth import outputs
from exporters import ply
from exporters.cameras_json import read_cameras
from exporters.exr import read_depth_exr


def check_frame_points(ply_path, depth, K, world_from_camera, rgb, step):
    """Every point of the PLY is a known pixel (v, u) of the `step` grid: it projects to (u + 0.5, v + 0.5),
    at planar depth depth[v, u], coloured rgb[v, u]; and every known grid pixel has its point."""
    points, colours = ply.points_and_colours(ply_path)
    cam_from_world = np.linalg.inv(world_from_camera)
    cam = points.astype(np.float64) @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
    z = cam[:, 2]
    uv = cam @ np.asarray(K, np.float64).T
    u, v = uv[:, 0] / z - 0.5, uv[:, 1] / z - 0.5
    col, row = np.rint(u).astype(int), np.rint(v).astype(int)
    # float32 world coordinates: a few 1e-6 of the distance, in pixels at most ~1e-4 * f
    assert np.max(np.abs(u - col)) < 1e-2 and np.max(np.abs(v - row)) < 1e-2
    assert np.all(col % step == 0) and np.all(row % step == 0)
    assert np.allclose(z, depth[row, col], rtol=1e-5)
    assert np.array_equal(colours, rgb[row, col])
    known = np.isfinite(depth[::step, ::step]) & (depth[::step, ::step] > 0)
    assert len(points) == known.sum() and len(set(zip(row, col))) == len(points)
    return len(points)


def _look_at(eye, target):
    forward = np.asarray(target, float) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    m = np.eye(4)
    m[:3, :3] = np.stack([right, down, forward], 1)  # OpenCV axes: x right, y down, z forward
    m[:3, 3] = eye
    return m


def test_write_outputs_writes_a_coloured_cloud_per_frame_from_its_depth_and_camera(tmp_path):
    f, h, w = 3, 240, 320
    rng = np.random.default_rng(1)
    depth = rng.uniform(2.0, 20.0, (f, h, w)).astype(np.float32)
    depth[:, :10] = np.inf  # unknown (sky)
    depth[1, 100:120, 50:90] = 0.0
    K = np.stack([np.array([[300.0 + 5 * i, 0, 161.3], [0, 300.0 + 5 * i, 118.7], [0, 0, 1]]) for i in range(f)])
    wfc = np.stack([_look_at(np.array([0.3 * i, -4.0, 1.5]), [0.0, 5.0, 1.0]) for i in range(f)])
    rgb = rng.integers(0, 256, (f, h, w, 3), dtype=np.uint8)
    (tmp_path / "depth").mkdir()
    (tmp_path / "depth" / "stale.txt").write_text("from an earlier run")
    summary = outputs.write_outputs(tmp_path, depth, np.zeros((f, h, w, 3)), np.ones((f, h, w)), {"format": "x"},
                                    K, wfc, rgb)
    assert summary["step"] == 2 and summary["folder"] == "depth/points"
    counts = [check_frame_points(tmp_path / "depth" / "points" / f"{i:05d}.ply",
                                 read_depth_exr(tmp_path / "depth" / f"{i:05d}.exr"), K[i], wfc[i], rgb[i], 2)
              for i in range(f)]
    assert counts[0] == 160 * (120 - 5) and counts[1] == counts[0] - 10 * 20
    written = json.loads((tmp_path / "depth" / "depth.json").read_text())
    assert written["frame_points"] == {"folder": "depth/points", "step": 2, "points": sum(counts),
                                       "per_frame": [min(counts), max(counts)]}
    # published as one folder: no partial or stale files beside it
    assert not (tmp_path / "depth" / "stale.txt").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["depth"]
    assert sorted(p.name for p in (tmp_path / "depth" / "points").iterdir()) == [f"{i:05d}.ply" for i in range(f)]


@pytest.mark.parametrize("size, step", [((240, 320), 2), ((120, 160), 1), ((540, 960), 5), ((1080, 1920), 10),
                                        ((60, 80), 1)])
def test_the_stride_keeps_about_twenty_thousand_points_a_frame(size, step):
    assert outputs.points_step(*size) == step
    h, w = size
    if h * w > outputs.POINTS_PER_FRAME:
        assert 0.7 * outputs.POINTS_PER_FRAME < (-(-h // step)) * (-(-w // step)) < 1.3 * outputs.POINTS_PER_FRAME


def test_the_depth_stage_writes_points_consistent_with_its_depth_and_cameras(pipeline_job, test_shot):
    """The real stage (the shared pipeline job at TEST_EFFORT): one PLY per frame, in the world of
    cameras.json, from depth/NNNNN.exr and frames/NNNNN.png."""
    import cv2

    job = pipeline_job("depth")
    cameras = read_cameras(job / "camera" / "cameras.json")
    n = test_shot.frame_count
    w, h = test_shot.size
    step = outputs.points_step(h, w)
    summary = json.loads((job / "depth" / "depth.json").read_text())["frame_points"]
    assert summary["step"] == step
    counts = []
    for i in range(n):
        rgb = cv2.imread(str(job / "frames" / f"{i:05d}.png"), cv2.IMREAD_COLOR)[..., ::-1]
        counts.append(check_frame_points(job / "depth" / "points" / f"{i:05d}.ply",
                                         read_depth_exr(job / "depth" / f"{i:05d}.exr"),
                                         cameras.K[i], cameras.world_from_camera[i], rgb, step))
    assert summary["points"] == sum(counts) and min(counts) > 0.9 * (h // step) * (w // step)
    assert not (job / "depth" / "points" / f"{n:05d}.ply").exists()
