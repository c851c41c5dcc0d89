"""COLMAP text model: exact round trip; the files parsed here independently project world points to
the same pixels as Shotfield's OpenCV cameras; the pose written is cam_from_world (writing
world_from_camera instead would put the points elsewhere)."""
import math

import numpy as np

from exporters.camera_formats import colmap_text
from exporters.conventions import project_points

from .conftest import assert_cameras_match, make_cameras, points_in_front


def test_round_trip(tmp_path, moving_cameras):
    paths = colmap_text.write_colmap_text(tmp_path, moving_cameras)
    assert [p.name for p in paths] == ["cameras.txt", "images.txt", "points3D.txt"]
    assert_cameras_match(colmap_text.read_colmap_text(tmp_path), moving_cameras, rtol=1e-12)


def test_one_camera_per_distinct_intrinsics(tmp_path):
    still = make_cameras(frames=5, zoom=False, drift=False, first_index=10)
    colmap_text.write_colmap_text(tmp_path / "still", still)
    cams = [ln for ln in (tmp_path / "still" / "cameras.txt").read_text().splitlines() if not ln.startswith("#")]
    assert cams == ["1 PINHOLE 640 360 380.0 395.2 347.25 161.75"]
    back = colmap_text.read_colmap_text(tmp_path / "still")
    assert [f.index for f in back.frames] == [10, 11, 12, 13, 14]

    colmap_text.write_colmap_text(tmp_path / "zoom", make_cameras(frames=5))
    cams = [ln for ln in (tmp_path / "zoom" / "cameras.txt").read_text().splitlines() if not ln.startswith("#")]
    assert len(cams) == 5


def test_images_txt_layout(tmp_path, moving_cameras):
    colmap_text.write_colmap_text(tmp_path, moving_cameras)
    lines = [ln for ln in (tmp_path / "images.txt").read_text().split("\n")[:-1] if not ln.startswith("#")]
    assert len(lines) == 2 * len(moving_cameras.frames)
    assert all(line == "" for line in lines[1::2])  # the POINTS2D lines, empty
    first = lines[0].split()
    assert first[0] == "1" and first[8] == "1" and first[9] == "00000.png"


def quat_to_matrix_independent(qw, qx, qy, qz):
    """Via axis and angle (Rodrigues), not the algebraic formula the module uses."""
    angle = 2 * math.atan2(math.sqrt(qx * qx + qy * qy + qz * qz), qw)
    axis = np.array([qx, qy, qz])
    if np.linalg.norm(axis) < 1e-15:
        return np.eye(3)
    x, y, z = axis / np.linalg.norm(axis)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def parse_and_project(folder, points_per_frame, invert=False):
    """Project with COLMAP's model read from the text files: x = K (R(q) X + t), pixel-corner origin."""
    cams = {}
    for line in (folder / "cameras.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            p = line.split()
            cams[p[0]] = [float(v) for v in p[4:8]]
    image_lines = [ln for ln in (folder / "images.txt").read_text().split("\n")[:-1] if not ln.startswith("#")][0::2]
    out = []
    for line, X in zip(image_lines, points_per_frame):
        p = line.split()
        q, t = [float(v) for v in p[1:5]], np.array([float(v) for v in p[5:8]])
        R = quat_to_matrix_independent(*q)
        if invert:  # the mistake: reading the pose as world_from_camera
            R, t = R.T, -R.T @ t
        fx, fy, cx, cy = cams[p[8]]
        pc = X @ R.T + t
        out.append(np.column_stack([fx * pc[:, 0] / pc[:, 2] + cx, fy * pc[:, 1] / pc[:, 2] + cy]))
    return out


def test_files_project_like_opencv_cameras(tmp_path, moving_cameras):
    colmap_text.write_colmap_text(tmp_path, moving_cameras)
    points = points_in_front(moving_cameras)
    colmap_xy = parse_and_project(tmp_path, points)
    for f, X, xy in zip(moving_cameras.frames, points, colmap_xy):
        expected, _ = project_points(f.K, f.world_from_camera, X)
        np.testing.assert_allclose(xy, expected, atol=1e-6)
    # Counter-example: the inverse pose (world_from_camera) lands far away.
    wrong = parse_and_project(tmp_path, points, invert=True)
    for f, X, xy in zip(moving_cameras.frames, points, wrong):
        expected, _ = project_points(f.K, f.world_from_camera, X)
        assert np.abs(xy - expected).max() > 5.0


def test_points3d(tmp_path, moving_cameras):
    rng = np.random.default_rng(3)
    xyz = rng.normal(size=(50, 3)) * 10
    rgb = rng.integers(0, 256, size=(50, 3)).astype(np.uint8)
    colmap_text.write_colmap_text(tmp_path, moving_cameras, xyz, rgb)
    back = colmap_text.read_colmap_points(tmp_path)
    np.testing.assert_array_equal(back.xyz, xyz)
    np.testing.assert_array_equal(back.rgb, rgb)
    first = [ln for ln in (tmp_path / "points3D.txt").read_text().splitlines() if not ln.startswith("#")][0]
    assert first.split()[0] == "1" and first.split()[-1] == "-1" and len(first.split()) == 8

    colmap_text.write_colmap_text(tmp_path / "float_rgb", moving_cameras, xyz[:2], np.array([[1.0, 0.5, 0.0]] * 2))
    np.testing.assert_array_equal(colmap_text.read_colmap_points(tmp_path / "float_rgb").rgb, [[255, 128, 0]] * 2)
    colmap_text.write_colmap_text(tmp_path / "none", moving_cameras)
    assert colmap_text.read_colmap_points(tmp_path / "none").xyz.shape == (0, 3)
