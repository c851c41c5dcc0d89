"""Masks from clicks and boxes, and their propagation, on the test shot's ground-truth geometry (in process:
no stage run), scored against the GT object masks."""
from __future__ import annotations

import json

import numpy as np
import pytest

from backend.errors import ShotfieldError
from backend.flow_store import FlowStore
from backend.frames import load_frames
from backend.inpaint import clicks, masks, propagate
from exporters.cameras_json import read_cameras
from exporters.exr import read_depth_exr


@pytest.fixture(scope="module")
def inputs(ground_truth_pipeline, test_shot):
    job = ground_truth_pipeline
    n = test_shot.frame_count
    rgb = load_frames(job)
    depth = np.stack([read_depth_exr(job / "depth" / f"{i:05d}.exr") for i in range(n)])
    motion = masks.motion_masks(job, n)
    index = np.stack([test_shot.object_index(i) for i in range(n)])
    return job, rgb, depth, motion, index


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_a_click_and_a_box_select_the_moving_object(inputs, tmp_path):
    job, rgb, depth, motion, index = inputs
    k = 6
    ys, xs = np.nonzero(index[k] == 2)
    click = {"frame": k, "point": [float(np.median(xs)) + 0.5, float(np.median(ys)) + 0.5]}
    box = {"frame": k, "box": [xs.min() - 3.0, ys.min() - 3.0, xs.max() + 4.0, ys.max() + 4.0]}
    path = tmp_path / "clicks.json"
    path.write_text(json.dumps([click]))
    h, w = motion.shape[1:]
    marks = clicks.read_clicks(path, len(rgb), w, h)
    by_click = clicks.masks_from_clicks(marks, rgb, depth, motion)[k]
    assert _iou(by_click, index[k] == 2) > 0.95
    by_box = clicks.box_mask(rgb[k], motion[k], box["box"])
    assert _iou(by_box, index[k] == 2) > 0.95
    # ... and the click's mask follows the object through the shot.
    K = read_cameras(job / "camera" / "cameras.json")
    out = propagate.propagate({k: by_click}, motion, FlowStore(job), depth, K.K, K.world_from_camera, "cpu", 19, rgb)
    ious = [_iou(out[t], index[t] == 2) for t in range(len(out)) if (index[t] == 2).sum() >= 20]
    assert min(ious) > 0.8, np.round(ious, 3)


def test_a_click_on_the_static_set_grows_over_its_surface(inputs):
    job, rgb, depth, motion, index = inputs
    k = 3
    static = index[k] == 0
    ys, xs = np.nonzero(static & (np.abs(depth[k] - np.median(depth[k][static])) < 0.1))
    y, x = ys[len(ys) // 2], xs[len(xs) // 2]
    region = clicks.point_mask(rgb[k], depth[k], motion[k], x + 0.5, y + 0.5)
    assert region[y, x] and region.sum() >= 20
    assert not (region & ~static).any()  # never onto a moving object (another depth)


def test_a_static_mask_reprojects_through_the_cameras(inputs, test_shot):
    """A patch of the static set drawn on frame 4 lands, in frame 16, where the GT flow chain takes it."""
    job, rgb, depth, motion, index = inputs
    cams = read_cameras(job / "camera" / "cameras.json")
    drawn = np.zeros(motion.shape[1:], bool)
    drawn[70:90, 20:45] = True
    drawn &= index[4] == 0
    out = propagate.propagate_static({4: drawn}, depth, cams.K, cams.world_from_camera, "cpu")
    flow = test_shot.flow()
    ys, xs = np.nonzero(drawn)
    px, py = xs + 0.5, ys + 0.5
    for t in range(4, 16):  # chain the exact flow of those pixels
        ix, iy = np.clip(px.astype(int), 0, drawn.shape[1] - 1), np.clip(py.astype(int), 0, drawn.shape[0] - 1)
        f = flow["forward"][t][iy, ix]
        px, py = px + f[:, 0], py + f[:, 1]
    expected = np.zeros_like(drawn)
    inside = (px >= 0) & (px < drawn.shape[1]) & (py >= 0) & (py < drawn.shape[0])
    expected[py[inside].astype(int), px[inside].astype(int)] = True
    assert _iou(out[16], expected) > 0.7


def test_bad_clicks_are_refused(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"frame": 99, "point": [1, 1]}]))
    with pytest.raises(ShotfieldError, match="is not a mark"):
        clicks.read_clicks(path, 24, 160, 120)
    path.write_text(json.dumps([{"frame": 1, "box": [0, 0, 500, 10]}]))
    with pytest.raises(ShotfieldError, match="outside"):
        clicks.read_clicks(path, 24, 160, 120)
