"""The depth stage end to end on the test shot (pipeline_job at TEST_EFFORT): the DESIGN.md contract of
depth/NNNNN.exr, the motion and confidence maps, depth.json, and accuracy against the exact depth (loose
bounds here; the issue's bars are measured by scripts/benchmarks/depth.py)."""
import json

import numpy as np
import pytest

from backend.metrics.camera import align_trajectories
from backend.metrics.depth import depth_errors
from exporters.cameras_json import read_cameras
from backend.depth.shot import load_shot
from backend.depth.train import static_prior
from exporters.exr import read_depth_exr, read_exr
from scripts.benchmarks.depth import motion_errors


@pytest.fixture(scope="module")
def depth_job(pipeline_job):
    return pipeline_job("depth")


def _depths(job, n):
    return np.stack([read_depth_exr(job / "depth" / f"{i:05d}.exr") for i in range(n)])


def test_contract_files(depth_job, test_shot):
    n = test_shot.frame_count
    w, h = test_shot.size
    for i in range(n):
        assert list(read_exr(depth_job / "depth" / f"{i:05d}.exr")) == ["Z"]
        motion = read_exr(depth_job / "depth" / "motion" / f"{i:05d}.exr")
        assert sorted(motion) == ["X", "Y", "Z"] and motion["X"].shape == (h, w)
        conf = read_exr(depth_job / "depth" / "confidence" / f"{i:05d}.exr")["Y"]
        assert conf.min() >= 0 and conf.max() <= 1
        assert (depth_job / "depth" / "compositor" / f"{i:05d}.exr").is_file()
    d = _depths(depth_job, n)
    assert d.shape == (n, h, w) and np.all(np.isfinite(d)) and np.all(d > 0)
    summary = json.loads((depth_job / "depth" / "depth.json").read_text())
    assert summary["failure_check"]["mode"] in ("none", "collapse", "motion_explains_all", "lazy")
    # the network's own field is checked too: the measured maps are zero outside the masks by construction
    training = summary["training_check"]
    assert training["mode"] in ("none", "collapse", "motion_explains_all", "lazy")
    assert training["facts"]["static_motion_share"] >= summary["failure_check"]["facts"]["static_motion_share"]
    assert summary["cameras"] == "solve (fixed)"
    # the sparse SfM points sit on the depth maps: the maps are in the world units of cameras.json
    assert abs(summary["sparse_points"]["median_ratio"] - 1) < 0.05
    assert summary["temporal_consistency"]["median_rel"] < 0.05
    assert summary["steps"] >= 20


def test_depth_is_accurate_with_one_global_scale(depth_job, test_shot):
    n = test_shot.frame_count
    pred = _depths(depth_job, n)
    gt = np.stack([test_shot.depth(i) for i in range(n)])
    scale = align_trajectories(read_cameras(depth_job / "camera" / "cameras.json").world_from_camera,
                               test_shot.cameras().world_from_camera).sim3.scale
    e = depth_errors(pred * scale, gt)
    assert e.coverage == 1.0
    assert e.abs_rel < 0.1 and e.delta1 > 0.9, e


def _motion_ratio(job, shot):
    n = shot.frame_count
    mag = np.stack([np.linalg.norm(np.stack(list(read_exr(job / "depth" / "motion" / f"{i:05d}.exr").values()), -1), axis=-1)
                    for i in range(n - 1)])
    objects = np.stack([shot.object_index(i) for i in range(n - 1)])
    return mag[objects > 0].mean() / max(mag[objects == 0].mean(), 1e-12)


def test_failure_check_tells_the_truth_about_object_motion(depth_job, test_shot):
    """The check must call a residual field that does not single out the moving objects "lazy"."""
    mode = json.loads((depth_job / "depth" / "depth.json").read_text())["failure_check"]["mode"]
    if _motion_ratio(depth_job, test_shot) < 1.5:
        assert mode == "lazy"
    else:
        assert mode != "lazy"


def test_object_motion_is_on_the_moving_objects(depth_job, test_shot):
    """The motion maps single out the moving objects (until stage version 5 the network's residual field was
    written, nearly uniform: ratio ~1, the check said "lazy")."""
    assert _motion_ratio(depth_job, test_shot) > 3
    mode = json.loads((depth_job / "depth" / "depth.json").read_text())["failure_check"]["mode"]
    assert mode == "none"


def test_object_motion_against_the_true_scene_flow(depth_job, test_shot):
    """End-point error of depth/motion against the shot's true scene flow on the objects' pixels, as a share
    of their mean true motion (our vectors rotated and scaled into the true world by the camera alignment),
    and the static pixels' mean |motion|. Measured on this shot: 52 % and 0.8 % (the residual field written
    until stage version 5: 101 % and 3.6 %)."""
    scores = motion_errors(depth_job, test_shot / "gt")   # the benchmark's own scoring
    epe, still = scores["motion_epe_pct"] / 100, scores["motion_static_pct"] / 100
    assert epe < 0.65, epe
    assert still < 0.03, still


def _moving_static(job, shot):
    n = shot.frame_count
    pred = _depths(job, n)
    gt = np.stack([shot.depth(i) for i in range(n)])
    objects = np.stack([shot.object_index(i) for i in range(n)])
    scale = align_trajectories(read_cameras(job / "camera" / "cameras.json").world_from_camera,
                               shot.cameras().world_from_camera).sim3.scale
    return (depth_errors(pred * scale, gt, mask=objects > 0).abs_rel,
            depth_errors(pred * scale, gt, mask=(objects == 0) & np.isfinite(gt)).abs_rel)


def test_training_does_not_drag_moving_objects_off_their_prior(depth_job, test_shot):
    """The warps may not move a moving object's depth (train.OBJECT_DEPTH_FROM_PRIOR): without that, training
    dragged it from the ground-contact prior's 0.054 AbsRel to 0.145 on the default shot (5x the static
    error). The output on the objects must be no worse than the prior it started from."""
    n = test_shot.frame_count
    _, _, log_prior = static_prior(load_shot(depth_job))
    gt = np.stack([test_shot.depth(i) for i in range(n)])
    objects = np.stack([test_shot.object_index(i) for i in range(n)]) > 0
    scale = align_trajectories(read_cameras(depth_job / "camera" / "cameras.json").world_from_camera,
                               test_shot.cameras().world_from_camera).sim3.scale
    prior = depth_errors(np.exp(log_prior) * scale, gt, mask=objects).abs_rel
    moving, static = _moving_static(depth_job, test_shot)
    assert moving <= 1.1 * prior, (moving, prior)
    assert moving / static < 3.0, (moving, static)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: default shot moving 0.0294 / static 0.0186 = 1.58, quick shot "
                                       "0.088 / 0.040 = 2.2; the ground-contact cue's placement of each object "
                                       "(the quick shot's crate -3 to -21 %) is the limit (docs/depth.md)")
def test_moving_depth_within_one_and_a_half_times_the_static_error(depth_job, test_shot):
    moving, static = _moving_static(depth_job, test_shot)
    assert moving <= 1.5 * static, (moving, static)
