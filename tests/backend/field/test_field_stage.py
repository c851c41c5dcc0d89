"""The field stage on the test shot with ground-truth cameras, depth and motion masks (one short training run,
shared by the tests of this module): checkpoint, point caches, held-out renders through `shotfield render`,
fractional times, and one run through the real chain once the depth stage exists."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from backend.metrics.image import psnr
from exporters.cameras_json import read_cameras, write_cameras
from exporters.exr import read_depth_exr
from exporters.point_cache_ply import read_point_frame
from exporters.point_cache_usd import read_point_cache_usd

from ...conftest import REPO_ROOT, TEST_EFFORT, copy_job, run_stages


@pytest.fixture(scope="module")
def field_job(test_shot, ground_truth_pipeline, tmp_path_factory):
    job = copy_job(ground_truth_pipeline, tmp_path_factory.mktemp("field") / "job")
    run_stages(test_shot, job, ["field"], effort=TEST_EFFORT["field"])
    return job


def render(job, cameras, out):
    r = subprocess.run([sys.executable, "-m", "backend.cli", "render", str(job), "--cameras", str(cameras), "--out", str(out)],
                       capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return sorted(out.glob("*.png"))


def test_checkpoint_and_point_caches(field_job, test_shot):
    manifest = json.loads((field_job / "job.json").read_text())
    assert manifest["stages"]["field"]["status"] == "done"
    info = json.loads((field_job / "field" / "field.json").read_text())
    assert (field_job / "field" / "field.pt").stat().st_size > 10_000 and info["config"]["frames"] == test_shot.frame_count
    # training made progress: the last batches reproduce the frames far better than the first
    assert info["history"][-1]["psnr"] > info["history"][0]["psnr"] + 4

    frames, fps, start = read_point_cache_usd(field_job / "points" / "points.usdc")
    assert len(frames) == test_shot.frame_count and start == 1 and fps == pytest.approx(manifest["fps"] or 24.0)
    w, h = test_shot.size
    cams = test_shot.cameras()
    dynamic_hits, dynamic_total = 0, 0
    for t in (0, 11, 23):
        f = frames[t]
        assert 0.8 * (w // 2) * (h // 2) <= len(f.positions) <= (w // 2) * (h // 2)   # dense: stride 2
        # each point lies on the ground-truth surface of its pixel
        cam = cams.frames[t]
        local = (f.positions - cam.world_from_camera[:3, 3]) @ cam.world_from_camera[:3, :3]
        u = np.floor(cam.K[0, 0] * local[:, 0] / local[:, 2] + cam.K[0, 2]).astype(int)
        v = np.floor(cam.K[1, 1] * local[:, 1] / local[:, 2] + cam.K[1, 2]).astype(int)
        gt_depth = test_shot.depth(t)[v, u]
        rel = np.abs(local[:, 2] - gt_depth) / gt_depth
        assert np.median(rel) < 0.03
        ids = test_shot.object_index(t)[v, u]
        dynamic_hits += int((ids[f.dynamic] > 0).sum())
        dynamic_total += int(f.dynamic.sum())
        assert np.all(f.velocities[~f.dynamic] == 0)
        # colours are the footage's
        np.testing.assert_array_equal(f.colours, test_shot.frame(t)[v, u])
    assert dynamic_total > 20 and dynamic_hits / dynamic_total > 0.7   # the dynamic points are on the moving objects
    ply = read_point_frame(field_job / "points" / "00011.ply", 11)
    np.testing.assert_array_equal(ply.positions, frames[11].positions)
    dyn_only, _, _ = read_point_cache_usd(field_job / "points" / "dynamic.usdc")
    assert [len(f.positions) for f in dyn_only] == [int(f.dynamic.sum()) for f in frames]


def moving_point_errors(job, shot):
    """On points that are dynamic and on a moving object: cosine of predicted vs true scene flow, and the
    error relative to the true motion."""
    with np.load(shot / "gt" / "flow.npz") as gt:
        scene_flow = gt["scene_flow"]
    frames, _, _ = read_point_cache_usd(job / "points" / "points.usdc")
    cams = shot.cameras()
    cosines, ratios = [], []
    for t in range(0, shot.frame_count - 1, 3):
        f, cam = frames[t], cams.frames[t]
        local = (f.positions - cam.world_from_camera[:3, 3]) @ cam.world_from_camera[:3, :3]
        u = np.floor(cam.K[0, 0] * local[:, 0] / local[:, 2] + cam.K[0, 2]).astype(int)
        v = np.floor(cam.K[1, 1] * local[:, 1] / local[:, 2] + cam.K[1, 2]).astype(int)
        on = (shot.object_index(t)[v, u] > 0) & f.dynamic
        truth = scene_flow[t][v[on], u[on]]
        pred = f.velocities[on]
        moving = np.linalg.norm(truth, axis=1) > 1e-3
        truth, pred = truth[moving], pred[moving]
        cosines.append(np.sum(truth * pred, 1) / (np.linalg.norm(truth, axis=1) * np.linalg.norm(pred, axis=1) + 1e-9))
        ratios.append(np.linalg.norm(pred - truth, axis=1) / np.linalg.norm(truth, axis=1))
    return np.concatenate(cosines), np.concatenate(ratios)


def test_moving_points_move_the_right_way(field_job, test_shot):
    """Velocities of points on the moving objects point along the ground-truth scene flow. (At the test's
    short training their length is still far too small: see test_scene_flow_at_full_training.)"""
    cosines, _ = moving_point_errors(field_job, test_shot)
    assert len(cosines) > 50 and np.median(cosines) > 0.8


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 5's bar is not reached yet: with the lifted scene-flow prior the "
                   "benchmark's EPE is 26 % of the motion at effort 1 on this shot (54 % before the lifted prior; see docs/field.md)")
def test_scene_flow_at_full_training(test_shot, ground_truth_pipeline, tmp_path):
    """The issue's bar: scene-flow EPE on moving objects <= 10 % of their motion, at effort 1."""
    job = copy_job(ground_truth_pipeline, tmp_path / "job")
    run_stages(test_shot, job, ["field"], effort=1.0)
    _, ratios = moving_point_errors(job, test_shot)
    assert np.mean(ratios) < 0.1


