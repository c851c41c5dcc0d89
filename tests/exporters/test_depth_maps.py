"""exporters/depth_maps.py: compositor depth EXRs (Z and depth.Z, header metadata), 16-bit disparity PNGs,
and point clouds unprojected from depth."""
import numpy as np
import pytest

from exporters import depth_maps, ply
from exporters.exr import read_depth_exr, read_exr


def _depth(h=12, w=16):
    rng = np.random.default_rng(0)
    d = rng.uniform(1.5, 40.0, (h, w)).astype(np.float32)
    d[0, 0] = np.inf
    d[1, 1] = 0.0
    return d


def test_z_channel_round_trip_and_metadata(tmp_path):
    d = _depth()
    path = tmp_path / "d.exr"
    depth_maps.write_compositor_depth(path, d, units="m")
    back = read_depth_exr(path)  # the job-folder reader: channel "Z"
    known = np.isfinite(d) & (d > 0)
    assert np.array_equal(back[known], d[known])
    assert np.isinf(back[0, 0]) and np.isinf(back[1, 1])  # unknown is written as inf
    header = depth_maps.exr_header(path)
    assert header["shotfieldDepth"] == "planar" and header["shotfieldUnits"] == "m"


def test_layered_depth_z_variant(tmp_path):
    d = _depth()
    path = tmp_path / "d.exr"
    depth_maps.write_compositor_depth(path, d, layer="depth")
    assert list(read_exr(path)) == ["depth.Z"]
    back = depth_maps.read_compositor_depth(path)
    known = np.isfinite(d) & (d > 0)
    assert np.array_equal(back[known], d[known])
    with pytest.raises(ValueError):
        read_depth_exr(path)  # the job folder's contract is the bare "Z" channel


def test_disparity_png_is_16_bit_and_inverts(tmp_path):
    d = _depth()
    path = tmp_path / "disp.png"
    near, far = depth_maps.write_disparity_png(path, d, near=1.5, far=40.0)
    raw = depth_maps._read_png16(path)
    assert raw.dtype == np.uint16 and raw[0, 0] == 0 and raw[1, 1] == 0
    assert raw.max() > 60000  # the nearest pixels use the top of the range
    import cv2

    assert np.array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), raw)  # an independent PNG reader agrees
    back = depth_maps.read_disparity_png(path, near, far)
    known = np.isfinite(d) & (d > 0)
    # one 16-bit step of disparity, relative: at most a few 1e-4 of depth at the far end
    assert np.max(np.abs(back[known] - d[known]) / d[known]) < 2e-3


def test_points_unproject_to_the_camera_centre_ray(tmp_path):
    h, w = 6, 8
    K = np.array([[10.0, 0, 4.0], [0, 10.0, 3.0], [0, 0, 1]])
    wfc = np.eye(4)
    wfc[:3, 3] = [1.0, 2.0, 3.0]
    depth = np.full((h, w), 5.0, np.float32)
    depth[0, 0] = 0.0
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[3, 4] = [255, 0, 0]
    n = depth_maps.write_frame_points(tmp_path / "f.ply", depth, K, wfc, rgb)
    assert n == h * w - 1
    pts, cols = ply.points_and_colours(tmp_path / "f.ply")
    # pixel (4, 3) has its centre at (4.5, 3.5): x = 0.5 / 10 * 5, y = 0.5 / 10 * 5, z = 5, plus the centre
    k = np.flatnonzero((cols == [255, 0, 0]).all(1))[0]
    assert np.allclose(pts[k], [1.25, 2.25, 8.0], atol=1e-5)


def test_points_with_a_stride_take_every_step_th_pixel_centre(tmp_path):
    """step=3: pixels (0, 0), (3, 0), ... of the full-size image, at their own centres (3j + 0.5), with their
    own colours; the counter-example of scaling K instead would put them at (j + 0.5) * 3."""
    h, w, step = 7, 10, 3
    K = np.array([[20.0, 0, 5.0], [0, 20.0, 3.5], [0, 0, 1]])
    depth = np.full((h, w), 4.0, np.float32)
    depth[3, 6] = np.nan  # unknown: no point
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = np.arange(w)[None, :] * 10   # red says the column,
    rgb[..., 1] = np.arange(h)[:, None] * 10   # green the row
    n = depth_maps.write_frame_points(tmp_path / "f.ply", depth, K, np.eye(4), rgb, step=step)
    assert n == 3 * 4 - 1
    pts, cols = ply.points_and_colours(tmp_path / "f.ply")
    u = pts[:, 0] / pts[:, 2] * K[0, 0] + K[0, 2]
    v = pts[:, 1] / pts[:, 2] * K[1, 1] + K[1, 2]
    assert np.allclose(u, cols[:, 0] / 10 + 0.5, atol=1e-4) and np.allclose(v, cols[:, 1] / 10 + 0.5, atol=1e-4)
    assert set(cols[:, 0] // 10) == {0, 3, 6, 9} and set(cols[:, 1] // 10) == {0, 3, 6}
    assert (60, 30) not in {(int(c[0]), int(c[1])) for c in cols} and np.allclose(pts[:, 2], 4.0)
