"""The static scene's point set: a surface's colour at a frame comes mostly from the frames nearest in time."""
from __future__ import annotations

import numpy as np
import torch

from backend.inpaint import scene
from backend.inpaint.scene import StaticScene


def _plane_shot(frames=9, h=24, w=32, z=5.0):
    K = np.array([[40.0, 0, w / 2], [0, 40.0, h / 2], [0, 0, 1]])
    world_from_camera = np.stack([np.eye(4) for _ in range(frames)])
    world_from_camera[:, 0, 3] = 0.05 * np.arange(frames)  # a slow pan: every frame sees the middle
    depth = np.full((h, w), z, np.float32)
    grey = 60.0 + 20.0 * np.arange(frames)  # the light changes over the shot
    rgb = np.stack([np.full((h, w, 3), g, np.uint8) for g in grey])
    return K, world_from_camera, depth, grey, rgb


def test_colour_follows_the_nearest_frames_in_time():
    K, wfc, depth, grey, rgb = _plane_shot()
    frames, h, w = rgb.shape[:3]
    points = StaticScene(w, h, "cpu")
    for s in range(frames):
        points.add_pixels(rgb[s], depth, np.ones((h, w), bool), K, wfc[s], s)
    points.merge(float(K[0, 0]))
    region = np.zeros((h, w), bool)
    region[8:16, 12:20] = True
    for t in (1, 7):
        out = points.render(K, wfc[t], region, t)
        assert out.covered[region].all()
        weights = np.exp(-np.abs(np.arange(frames) - t) / scene.TIME_SCALE)
        expected = float((weights * grey).sum() / weights.sum())
        got = float(np.median(out.rgb[region][:, 0]))
        # Within a merge run's spread of the time-weighted mean, and far from the plain mean over the shot
        # (140): the middle of the pan is seen by every frame, so only the weighting can make this so.
        assert abs(got - expected) <= 10 * scene.MERGE_FRAMES / 2, (t, got, expected)
        assert abs(got - grey[t]) < 0.7 * abs(grey.mean() - grey[t]), (t, got)


def test_merge_keeps_source_times_apart():
    K, wfc, depth, _, rgb = _plane_shot(frames=8)
    frames, h, w = rgb.shape[:3]
    points = StaticScene(w, h, "cpu")
    for s in range(frames):
        points.add_pixels(rgb[s], depth, np.ones((h, w), bool), K, wfc[s], s)
    before = len(points)
    points.merge(float(K[0, 0]))
    assert len(points) < before / 2  # the frames' points of one surface fuse...
    times = points.times.numpy()
    # ...but only within runs of MERGE_FRAMES frames: each merged point's time stays inside its run.
    runs = np.floor(times / scene.MERGE_FRAMES)
    assert set(np.unique(runs).tolist()) == set(range(int(np.ceil(frames / scene.MERGE_FRAMES))))
    assert np.all(times - runs * scene.MERGE_FRAMES <= scene.MERGE_FRAMES - 1 + 1e-4)


def test_points_of_an_object_the_masks_missed_are_dropped_and_the_background_kept():
    """A square moving its own width a frame in front of the plane, lifted from every frame as if the masks had
    missed it: each frame puts it somewhere else, so its points stand alone; the plane's are kept."""
    K, wfc, depth, _, rgb = _plane_shot(frames=8, h=48, w=96, z=5.0)
    frames, h, w = rgb.shape[:3]
    points = StaticScene(w, h, "cpu")
    points.origin = torch.as_tensor(wfc[frames // 2][:3, 3], dtype=torch.float32)
    object_points = 0
    for s in range(frames):
        d = depth.copy()
        square = np.zeros((h, w), bool)
        square[20:28, 10 + 8 * s:18 + 8 * s] = True
        d[square] = 2.0   # nearer than the plane: it would win the z-buffer
        object_points += int(square.sum())
        points.add_pixels(rgb[s], d, np.ones((h, w), bool), K, wfc[s], s)
    before = len(points)
    dropped = points.drop_transient(float(K[0, 0]))
    z = points.points[:, 2].numpy()
    assert np.all(np.abs(z - 5.0) < 1e-3), "every point of the moving square is dropped"
    assert object_points <= dropped < object_points + 0.05 * (before - object_points), (dropped, object_points)


def test_one_key_groups_exactly_the_equal_rows():
    rng = np.random.default_rng(0)
    for spread in (5, 2 ** 40):   # small ranges (mixed radix) and ranges whose product overflows (ranks)
        rows = torch.as_tensor(rng.integers(-spread, spread, (2000, 4)))
        rows[1000:] = rows[:1000]  # every row twice
        keys = scene._one_key(rows)
        same_key = keys[:, None] == keys[None, :]
        same_row = (rows[:, None, :] == rows[None, :, :]).all(-1)
        assert torch.equal(same_key, same_row)
