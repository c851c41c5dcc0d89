"""World alignment: a known tilted ground plane ends at Z = 0 with +Z up, at the documented scale."""
from __future__ import annotations

import numpy as np
import pytest

from backend.solve import world_align
from backend.solve.track import CameraTrack, Intrinsics, so3_exp


def _look_at(eye, target) -> np.ndarray:
    """OpenCV world_from_camera rotation at eye looking at target, world Z up."""
    f = np.asarray(target, float) - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    return np.stack([r, np.cross(f, r), f], axis=1)


def _true_scene(seed=0):
    """Cameras at 1.5 m above a ground plane Z = 0, looking at (0, 4, 0.5); ground points plus a wall
    (Y = 8) with more points than the ground, plus clutter. Returns (rotations, centres, points)."""
    rng = np.random.default_rng(seed)
    centres = np.stack([np.linspace(-1, 1, 8), np.full(8, -2.0), np.full(8, 1.5)], -1)
    rotations = np.stack([_look_at(c, [0.0, 4.0, 0.5]) for c in centres])
    ground = np.c_[rng.uniform(-4, 4, (300, 2)) + [0, 4], np.zeros(300)]
    wall = np.c_[rng.uniform(-5, 5, 500), np.full(500, 8.0), rng.uniform(0, 4, 500)]
    clutter = rng.uniform([-3, 1, 0.3], [3, 7, 2], (60, 3))  # boxes standing on the ground
    return rotations, centres, np.r_[ground, wall, clutter]


def _solver_frame(rotations, centres, points, scale=0.37, seed=1):
    """The same scene as SfM would return it: an arbitrary similarity away (and tilted)."""
    R = so3_exp(np.random.default_rng(seed).normal(0, 1.0, 3))
    t = np.array([3.0, -1.0, 2.0])
    track = CameraTrack(Intrinsics(150, 80, 60), np.einsum("ij,fjk->fik", R, rotations), scale * centres @ R.T + t, 160, 120)
    return track, scale * points @ R.T + t


def test_a_tilted_ground_plane_ends_at_z0_with_z_up_and_eye_height_scale():
    rotations, centres, points = _true_scene()
    track, solver_points = _solver_frame(rotations, centres, points)
    alignment = world_align.align_world(track, solver_points)
    assert alignment.up_from == "ground plane"
    aligned = alignment.apply(solver_points)
    assert np.abs(aligned[:300, 2]).max() < 1e-3            # the ground points: Z = 0 (within 1 mm)
    moved = track.transformed(alignment.scale, alignment.rotation, alignment.translation)
    assert np.median(moved.centre[:, 2]) == pytest.approx(world_align.EYE_HEIGHT, rel=1e-3)  # above, +Z up
    # Up is exactly the true up, so the result equals the truth up to a rotation about Z and a shift in XY.
    assert np.allclose(moved.rotation[:, :, 1] @ [0, 0, 1], rotations[:, :, 1] @ [0, 0, 1], atol=1e-3)
    # The origin lies where the first camera's optical axis meets the ground.
    axis = moved.rotation[0, :, 2]
    hit = moved.centre[0] - moved.centre[0, 2] / axis[2] * axis
    assert np.linalg.norm(hit[:2]) < 1e-2
    # +X is the first camera's right direction, levelled.
    assert moved.rotation[0, :, 0] @ [1, 0, 0] > 0.99


def test_without_a_ground_plane_up_comes_from_the_cameras():
    rotations, centres, points = _true_scene()
    track, solver_points = _solver_frame(rotations, centres, points[300:800])  # the wall only
    alignment = world_align.align_world(track, solver_points)
    assert alignment.up_from == "camera up"
    moved = track.transformed(alignment.scale, alignment.rotation, alignment.translation)
    up = -moved.rotation[:, :, 1].mean(0)
    assert up / np.linalg.norm(up) == pytest.approx([0, 0, 1], abs=1e-6)
    seen = (alignment.apply(solver_points) - moved.centre[0]) @ moved.rotation[0, :, 2]
    assert np.median(seen[seen > 0]) == pytest.approx(world_align.NOMINAL_DEPTH)


def test_a_tripod_sits_at_eye_height_above_the_origin():
    rotations, _, _ = _true_scene()
    track = CameraTrack(Intrinsics(150, 80, 60), rotations, np.zeros((8, 3)), 160, 120)
    alignment = world_align.align_world(track, np.zeros((0, 3)), rotation_only=True)
    moved = track.transformed(alignment.scale, alignment.rotation, alignment.translation)
    assert np.allclose(moved.centre, [0, 0, world_align.EYE_HEIGHT])
