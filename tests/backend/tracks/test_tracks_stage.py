"""The `tracks` stage end to end on the rendered test shot, and `shotfield track` for new queries.

The shared pipeline job (ingest, flow, solve, tracks at TEST_EFFORT) is scored against the shot's ground-truth
tracks: the bars here are loose (a short training on a tiny shot) but each fails for a tracker that does not
track; the issue's bars are the benchmark's (scripts/benchmarks/tracks.py) and the slow test below.
"""
import json

import numpy as np
import pytest

from backend.metrics.tracking import tapvid_metrics
from exporters import tracks_npz
from tests.backend.conftest import shotfield
from tests.conftest import copy_job, run_stages


def score(shot, xy, visible):
    gt = shot.tracks()
    width, height = shot.size
    return tapvid_metrics(gt["queries"], gt["xy"], gt["visible"], xy, visible, width, height)


def zero_motion(shot):
    """The do-nothing tracker: every point stays where it was queried, always visible."""
    gt = shot.tracks()
    xy = np.broadcast_to(gt["queries"][None, :, 1:3], gt["xy"].shape).copy()
    return xy, np.ones_like(gt["visible"])


@pytest.fixture(scope="module")
def tracked(pipeline_job, test_shot, tmp_path_factory):
    """The pipeline job with the tracks stage, and `shotfield track` of the GT queries from it."""
    job = pipeline_job("tracks")
    out = tmp_path_factory.mktemp("track") / "gt_queries.npz"
    queries = out.with_name("queries.json")
    tracks_npz.write_queries(queries, test_shot.tracks()["queries"])
    result = shotfield("track", job, "--queries", queries, "--out", out, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    return job, tracks_npz.read_tracks(out)


def test_stage_writes_grid_tracks_and_a_model(tracked, test_shot):
    job, _ = tracked
    tracks = tracks_npz.read_tracks(job / "tracks" / "tracks.npz")
    width, height = test_shot.size
    assert tracks.frames == test_shot.frame_count and tracks.count >= 200
    assert (job / "tracks" / "model.pt").is_file()
    info = json.loads((job / "tracks" / "tracks.json").read_text())
    assert info["solved_cameras"] and info["training"]["iterations"] > 0
    # The grid is on frame 0, in the frame; visible there; with world positions from the solved camera.
    assert np.all(tracks.queries[:, 0] == 0)
    np.testing.assert_allclose(tracks.xy[0], tracks.queries[:, 1:3])
    assert tracks.visible[0].all() and np.isfinite(tracks.world[tracks.visible]).all()
    # The camera pans: grid points move, and some leave the frame by the end.
    moved = np.linalg.norm(tracks.xy[-1] - tracks.xy[0], axis=-1)
    assert np.median(moved) > 2.0
    outside = (tracks.xy[..., 0] < 0) | (tracks.xy[..., 0] >= width) | (tracks.xy[..., 1] < 0) | (tracks.xy[..., 1] >= height)
    assert not np.any(outside & tracks.visible)


def test_tracks_of_the_ground_truth_queries_beat_standing_still(tracked, test_shot):
    _, tracks = tracked
    gt = test_shot.tracks()
    np.testing.assert_allclose(tracks.queries, gt["queries"])
    ours = score(test_shot, tracks.xy, tracks.visible)
    still = score(test_shot, *zero_motion(test_shot))
    err = np.linalg.norm(tracks.xy - gt["xy"], axis=-1)[gt["visible"]]
    static = (gt["query_object"] == 0)[None].repeat(len(gt["xy"]), 0)[gt["visible"]]
    assert np.median(err[static]) < 0.5, np.median(err[static])
    # Floors well below one measured run at this effort (AJ 0.529, <δavg 0.696, OA 0.853; on the moving
    # objects <δavg 0.307, OA 0.697; static median 0.13 px); OA varied by ~0.03 between runs of the same
    # code. Before the long-gap flow was checked against chains, the depth guide's holes filled without
    # overshoot and visibility tested by cycles, even 1,000 iterations on this shot scored AJ 0.34,
    # <δavg 0.51, OA 0.70, and on the moving objects <δavg 0.18, OA 0.47 (docs/tracks.md, session 7).
    assert ours.aj > max(0.45, still.aj + 0.25) and ours.delta_avg > 0.60 and ours.oa > 0.78, (ours, still)
    moving = gt["query_object"] > 0
    width, height = test_shot.size
    on_moving = tapvid_metrics(gt["queries"][moving], gt["xy"][:, moving], gt["visible"][:, moving],
                               tracks.xy[:, moving], tracks.visible[:, moving], width, height)
    assert on_moving.delta_avg > 0.22 and on_moving.oa > 0.55, on_moving


def test_the_flow_refinement_sharpens_the_models_tracks(tracked, test_shot):
    """`shotfield track` refines the model's tracks with the job's gap-1 flow (query.refine_with_flow): the same
    model without it (no job folder to read flow from) tracks less precisely, the moving objects above all."""
    job, _ = tracked
    import torch

    from backend.tracks import query
    from backend.tracks.model import load_checkpoint

    torch.set_num_threads(1)
    model, info = load_checkpoint(job / "tracks" / "model.pt")
    assert info["refined_with_flow"] and query.job_flow(model) is not None
    gt = test_shot.tracks()
    # the refinement alone (the rigid motion of the moving objects has a test of its own, below)
    tracks = tracks_npz.Tracks(gt["queries"], *query.track(model, gt["queries"], "cpu", rigid_motion=False,
                                                           static_scene=False))
    # the static scene placed by the cameras and the depth guide on top of it (query.static_projection)
    placed = tracks_npz.Tracks(gt["queries"], *query.track(model, gt["queries"], "cpu", rigid_motion=False))
    on_masks = query.query_on_motion_masks(model, gt["queries"])
    store = query.job_flow(model)
    model.job_dir = None
    xy, visible, _ = query.track(model, gt["queries"], "cpu")
    # off the motion masks the model's visibility stands; on them (no rigid tracks here) the points are visible
    # where the flow followed them without a break from their query frame, and on that frame
    np.testing.assert_array_equal(visible[:, ~on_masks], tracks.visible[:, ~on_masks])
    _, followed = query.refine_with_flow(store, gt["queries"], xy, query.REFINE_TOLERANCE * max(test_shot.size))
    followed[gt["queries"][:, 0].astype(int), np.arange(len(gt["queries"]))] = True
    np.testing.assert_array_equal(tracks.visible[:, on_masks], followed[:, on_masks])
    assert followed[:, on_masks].mean() > 0.5
    seen = gt["visible"].copy()
    seen[gt["queries"][:, 0].astype(int), np.arange(len(gt["queries"]))] = False
    moving = (gt["query_object"] > 0)[None] & seen
    static = (gt["query_object"] == 0)[None] & seen

    def within_1px(points, where):
        return np.mean(np.linalg.norm(points - gt["xy"], axis=-1)[where] < 1.0)

    # measured at this effort: moving 0.25 -> 0.35 within 1 px, static 0.87 -> 0.89; <δavg 0.718 -> 0.746
    assert within_1px(tracks.xy, moving) > within_1px(xy, moving) + 0.05
    assert within_1px(tracks.xy, static) >= within_1px(xy, static) - 0.01
    assert score(test_shot, tracks.xy, tracks.visible).delta_avg > score(test_shot, xy, visible).delta_avg + 0.01
    # the static places: measured static within 1 px 0.892 -> 0.925, AJ 0.659 -> 0.676
    assert within_1px(placed.xy, static) > within_1px(tracks.xy, static) + 0.01
    assert score(test_shot, placed.xy, placed.visible).aj > score(test_shot, tracks.xy, tracks.visible).aj + 0.005


def test_rigid_motion_carries_the_points_on_the_moving_objects(tracked, test_shot):
    """`shotfield track` carries queries on the moving objects by their object's rigid 3D motion (rigid.py)
    before the flow refinement: on the test shot's ball and crate that tracks far better than the refined
    model alone, the static scene's queries are left as they were, and the points come out visible where the
    objects are seen."""
    job, tracks = tracked
    import torch

    from backend.tracks import query
    from backend.tracks.model import load_checkpoint

    torch.set_num_threads(1)
    model, _ = load_checkpoint(job / "tracks" / "model.pt")
    gt = test_shot.tracks()
    xy, visible, _ = query.track(model, gt["queries"], "cpu", rigid_motion=False)
    moving = gt["query_object"] > 0
    static = ~moving
    width, height = test_shot.size

    def on(sel, points, vis):
        return tapvid_metrics(gt["queries"][sel], gt["xy"][:, sel], gt["visible"][:, sel], points[:, sel],
                              vis[:, sel], width, height)

    rigid, model_only = on(moving, tracks.xy, tracks.visible), on(moving, xy, visible)
    # measured at this effort, two runs: <δavg 0.447 -> 0.519, AJ 0.318 -> 0.366, OA 0.665 -> 0.805, median
    # error where visible 2.42 -> 1.79 px; the other run 2.32 -> 1.79 px, AJ and <δavg both +0.05 or more
    assert rigid.delta_avg > model_only.delta_avg + 0.04 and rigid.aj > model_only.aj + 0.025, (rigid, model_only)
    assert rigid.oa > model_only.oa + 0.08, (rigid, model_only)
    err = np.linalg.norm(tracks.xy - gt["xy"], axis=-1)
    seen = gt["visible"] & moving[None]
    assert np.median(err[seen]) < 0.9 * np.median(np.linalg.norm(xy - gt["xy"], axis=-1)[seen])
    # the static scene's queries keep their tracks (measured: 118 of 120; two lie on an object's edge)
    same = np.all(np.abs(tracks.xy - xy) < 1e-4, axis=(0, 2)) & np.all(tracks.visible == visible, axis=0)
    assert same[static].mean() > 0.95


def test_world_positions_project_to_the_tracks(tracked, test_shot):
    """world (F, N, 3) is where the track's 2D position lies in 3D: it projects back through the solved camera."""
    job, tracks = tracked
    from exporters.cameras_json import read_cameras

    cameras = read_cameras(job / "camera" / "cameras.json")
    for f in (0, 11, 23):
        frame = cameras.frames[f]
        cam = np.linalg.inv(frame.world_from_camera)
        p = tracks.world[f] @ cam[:3, :3].T + cam[:3, 3]
        pix = p @ frame.K.T
        pix = pix[:, :2] / pix[:, 2:3]
        ok = tracks.visible[f]
        assert np.max(np.linalg.norm(pix[ok] - tracks.xy[f, ok], axis=-1)) < 0.05


def test_track_command_refuses_bad_queries_and_untrained_jobs(tracked, tmp_path, ground_truth_pipeline):
    job, _ = tracked
    bad = tmp_path / "bad.json"
    bad.write_text("[[0, 1]]")
    result = shotfield("track", job, "--queries", bad, "--out", tmp_path / "o.npz")
    assert result.returncode == 2 and "frame, x, y" in result.stderr
    outside = tmp_path / "outside.json"
    outside.write_text("[[99, 1, 1]]")
    assert shotfield("track", job, "--queries", outside, "--out", tmp_path / "o.npz").returncode == 2
    good = tmp_path / "good.json"
    good.write_text("[[3, 40.5, 30.5]]")
    result = shotfield("track", ground_truth_pipeline, "--queries", good, "--out", tmp_path / "o.npz")
    assert result.returncode == 1 and "run the tracks stage" in result.stderr
    assert not (tmp_path / "o.npz").exists()


def test_queries_in_the_job_settings_are_tracked_too(tracked, test_shot, tmp_path):
    """--track-queries adds rows after the grid; tracking them in the stage or later gives the same answer."""
    job, _ = tracked
    rows = [[5, 80.5, 60.5], [20, 30.5, 90.5]]
    (tmp_path / "q.json").write_text(json.dumps(rows))
    copy = copy_job(job, tmp_path / "job")
    run_stages(test_shot, copy, ["tracks"], effort=0.02, extra=("--track-queries", tmp_path / "q.json"))
    tracks = tracks_npz.read_tracks(copy / "tracks" / "tracks.npz")
    np.testing.assert_allclose(tracks.queries[-2:], rows)
    later = tmp_path / "later.npz"
    assert shotfield("track", copy, "--queries", tmp_path / "q.json", "--out", later).returncode == 0
    np.testing.assert_allclose(tracks_npz.read_tracks(later).xy, tracks.xy[:, -2:], atol=1e-3)


def test_tracks_without_a_solve(ground_truth_pipeline, test_shot, tmp_path):
    """When the solve failed the tracker still tracks, from the flow alone; world positions are NaN."""
    job = copy_job(ground_truth_pipeline, tmp_path / "job")
    (job / "camera" / "cameras.json").unlink()
    run_stages(test_shot, job, ["tracks"], effort=0.1)
    tracks = tracks_npz.read_tracks(job / "tracks" / "tracks.npz")
    assert np.isnan(tracks.world).all()
    assert json.loads((job / "tracks" / "tracks.json").read_text())["solved_cameras"] is False
    gt = test_shot.tracks()
    queries = tmp_path / "q.json"
    tracks_npz.write_queries(queries, gt["queries"])
    assert shotfield("track", job, "--queries", queries, "--out", tmp_path / "o.npz").returncode == 0
    out = tracks_npz.read_tracks(tmp_path / "o.npz")
    ours = score(test_shot, out.xy, out.visible)
    still = score(test_shot, *zero_motion(test_shot))
    assert ours.delta_avg > still.delta_avg + 0.05, (ours, still)


@pytest.mark.slow
def test_issue_bars_on_the_test_shot(test_shot, ground_truth_pipeline, tmp_path):
    """The issue's quality bars at full effort (slow: minutes)."""
    job = copy_job(ground_truth_pipeline, tmp_path / "job")
    run_stages(test_shot, job, ["tracks"], effort=1.0)
    queries = tmp_path / "q.json"
    tracks_npz.write_queries(queries, test_shot.tracks()["queries"])
    assert shotfield("track", job, "--queries", queries, "--out", tmp_path / "o.npz", timeout=600).returncode == 0
    out = tracks_npz.read_tracks(tmp_path / "o.npz")
    gt = test_shot.tracks()
    moving = gt["query_object"] > 0
    width, height = test_shot.size
    overall = score(test_shot, out.xy, out.visible)
    on_moving = tapvid_metrics(gt["queries"][moving], gt["xy"][:, moving], gt["visible"][:, moving],
                               out.xy[:, moving], out.visible[:, moving], width, height)
    assert overall.aj >= 0.70 and overall.oa >= 0.90 and on_moving.aj >= 0.55, (overall, on_moving)
