"""USD camera: round trip; stage metadata; the lens in tenths of a scene unit (metersPerUnit 1: a
21.4 mm lens is 0.214); re-opened with pxr alone, the camera projects world points to the OpenCV
pixels both through pxr's own GfCamera frustum and through the UsdGeom.Camera formulas written out
from its attributes; a flipped offset sign would not."""
import math

import numpy as np
import pytest

pytest.importorskip("pxr")
from pxr import Usd, UsdGeom, UsdRender  # noqa: E402

from exporters.camera_formats import usd_camera  # noqa: E402
from exporters.conventions import project_points  # noqa: E402

from .conftest import HEIGHT, WIDTH, assert_cameras_match, make_cameras, points_in_front  # noqa: E402

LENS_ATTRS = ("focalLength", "horizontalAperture", "verticalAperture", "horizontalApertureOffset",
              "verticalApertureOffset")


@pytest.fixture
def usd_file(tmp_path, moving_cameras):
    return usd_camera.write_usd_camera(tmp_path / "camera.usda", moving_cameras, fps=25.0)


def test_round_trip(usd_file, moving_cameras):
    # The lens attributes are 32-bit floats: 1e-6 relative is what they hold.
    assert_cameras_match(usd_camera.read_usd_camera(usd_file), moving_cameras, rtol=1e-6)


def test_round_trip_usdc_and_frame_start(tmp_path):
    cams = make_cameras(frames=4, zoom=False, drift=False, first_index=3)
    path = usd_camera.write_usd_camera(tmp_path / "camera.usdc", cams, fps=30.0, frame_start=1001)
    stage = Usd.Stage.Open(str(path))
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (1004.0, 1007.0)
    assert_cameras_match(usd_camera.read_usd_camera(path), cams, rtol=1e-6)
    # A constant lens is authored once, not per time sample.
    camera = UsdGeom.Camera(stage.GetDefaultPrim())
    assert camera.GetFocalLengthAttr().GetNumTimeSamples() == 0


def test_stage_metadata_and_units(usd_file, moving_cameras):
    stage = Usd.Stage.Open(str(usd_file))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetTimeCodesPerSecond() == 25.0 and stage.GetFramesPerSecond() == 25.0
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (1.0, 16.0)
    prim = stage.GetDefaultPrim()
    assert prim.IsA(UsdGeom.Camera) and prim.GetPath() == usd_camera.CAMERA_PATH
    camera = UsdGeom.Camera(prim)
    assert camera.GetFocalLengthAttr().GetNumTimeSamples() == len(moving_cameras.frames)
    # 36 mm sensor = 0.36 tenths of a metre; focal length fx * 36 / W mm, likewise / 100.
    assert camera.GetHorizontalApertureAttr().Get() == pytest.approx(0.36)
    for f in moving_cameras.frames:
        focal = camera.GetFocalLengthAttr().Get(Usd.TimeCode(1 + f.index))
        assert focal == pytest.approx(f.K[0, 0] * 36.0 / WIDTH / 100.0, rel=1e-6)
        assert 0.2 < focal < 0.5  # not 21..43 ("mm"), which Blender would read as 2.1..4.3 m lenses
    settings = UsdRender.Settings(stage.GetPrimAtPath(usd_camera.SETTINGS_PATH))
    assert tuple(settings.GetResolutionAttr().Get()) == (WIDTH, HEIGHT)
    assert settings.GetPixelAspectRatioAttr().Get() == pytest.approx(1.04)
    assert settings.GetCameraRel().GetTargets() == [prim.GetPath()]


def project_with_gf_camera(prim, t, X):
    """pxr's own projection: GfCamera -> GfFrustum view and projection matrices (row vectors), NDC -> pixels."""
    frustum = UsdGeom.Camera(prim).GetCamera(Usd.TimeCode(t)).frustum
    m = np.array(frustum.ComputeViewMatrix() * frustum.ComputeProjectionMatrix())
    h = np.column_stack([X, np.ones(len(X))]) @ m
    ndc = h[:, :2] / h[:, 3:4]
    return np.column_stack([(ndc[:, 0] + 1) / 2 * WIDTH, (1 - ndc[:, 1]) / 2 * HEIGHT])


def project_with_attributes(prim, t, X, offset_sign=1.0):
    """UsdGeom.Camera by hand: the film point focalLength * (X, Y) / -Z (camera looks down -Z, +Y up)
    inside the aperture window centred on the offsets; all five values in the same (tenth) unit."""
    tc = Usd.TimeCode(t)
    f, ha, va, ho, vo = (prim.GetAttribute(n).Get(tc) for n in LENS_ATTRS)
    local_to_world = np.array(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(tc)).T
    pc = (np.column_stack([X, np.ones(len(X))]) @ np.linalg.inv(local_to_world).T)[:, :3]
    film = f * pc[:, :2] / -pc[:, 2:3]
    u = (film[:, 0] - offset_sign * ho + ha / 2) / ha
    v = (film[:, 1] - offset_sign * vo + va / 2) / va
    return np.column_stack([u * WIDTH, (1 - v) * HEIGHT])


def test_usd_projection_matches_opencv(usd_file, moving_cameras):
    stage = Usd.Stage.Open(str(usd_file))
    prim = stage.GetPrimAtPath(usd_camera.CAMERA_PATH)
    points = points_in_front(moving_cameras, per_frame=10)
    for f, X in zip(moving_cameras.frames, points):
        expected, _ = project_points(f.K, f.world_from_camera, X)
        np.testing.assert_allclose(project_with_gf_camera(prim, 1 + f.index, X), expected, atol=0.01)
        np.testing.assert_allclose(project_with_attributes(prim, 1 + f.index, X), expected, atol=0.01)
        # Counter-example: the principal point's offsets with the other sign miss by pixels.
        wrong = project_with_attributes(prim, 1 + f.index, X, offset_sign=-1.0)
        assert np.abs(wrong - expected).max() > 5.0


def test_reader_takes_size_from_arguments(usd_file):
    cams = usd_camera.read_usd_camera(usd_file, width=1280, height=720)
    assert (cams.width, cams.height) == (1280, 720)
    assert math.isclose(cams.frames[0].K[0, 0], 2 * 380.0, rel_tol=1e-6)  # same angle of view, twice the pixels
