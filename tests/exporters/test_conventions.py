"""exporters/conventions.py, numpy only: the round trips, and Blender's camera model written out
independently (from Blender's `BKE_camera_params_compute_viewplane`) so that a flipped sign or axis
fails here loudly, not only in a headless Blender."""
import numpy as np
import pytest

from exporters import conventions as cv

# (width, height, fx, fy, cx, cy): centred, off-centre, non-square pixels both ways, portrait frames.
INTRINSICS = [
    (320, 240, 300.0, 300.0, 160.0, 120.0),
    (320, 240, 280.0, 280.0, 171.5, 109.25),
    (1920, 1080, 1500.0, 1250.0, 1000.0, 500.0),   # fx > fy
    (640, 480, 500.0, 560.0, 300.0, 260.0),        # fx < fy
    (240, 320, 260.0, 260.0, 130.0, 150.0),        # portrait
    (1080, 1920, 1400.0, 1500.0, 500.0, 1000.0),   # portrait, non-square pixels
]


def K_of(fx, fy, cx, cy):
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def random_pose(rng) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    pose = np.eye(4)
    pose[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                    [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                    [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]
    pose[:3, 3] = rng.normal(size=3) * 3
    return pose


def points_in_view(K, world_from_camera, width, height, rng, n=20):
    """World points (n, 3) that the OpenCV camera sees inside the frame, at depths 1..10."""
    xy = rng.uniform([0, 0], [width, height], size=(n, 2))
    depth = rng.uniform(1, 10, size=n)
    pc = np.column_stack([xy, np.ones(n)]) @ np.linalg.inv(K).T * depth[:, None]
    return pc @ world_from_camera[:3, :3].T + world_from_camera[:3, 3]


def blender_project(lens: cv.BlenderLens, matrix_world, points_world, shift_scale=None):
    """Pixels (N, 2) `(x, y)` of world points through a Blender camera with horizontal sensor fit.

    Transcribes Blender's view plane: with ycor = pixel_aspect_y / pixel_aspect_x and viewfac = W,
    the frame spans x in [-W/2, W/2] + shift_x * W and y in [-ycor H/2, ycor H/2] + shift_y * W, in
    units of sensor_width / lens / W per unit depth; the camera looks down -Z with +Y up. Image y
    points down, so pixel y = (1 - v) * H (as bpy_extras.object_utils.world_to_camera_view does).
    `shift_scale` replaces W in the shift terms, to show what a wrong divisor does.
    """
    W, H = lens.width, lens.height
    ycor = lens.pixel_aspect_y / lens.pixel_aspect_x
    shift_scale = W if shift_scale is None else shift_scale
    unit = lens.sensor_width_mm / lens.lens_mm / W
    xmin, xmax = (-W / 2 + lens.shift_x * shift_scale) * unit, (W / 2 + lens.shift_x * shift_scale) * unit
    ymin, ymax = (-ycor * H / 2 + lens.shift_y * shift_scale) * unit, (ycor * H / 2 + lens.shift_y * shift_scale) * unit
    camera_from_world = np.linalg.inv(matrix_world)
    pc = points_world @ camera_from_world[:3, :3].T + camera_from_world[:3, 3]
    depth = -pc[:, 2]
    u = (pc[:, 0] / depth - xmin) / (xmax - xmin)
    v = (pc[:, 1] / depth - ymin) / (ymax - ymin)
    return np.column_stack([u * W, (1 - v) * H])


@pytest.mark.parametrize("width, height, fx, fy, cx, cy", INTRINSICS)
def test_K_lens_K_round_trip(width, height, fx, fy, cx, cy):
    K = K_of(fx, fy, cx, cy)
    lens = cv.blender_lens_from_K(K, width, height)
    assert lens.sensor_fit == "HORIZONTAL"
    assert lens.pixel_aspect_x >= 1.0 and lens.pixel_aspect_y >= 1.0  # Blender's minimum is 1
    assert (lens.width, lens.height) == (width, height)
    np.testing.assert_allclose(cv.K_from_blender_lens(lens), K, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("width, height, fx, fy, cx, cy", INTRINSICS)
def test_blender_camera_sees_what_opencv_camera_sees(width, height, fx, fy, cx, cy):
    rng = np.random.default_rng(width + height)
    K = K_of(fx, fy, cx, cy)
    pose = random_pose(rng)
    points = points_in_view(K, pose, width, height, rng)
    expected, depth = cv.project_points(K, pose, points)
    assert np.all(depth > 0)

    lens = cv.blender_lens_from_K(K, width, height)
    matrix_world = cv.blender_world_from_opencv_world_from_camera(pose)
    np.testing.assert_allclose(blender_project(lens, matrix_world, points), expected, atol=1e-6)


def test_wrong_conventions_miss_by_many_pixels():
    """Counter-examples: each plausible mistake moves the projected points by far more than a pixel."""
    rng = np.random.default_rng(7)
    width, height = 240, 320  # portrait, off-centre principal point
    K = K_of(260.0, 260.0, 100.0, 190.0)
    pose = random_pose(rng)
    points = points_in_view(K, pose, width, height, rng)
    expected, _ = cv.project_points(K, pose, points)
    lens = cv.blender_lens_from_K(K, width, height)
    matrix_world = cv.blender_world_from_opencv_world_from_camera(pose)

    def error(pixels):
        return np.nanmax(np.abs(pixels - expected))

    assert error(blender_project(lens, matrix_world, points)) < 1e-6
    # world_from_camera used as the Blender matrix, without flipping y and z: the points land
    # mirrored (they are behind that camera).
    assert error(blender_project(lens, pose, points)) > 20
    # The opposite shift signs.
    flipped = cv.BlenderLens(**{**lens.__dict__, "shift_x": -lens.shift_x, "shift_y": -lens.shift_y})
    assert error(blender_project(flipped, matrix_world, points)) > 20
    # DESIGN.md's `/ max(W, H)` read literally for a portrait frame: Blender's horizontal fit
    # multiplies the shift by W, so dividing by H puts the principal point in the wrong place.
    by_max = cv.BlenderLens(**{**lens.__dict__, "shift_x": -(100.0 - 120) / 320, "shift_y": (190.0 - 160) / 320})
    assert error(blender_project(by_max, matrix_world, points)) > 5


def test_pose_round_trip_and_axis_flip():
    rng = np.random.default_rng(1)
    poses = np.stack([random_pose(rng) for _ in range(8)])
    blender = cv.blender_world_from_opencv_world_from_camera(poses)
    # The Blender camera looks down its -Z, which is OpenCV's +z (forward); +Y up is OpenCV's -y (down).
    np.testing.assert_allclose(blender[:, :3, 2], -poses[:, :3, 2])
    np.testing.assert_allclose(blender[:, :3, 1], -poses[:, :3, 1])
    np.testing.assert_allclose(blender[:, :3, 3], poses[:, :3, 3])
    np.testing.assert_allclose(cv.opencv_world_from_camera_from_blender(blender), poses, atol=1e-12)
    # An object matrix with scale (e.g. a scaled camera object) gives the same pose.
    scaled = blender @ np.diag([2.0, 2.0, 2.0, 1.0])
    np.testing.assert_allclose(cv.opencv_world_from_camera_from_blender(scaled), poses, atol=1e-12)
    np.testing.assert_array_equal(cv.OPENCV_FROM_BLENDER_CAMERA @ cv.OPENCV_FROM_BLENDER_CAMERA, np.eye(4))


def test_skew_and_other_fits_are_refused():
    with pytest.raises(ValueError, match="skew"):
        cv.blender_lens_from_K(np.array([[300.0, 2.0, 160], [0, 300, 120], [0, 0, 1]]), 320, 240)
    lens = cv.blender_lens_from_K(K_of(300, 300, 160, 120), 320, 240)
    with pytest.raises(ValueError, match="HORIZONTAL"):
        cv.K_from_blender_lens(cv.BlenderLens(**{**lens.__dict__, "sensor_fit": "VERTICAL"}))


def test_lens_values_for_a_known_camera():
    """36 mm sensor across 320 px at fx = 320 px: a 36 mm lens; principal point 10 px right of centre."""
    lens = cv.blender_lens_from_K(K_of(320.0, 320.0, 170.0, 120.0), 320, 240)
    assert lens.lens_mm == pytest.approx(36.0)
    assert lens.shift_x == pytest.approx(-10 / 320)
    assert lens.shift_y == pytest.approx(0.0)


def test_unproject_then_project_gives_pixel_centres_and_depth():
    rng = np.random.default_rng(3)
    width, height = 12, 9
    K = K_of(10.0, 11.0, 5.5, 4.0)
    pose = random_pose(rng)
    depth = rng.uniform(0.5, 5.0, size=(height, width))
    world = cv.unproject_depth(K, pose, depth)
    assert world.shape == (height, width, 3)
    xy, z = cv.project_points(K, pose, world.reshape(-1, 3))
    xs, ys = cv.pixel_centres(width, height)
    assert xs[0, 0] == 0.5 and ys[0, 0] == 0.5 and xs[0, -1] == width - 0.5  # pixel-corner origin
    np.testing.assert_allclose(xy, np.column_stack([xs.ravel(), ys.ravel()]), atol=1e-9)
    np.testing.assert_allclose(z, depth.ravel(), rtol=1e-12)  # planar depth, not ray length


def test_scale_K_is_exact_under_the_corner_origin():
    rng = np.random.default_rng(4)
    K = K_of(300.0, 290.0, 161.0, 118.5)
    pose = random_pose(rng)
    points = points_in_view(K, pose, 320, 240, rng)
    xy, _ = cv.project_points(K, pose, points)
    K_half = cv.scale_K(K, (320, 240), (160, 120))
    xy_half, _ = cv.project_points(K_half, pose, points)
    np.testing.assert_allclose(xy_half, xy / 2, atol=1e-12)  # the image corners stay corners
    K_odd = cv.scale_K(K, (320, 240), (100, 77))
    np.testing.assert_allclose(cv.scale_K(K_odd, (100, 77), (320, 240)), K, atol=1e-12)
    xy_odd, _ = cv.project_points(K_odd, pose, points)
    np.testing.assert_allclose(xy_odd, xy * [100 / 320, 77 / 240], atol=1e-12)
