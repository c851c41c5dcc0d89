"""Nuke .chan: pose round trip; a camera rebuilt the way Nuke builds one (Y-up world, ZXY rotation
order, looking down -Z, vfov) sees the world points where Shotfield's camera does; the wrong rotation
order or a missing Z-up -> Y-up turn would not; vfov against Nuke's focal/aperture relation."""
import math

import numpy as np
import pytest

from exporters.camera_formats import nuke_chan
from exporters.conventions import project_points

from .conftest import HEIGHT, WIDTH, assert_cameras_match, make_cameras, points_in_front, rot_x, rot_y, rot_z


def read_rows(path):
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


def test_file_layout(tmp_path, moving_cameras):
    path = nuke_chan.write_chan(tmp_path / "camera.chan", moving_cameras, frame_start=1001)
    rows = read_rows(path)
    assert len(rows) == len(moving_cameras.frames) and all(len(r) == 8 for r in rows)
    assert [r[0] for r in rows] == [1001 + f.index for f in moving_cameras.frames]
    assert path.read_text().split()[0] == "1001"  # an integer frame number


def test_round_trip(tmp_path, moving_cameras):
    path = nuke_chan.write_chan(tmp_path / "camera.chan", moving_cameras)
    # The pose and fy come back exactly; cx, cy and fx / fy are not in a .chan.
    plain = nuke_chan.read_chan(path, WIDTH, HEIGHT)
    assert_cameras_match(plain, moving_cameras, rtol=1e-9, check_K=False)
    for a, e in zip(plain.frames, moving_cameras.frames):
        assert math.isclose(a.K[1, 1], e.K[1, 1], rel_tol=1e-12)
        assert (a.K[0, 2], a.K[1, 2], a.K[0, 0]) == (WIDTH / 2, HEIGHT / 2, a.K[1, 1])
    # Told the principal point and pixel aspect, K comes back too (the shot has a fixed principal point).
    still_pp = make_cameras(drift=False)
    nuke_chan.write_chan(path, still_pp)
    full = nuke_chan.read_chan(path, WIDTH, HEIGHT, principal_point=(347.25, 161.75), fx_over_fy=1 / 1.04)
    assert_cameras_match(full, still_pp, rtol=1e-9)


def nuke_project(row, X_shotfield, cx, cy, fx_over_fy, order="ZXY", y_up=True):
    """Nuke's camera, independently: world in Nuke is Y up, so a Shotfield point (x, y, z) is (x, z, -y);
    rotation order ZXY means Rz first, then Rx, then Ry: R = Ry Rx Rz; the camera looks down -Z, +Y up;
    fy = (H / 2) / tan(vfov / 2)."""
    _, tx, ty, tz, rx, ry, rz, vfov = row
    rx, ry, rz = map(math.radians, (rx, ry, rz))
    R = {"ZXY": rot_y(ry) @ rot_x(rx) @ rot_z(rz), "XYZ": rot_z(rz) @ rot_y(ry) @ rot_x(rx)}[order]
    X = X_shotfield[:, [0, 2, 1]] * [1, 1, -1] if y_up else X_shotfield
    pc = (X - [tx, ty, tz]) @ R  # R^T (X - t), row-wise
    fy = HEIGHT / 2 / math.tan(math.radians(vfov) / 2)
    depth = -pc[:, 2]
    return np.column_stack([cx + fx_over_fy * fy * pc[:, 0] / depth, cy - fy * pc[:, 1] / depth])


def test_nuke_camera_sees_what_opencv_camera_sees(tmp_path, moving_cameras):
    rows = read_rows(nuke_chan.write_chan(tmp_path / "camera.chan", moving_cameras))
    points = points_in_front(moving_cameras)
    missed = {"XYZ": 0, "Z up": 0}
    for row, f, X in zip(rows, moving_cameras.frames, points):
        expected, _ = project_points(f.K, f.world_from_camera, X)
        lens = f.K[0, 2], f.K[1, 2], f.K[0, 0] / f.K[1, 1]
        np.testing.assert_allclose(nuke_project(row, X, *lens), expected, atol=1e-6)
        # Counter-examples: another rotation order, or the Z-up world written unturned, miss.
        missed["XYZ"] += not np.allclose(nuke_project(row, X, *lens, order="XYZ"), expected, atol=1.0)
        missed["Z up"] += not np.allclose(nuke_project(row, X, *lens, y_up=False), expected, atol=1.0)
    # (Where a frame's rotation is about one axis only, every order agrees.)
    assert min(missed.values()) >= len(rows) - 2, missed


def test_vfov_against_nuke_focal_and_aperture(moving_cameras):
    rows = nuke_chan.chan_rows(moving_cameras)
    haperture = 24.576  # Nuke's default horizontal aperture, mm
    for row, f in zip(rows, moving_cameras.frames):
        fx, fy = f.K[0, 0], f.K[1, 1]
        focal_mm = fx * haperture / WIDTH
        vaperture = haperture * HEIGHT / WIDTH * fx / fy  # the vertical aperture that matches the plate
        # Nuke: focal = vaperture / (2 tan(vfov / 2))
        assert math.isclose(vaperture / (2 * math.tan(math.radians(row[7]) / 2)), focal_mm, rel_tol=1e-12)


def test_vfov_is_the_angle_between_top_and_bottom_rays():
    cams = make_cameras(frames=3, drift=False)
    for f in cams.frames:
        f.K[1, 2] = HEIGHT / 2  # with the principal point centred vertically, vfov is the full angle
    for row, f in zip(nuke_chan.chan_rows(cams), cams.frames):
        top, bottom = np.linalg.inv(f.K) @ [f.K[0, 2], 0, 1], np.linalg.inv(f.K) @ [f.K[0, 2], HEIGHT, 1]
        angle = math.degrees(math.acos(top @ bottom / np.linalg.norm(top) / np.linalg.norm(bottom)))
        assert math.isclose(row[7], angle, rel_tol=1e-12)


@pytest.mark.parametrize("rx_deg", [90.0, -90.0])
def test_gimbal_lock(rx_deg):
    R = nuke_chan.matrix_from_euler_zxy(math.radians(rx_deg), math.radians(30), math.radians(40))
    rx, ry, rz = nuke_chan.euler_zxy_from_matrix(R)
    assert math.isclose(math.degrees(rx), rx_deg) and rz == 0.0
    np.testing.assert_allclose(nuke_chan.matrix_from_euler_zxy(rx, ry, rz), R, atol=1e-12)


def test_euler_round_trip_and_continuity():
    rng = np.random.default_rng(5)
    for angles in rng.uniform(-math.pi, math.pi, size=(200, 3)):
        R = nuke_chan.matrix_from_euler_zxy(*angles)
        np.testing.assert_allclose(nuke_chan.matrix_from_euler_zxy(*nuke_chan.euler_zxy_from_matrix(R)), R, atol=1e-12)
    # A camera spinning three turns in yaw while tilting from 10 below to 50 above the horizon, in
    # small steps: the angles never jump between keys, so Nuke's interpolation cannot spin the camera.
    spin = make_cameras(frames=60)
    for n, f in enumerate(spin.frames):
        f.world_from_camera[:3, :3] = rot_z(math.radians(18 * n)) @ rot_x(math.radians(-100 + n)) @ rot_z(math.radians(2 * n))
    rows = nuke_chan.chan_rows(spin)
    assert np.abs(np.diff(rows[:, 4:7], axis=0)).max() < 30.0
    assert np.ptp(rows[:, 5]) > 720  # ry unwrapped past +-180
