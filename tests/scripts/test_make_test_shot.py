"""scripts/make_test_shot.py: the rendered footage and its ground truth agree with each other.

Most tests use the session's cached default shot (`test_shot` in tests/conftest.py); the warp tests are the
key ones: the analytic flow must carry frame t+1 onto frame t, and the same test with a wrong frame pairing
or a half-pixel convention error must fail.
"""
from __future__ import annotations

import importlib.util
import json
import sys

import cv2
import numpy as np
import pytest

from pathlib import Path

from exporters import conventions


def _load_script():
    path = Path(__file__).resolve().parents[2] / "scripts" / "make_test_shot.py"
    spec = importlib.util.spec_from_file_location("make_test_shot", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


mts = _load_script()


# ------------------------------------------------------------------------------------------------ helpers
def edge_mask(object_index: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """(H, W) bool: within one pixel of an object-index edge or a depth discontinuity (>5 % between neighbours)."""
    ld = np.log(np.where(np.isfinite(depth), depth, 1e6))
    jump = np.zeros(depth.shape, bool)
    jump[:, 1:] |= np.abs(np.diff(ld, axis=1)) > 0.05
    jump[1:, :] |= np.abs(np.diff(ld, axis=0)) > 0.05
    jump[:, 1:] |= np.diff(object_index.astype(int), axis=1) != 0
    jump[1:, :] |= np.diff(object_index.astype(int), axis=0) != 0
    return cv2.dilate(jump.astype(np.uint8), np.ones((4, 4), np.uint8), anchor=(2, 2)) > 0


def warp_back(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample `image` (frame t+1) at x + flow for every pixel centre x of frame t (bilinear).

    cv2.remap indexes pixel centres by integers; Shotfield's pixel centres are at i + 0.5, so the flow (a
    difference of positions) is added to the integer grid as it is."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image.astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def reliable_mask(shot, t: int, flow: np.ndarray, visible: np.ndarray, t1: int | None = None) -> np.ndarray:
    """Visible pixels of frame t away from edges in frame t and whose target in frame t1 is away from edges."""
    t1 = t + 1 if t1 is None else t1
    edges1 = warp_back(edge_mask(shot.object_index(t1), shot.depth(t1)).astype(np.float32), flow) > 0
    return visible & ~edge_mask(shot.object_index(t), shot.depth(t)) & ~edges1


def mae(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(-1)[mask].mean())


@pytest.fixture(scope="module")
def shot_data(test_shot):
    """Arrays of the default shot, loaded once for this module."""
    f = test_shot.frame_count
    return dict(frames=test_shot.frames(), flow=test_shot.flow(), tracks=test_shot.tracks(),
                depth=np.stack([test_shot.depth(i) for i in range(f)]),
                index=np.stack([test_shot.object_index(i) for i in range(f)]), cameras=test_shot.cameras())


# --------------------------------------------------------------------------------------------------- files
def test_files_have_the_documented_shapes(test_shot, shot_data):
    f, (w, h) = test_shot.frame_count, test_shot.size
    assert (f, w, h) == (24, 160, 120)
    assert shot_data["frames"].shape == (f, h, w, 3) and shot_data["frames"].dtype == np.uint8
    assert shot_data["depth"].shape == (f, h, w) and shot_data["depth"].dtype == np.float32
    assert np.all(shot_data["depth"] > 0) and np.isfinite(shot_data["depth"]).mean() > 0.99
    assert shot_data["index"].shape == (f, h, w) and shot_data["index"].dtype == np.uint8
    assert set(np.unique(shot_data["index"])) == {0, 1, 2}
    flow = shot_data["flow"]
    for key, shape, dtype in [("forward", (f - 1, h, w, 2), np.float32), ("forward_visible", (f - 1, h, w), bool),
                              ("scene_flow", (f - 1, h, w, 3), np.float32), ("backward", (f - 1, h, w, 2), np.float32),
                              ("backward_visible", (f - 1, h, w), bool)]:
        assert flow[key].shape == shape and flow[key].dtype == dtype, key
    tr = shot_data["tracks"]
    n = len(tr["queries"])
    assert tr["queries"].shape == (n, 3) and tr["queries"].dtype == np.float32 and n >= 100
    assert tr["xy"].shape == (f, n, 2) and tr["visible"].shape == (f, n) and tr["world"].shape == (f, n, 3)
    assert tr["visible"].dtype == bool and tr["query_object"].shape == (n,)
    cams = shot_data["cameras"]
    assert (cams.width, cams.height, len(cams.frames)) == (w, h, f) and cams.extra["fps"] == 24.0
    info = test_shot.info
    assert info["format"] == "shotfield-test-shot" and info["fps"] == 24.0 and info["options"]["frames"] == f
    assert [o["index"] for o in info["objects"]] == [1, 2]
    assert all(np.array(o["world_from_object"]).shape == (f, 4, 4) for o in info["objects"])
    for i in range(f):
        assert (test_shot / f"gt/clean/{i:05d}.png").is_file()


def test_cli_takes_arguments_after_double_dash():
    assert mts.parse_args(["--", "--out", "x", "--tripod", "--frames", "5"]).tripod
    opts = mts.parse_args(["--out", "y", "--large-object", "--objects", "1"])
    assert opts.large_object and opts.objects == 1 and opts.frames == 24 and opts.out == "y"
    with pytest.raises(SystemExit):
        mts.parse_args(["--out", "y", "--supersample", "2"])


# ----------------------------------------------------------------------------------------- cameras + depth
def test_intrinsics_come_from_the_lens(test_shot, shot_data):
    w, h = test_shot.size
    for frame, lens in zip(shot_data["cameras"].frames, test_shot.info["lens_mm"]):
        np.testing.assert_allclose(frame.K, [[lens * w / 36.0, 0, w / 2], [0, lens * w / 36.0, h / 2], [0, 0, 1]],
                                   rtol=1e-6)


def test_depth_is_planar_and_the_ground_is_at_z0(shot_data):
    """Where a pixel-centre ray meets the plane Z = 0 first, the depth map equals the planar depth of that hit
    to float precision: this pins planar depth (not ray length), the pixel-centre convention and the poses."""
    for t in (0, 11, 23):
        cam = shot_data["cameras"].frames[t]
        h, w = shot_data["depth"].shape[1:]
        xs, ys = conventions.pixel_centres(w, h)
        rays = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(cam.K).T  # camera coords, z = 1
        rays_world = rays @ cam.world_from_camera[:3, :3].T
        ground_depth = -cam.world_from_camera[2, 3] / rays_world[..., 2]
        rel = np.abs(shot_data["depth"][t] - ground_depth) / ground_depth
        on_ground = (ground_depth > 0) & (rel < 0.05)
        assert on_ground.mean() > 0.2
        assert np.median(rel[on_ground]) < 1e-5
        # half a pixel off, the same comparison is far worse on the sloping ground
        shifted = -cam.world_from_camera[2, 3] / (np.stack([xs + 0.5, ys + 0.5, np.ones_like(xs)], -1)
                                                  @ np.linalg.inv(cam.K).T @ cam.world_from_camera[:3, :3].T)[..., 2]
        assert np.median(np.abs(shot_data["depth"][t] - shifted)[on_ground] / ground_depth[on_ground]) > 1e-3


def test_static_points_reproject_between_frames(shot_data):
    """Unproject the static set of frame t, project it into frame t+6: it lands where frame t+6 sees the same
    depth (bilinear depth lookup), and projecting it into frame t gives back the pixel centres."""
    depth, index, cams = shot_data["depth"], shot_data["index"], shot_data["cameras"].frames
    h, w = depth.shape[1:]
    for t in (0, 9, 17):
        points = conventions.unproject_depth(cams[t].K, cams[t].world_from_camera, depth[t])
        xy_back, z_back = conventions.project_points(cams[t].K, cams[t].world_from_camera, points.reshape(-1, 3))
        np.testing.assert_allclose(xy_back, np.stack(conventions.pixel_centres(w, h), -1).reshape(-1, 2), atol=1e-6)
        np.testing.assert_allclose(z_back, depth[t].reshape(-1), rtol=1e-6)
        t1 = t + 6
        xy, z = conventions.project_points(cams[t1].K, cams[t1].world_from_camera, points.reshape(-1, 3))
        mask = ((index[t] == 0) & ~edge_mask(index[t], depth[t])).reshape(-1)
        mask &= (xy[:, 0] > 2) & (xy[:, 0] < w - 2) & (xy[:, 1] > 2) & (xy[:, 1] < h - 2)
        looked_up = cv2.remap(depth[t1], (xy[:, 0] - 0.5).astype(np.float32).reshape(1, -1),
                              (xy[:, 1] - 0.5).astype(np.float32).reshape(1, -1), cv2.INTER_LINEAR)[0]
        rel = np.abs(looked_up - z) / z
        assert mask.sum() > 0.5 * h * w
        assert np.median(rel[mask]) < 2e-3 and np.mean(rel[mask] < 0.01) > 0.85


# ---------------------------------------------------------------------------------------------------- flow
def _warp_errors(test_shot, shot_data, flow_for_pair):
    """Per frame pair t: (MAE static, MAE moving, MAE without warping) on reliable visible pixels, 0..255."""
    frames, flow, index = shot_data["frames"], shot_data["flow"], shot_data["index"]
    rows = []
    for t in range(test_shot.frame_count - 1):
        f = flow_for_pair(t)
        if f is None:
            continue
        mask = reliable_mask(test_shot, t, flow["forward"][t], flow["forward_visible"][t])
        warped = warp_back(frames[t + 1], f)
        moving = mask & (index[t] > 0)
        rows.append((mae(warped, frames[t], mask & (index[t] == 0)),
                     mae(warped, frames[t], moving) if moving.sum() > 30 else np.nan,
                     mae(frames[t + 1], frames[t], mask)))
    return np.array(rows)


def test_forward_flow_warps_the_next_frame_onto_the_frame(test_shot, shot_data):
    err = _warp_errors(test_shot, shot_data, lambda t: shot_data["flow"]["forward"][t])
    static, moving, unwarped = err[:, 0], err[:, 1], err[:, 2]
    assert np.isfinite(moving).sum() >= 15, "the moving objects should be visible in most frames"
    assert static.mean() < 3.5 and static.max() < 4.5
    assert np.nanmean(moving) < 5.0 and np.nanmax(moving) < 7.0
    assert unwarped.mean() > 3.0 * static.mean()


def test_flow_off_by_one_frame_or_half_a_pixel_warps_worse(test_shot, shot_data):
    fwd = shot_data["flow"]["forward"]
    right = _warp_errors(test_shot, shot_data, lambda t: fwd[t] if t + 1 < len(fwd) else None)
    next_pair = _warp_errors(test_shot, shot_data, lambda t: fwd[t + 1] if t + 1 < len(fwd) else None)
    prev_pair = _warp_errors(test_shot, shot_data, lambda t: fwd[t - 1] if 0 < t < len(fwd) - 1 else None)
    half_px = _warp_errors(test_shot, shot_data, lambda t: fwd[t] + 0.5 if t + 1 < len(fwd) else None)
    assert next_pair[:, 0].mean() > 2.0 * right[:, 0].mean()
    assert prev_pair[:, 0].mean() > 2.0 * right[:, 0].mean()
    assert half_px[:, 0].mean() > 2.0 * right[:, 0].mean()


def test_backward_flow_warps_the_frame_onto_the_next(test_shot, shot_data):
    frames, flow = shot_data["frames"], shot_data["flow"]
    for t in range(0, test_shot.frame_count - 1, 4):
        mask = reliable_mask(test_shot, t + 1, flow["backward"][t], flow["backward_visible"][t], t1=t)
        assert mae(warp_back(frames[t], flow["backward"][t]), frames[t + 1], mask) < 4.5


def test_visibility_marks_occlusions_and_leaving_the_frame(test_shot, shot_data):
    frames, flow = shot_data["frames"], shot_data["flow"]
    w, h = test_shot.size
    xs, ys = conventions.pixel_centres(w, h)
    visible = flow["forward_visible"]
    assert 0.85 < visible.mean() < 0.995
    occluded_err, visible_err = [], []
    for t in range(test_shot.frame_count - 1):
        x1, y1 = xs + flow["forward"][t, ..., 0], ys + flow["forward"][t, ..., 1]
        outside = (x1 < 0) | (x1 >= w) | (y1 < 0) | (y1 >= h)
        assert not np.any(visible[t] & outside)
        inside = (x1 > 1) & (x1 < w - 1) & (y1 > 1) & (y1 < h - 1)
        err = np.abs(warp_back(frames[t + 1], flow["forward"][t]) - frames[t]).mean(-1)
        occluded_err += list(err[~visible[t] & inside])
        visible_err += list(err[visible[t]])
    assert len(occluded_err) > 200, "objects should occlude the set and each other"
    assert np.mean(occluded_err) > 3.0 * np.mean(visible_err)


def test_visible_points_match_the_next_depth_map(test_shot, shot_data):
    """A point marked visible at t+1 (moved by the scene flow) has the depth that frame t+1's map shows there."""
    depth, cams, flow = shot_data["depth"], shot_data["cameras"].frames, shot_data["flow"]
    w, h = test_shot.size
    for t in range(0, test_shot.frame_count - 1, 2):
        points = conventions.unproject_depth(cams[t].K, cams[t].world_from_camera, depth[t]) + flow["scene_flow"][t]
        xy, z = conventions.project_points(cams[t + 1].K, cams[t + 1].world_from_camera, points.reshape(-1, 3))
        cols = np.clip(np.floor(xy[:, 0] - 0.5).astype(int)[:, None] + [0, 1, 0, 1], 0, w - 1)
        rows = np.clip(np.floor(xy[:, 1] - 0.5).astype(int)[:, None] + [0, 0, 1, 1], 0, h - 1)
        rel = (np.abs(depth[t + 1][rows, cols] - z[:, None]) / z[:, None]).min(1)
        visible = flow["forward_visible"][t].reshape(-1)
        assert np.mean(rel[visible] > 0.05) < 0.002
        # hidden points inside the frame: something else (nearer, or another object) is seen there
        inside = ~visible & (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        other = (shot_data["index"][t + 1][rows, cols] != shot_data["index"][t].reshape(-1, 1)).all(1)
        assert np.mean(((rel > 0.01) | other)[inside]) > 0.95


def test_scene_flow_is_zero_on_the_set_and_rigid_on_objects(test_shot, shot_data):
    depth, index, cams, sflow = shot_data["depth"], shot_data["index"], shot_data["cameras"].frames, shot_data["flow"]["scene_flow"]
    poses = {o["index"]: np.array(o["world_from_object"]) for o in test_shot.info["objects"]}
    for t in (3, 12, 20):
        assert np.all(sflow[t][index[t] == 0] == 0)
        points = conventions.unproject_depth(cams[t].K, cams[t].world_from_camera, depth[t])
        for k, pose in poses.items():
            sel = index[t] == k
            assert sel.sum() > 30
            motion = pose[t + 1] @ np.linalg.inv(pose[t])  # from shot.json, independent of the flow code
            expected = points[sel] @ motion[:3, :3].T + motion[:3, 3] - points[sel]
            np.testing.assert_allclose(sflow[t][sel], expected, atol=1e-4)
            assert np.linalg.norm(expected, axis=-1).min() > 0.01


def test_flow_helpers_on_a_synthetic_scene():
    """A fronto-parallel wall at depth 5 (world = camera axes at t=0); the camera moves 0.4 right; a patch at
    depth 4 (object 1) moves 0.4 up: the wall flows -1.6 px in x, the patch (-2, -2) px."""
    f, h, w = 2, 12, 16
    K = np.tile(np.array([[20.0, 0, 8], [0, 20, 6], [0, 0, 1]]), (f, 1, 1))
    poses = np.tile(np.eye(4), (f, 1, 1))
    poses[1, 0, 3] = 0.4
    index = np.zeros((f, h, w), np.uint8)
    index[0, 4:8, 4:8], index[1, 2:6, 2:6] = 1, 1
    depth = np.where(index == 1, 4.0, 5.0).astype(np.float32)
    objects = np.tile(np.eye(4), (1, f, 1, 1))
    objects[0, 1, 1, 3] = -0.4  # OpenCV y points down: -0.4 is up
    gt = mts.derive_flow(K, poses, depth, index, objects)
    np.testing.assert_allclose(gt.forward[0, 0, 8], [-1.6, 0], atol=1e-6)
    np.testing.assert_allclose(gt.forward[0, 5, 5], [-2, -2], atol=1e-6)
    np.testing.assert_allclose(gt.scene_flow[0, 5, 5], [0, -0.4, 0], atol=1e-6)
    assert np.all(gt.scene_flow[0][index[0] == 0] == 0)
    assert gt.forward_visible[0, 0, 8] and gt.forward_visible[0, 5, 5]
    assert not gt.forward_visible[0, 0, 0]   # leaves the frame
    assert not gt.forward_visible[0, 3, 4]   # the wall there is behind the patch at t+1
    np.testing.assert_allclose(gt.backward[0, 0, 8], [1.6, 0], atol=1e-6)


# -------------------------------------------------------------------------------------------------- tracks
def test_tracks_are_queried_on_several_frames_and_objects(test_shot, shot_data):
    tr = shot_data["tracks"]
    frames = set(tr["queries"][:, 0].astype(int))
    assert {0, test_shot.frame_count // 2 - 1} <= frames and max(frames) >= 0.7 * test_shot.frame_count
    for k in (1, 2):
        assert (tr["query_object"] == k).sum() >= 10
    for i, (t, x, y) in enumerate(tr["queries"]):
        assert tr["visible"][int(t), i]
        np.testing.assert_array_equal(tr["xy"][int(t), i], [x, y])
        assert shot_data["index"][int(t), int(y), int(x)] == tr["query_object"][i]


def test_visible_track_points_land_on_their_object(test_shot, shot_data):
    tr, index = shot_data["tracks"], shot_data["index"]
    w, h = test_shot.size
    hits, total = 0, 0
    for t in range(test_shot.frame_count):
        vis = tr["visible"][t]
        xy = tr["xy"][t][vis]
        px = np.clip(np.floor(xy).astype(int), 0, [w - 1, h - 1])
        hits += np.sum(index[t][px[:, 1], px[:, 0]] == tr["query_object"][vis])
        total += vis.sum()
    assert total > 0.6 * tr["visible"].size and hits / total > 0.97
    on_objects = tr["query_object"] > 0
    assert not tr["visible"][:, on_objects].all(), "some object points should be hidden some of the time"


def test_tracks_agree_with_flow_and_keep_their_colour(test_shot, shot_data):
    tr, flow, frames = shot_data["tracks"], shot_data["flow"], shot_data["frames"]
    for i, (t, x, y) in enumerate(tr["queries"]):
        t, col, row = int(t), int(x), int(y)
        if t + 1 < test_shot.frame_count:
            np.testing.assert_allclose(tr["xy"][t + 1, i], tr["xy"][t, i] + flow["forward"][t, row, col], atol=1e-3)
    static = tr["query_object"] == 0
    np.testing.assert_allclose(tr["world"][:, static], np.broadcast_to(tr["world"][:1, static], tr["world"][:, static].shape), atol=1e-5)
    diffs = []
    for t in range(test_shot.frame_count):
        sel = tr["visible"][t]
        xy = tr["xy"][t][sel] - 0.5
        sampled = cv2.remap(frames[t].astype(np.float32), xy[:, :1].reshape(1, -1), xy[:, 1:].reshape(1, -1), cv2.INTER_LINEAR)[0]
        q = tr["queries"][sel]
        colour = frames[q[:, 0].astype(int), q[:, 2].astype(int), q[:, 1].astype(int)]
        diffs += list(np.abs(sampled - colour).mean(-1))
    assert np.median(diffs) < 6.0


# ------------------------------------------------------------------------------------ clean plates, held out
def test_clean_plates_differ_only_where_the_objects_are(test_shot, shot_data):
    for t in range(0, test_shot.frame_count, 3):
        clean = test_shot.frame(t, "gt/clean")
        obj = shot_data["index"][t] > 0
        near = cv2.dilate(obj.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        diff = np.abs(clean.astype(int) - shot_data["frames"][t].astype(int)).max(-1)
        assert np.all(diff[~near] == 0)
        assert diff[obj].mean() > 10


def test_heldout_views_are_off_the_path_and_consistent(test_shot, shot_data):
    held = test_shot.cameras("gt/heldout")
    cams = shot_data["cameras"].frames
    assert len(held.frames) == 4 and all(f.time is not None for f in held.frames)
    assert [f.time for f in held.frames] == test_shot.info["heldout_times"]
    w, h = test_shot.size
    for n, view in enumerate(held.frames):
        t = int(view.time)
        assert np.linalg.norm(view.world_from_camera[:3, 3] - cams[t].world_from_camera[:3, 3]) > 0.2
        image, depth, index = test_shot.frame(n, "gt/heldout/frames"), test_shot.depth(n, "gt/heldout/depth"), test_shot.object_index(n, "gt/heldout/object_index")
        assert image.shape == (h, w, 3) and depth.shape == (h, w) and index.shape == (h, w)
        # held-out pixels re-projected into the shot frame of the same time see the same colour
        points = conventions.unproject_depth(view.K, view.world_from_camera, depth).reshape(-1, 3)
        xy, z = conventions.project_points(cams[t].K, cams[t].world_from_camera, points)
        vis = mts.visible_at(xy, z, index.reshape(-1).astype(np.int64), shot_data["depth"][t], shot_data["index"][t])
        vis &= ~edge_mask(index, depth).reshape(-1)
        assert vis.mean() > 0.5
        sampled = cv2.remap(shot_data["frames"][t].astype(np.float32), (xy[:, :1] - 0.5).astype(np.float32).reshape(1, -1),
                            (xy[:, 1:] - 0.5).astype(np.float32).reshape(1, -1), cv2.INTER_LINEAR)[0]
        assert np.abs(sampled - image.reshape(-1, 3)).mean(-1)[vis].mean() < 5.0


# ----------------------------------------------------------------------------------------------- variants
def test_tripod_zoom_variant(make_shot):
    """--tripod: the camera only rotates; --zoom: the focal length grows; the flow still warps exactly."""
    shot = make_shot(tripod=True, zoom=True, frames=6, objects=1)
    cams = shot.cameras().frames
    centres = np.array([c.world_from_camera[:3, 3] for c in cams])
    np.testing.assert_allclose(centres, np.broadcast_to(centres[0], centres.shape), atol=1e-5)
    assert np.all(np.diff([c.K[0, 0] for c in cams]) > 0)
    assert not np.allclose(cams[0].world_from_camera[:3, :3], cams[-1].world_from_camera[:3, :3], atol=1e-2)
    frames, flow = shot.frames(), shot.flow()
    assert set(np.unique(shot.object_index(0))) == {0, 1}
    for t in range(shot.frame_count - 1):
        mask = reliable_mask(shot, t, flow["forward"][t], flow["forward_visible"][t])
        assert mae(warp_back(frames[t + 1], flow["forward"][t]), frames[t], mask) < 4.0
    assert json.loads((shot / "shot.json").read_text())["options"]["tripod"] is True