def test_render_held_out_views_and_fractional_times(field_job, test_shot, tmp_path):
    held = test_shot / "gt" / "heldout" / "cameras.json"
    pngs = render(field_job, held, tmp_path / "heldout")
    cams = read_cameras(held)
    assert len(pngs) == len(cams.frames)
    scores, flat = [], []
    for k, png in enumerate(pngs):
        rgb = cv2.imread(str(png))[..., ::-1] / 255.0
        gt = test_shot.frame(k, "gt/heldout/frames") / 255.0
        scores.append(psnr(rgb, gt))
        flat.append(psnr(np.broadcast_to(gt.mean((0, 1)), gt.shape), gt))
        depth = read_depth_exr(tmp_path / "heldout" / f"{k:05d}.depth.exr")
        gt_depth = test_shot.depth(k, "gt/heldout/depth")
        assert np.median(np.abs(depth - gt_depth) / gt_depth) < 0.05
    # (a flat image of the mean colour scores 19.5 dB on these low-contrast views)
    assert np.mean(scores) > 21.0 and np.mean(scores) > np.mean(flat) + 2.5

    # a training camera at fractional times: between its neighbours' renders, and both frames nearby
    shot_cams = test_shot.cameras()
    frame = shot_cams.frames[10]
    shot_cams.frames = [frame.__class__(i, frame.K, frame.world_from_camera, t) for i, t in enumerate((10.0, 10.5, 11.0))]
    write_cameras(tmp_path / "times.json", shot_cams)
    pngs = render(field_job, tmp_path / "times.json", tmp_path / "times")
    a, mid, b = (cv2.imread(str(p)).astype(np.float32) for p in pngs)
    assert np.abs(mid - (a + b) / 2).mean() < np.abs(a - b).mean()


def test_through_the_real_chain(pipeline_job):
    """ingest, flow, solve, depth (the depth stage's own depth) and field."""
    from backend.stages import registered_stages

    if "depth" not in registered_stages():
        pytest.skip("the depth stage is not built yet (backend/stages/depth.py); the field needs its depth prior")
    job = pipeline_job("depth", "field")
    assert (job / "points" / "points.usdc").is_file() and (job / "field" / "field.json").is_file()
    frames, _, _ = read_point_cache_usd(job / "points" / "points.usdc")
    assert all(len(f.positions) > 1000 for f in frames)
