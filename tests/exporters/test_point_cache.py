"""Scene-flow point caches: the USD file (UsdGeom.Points, time samples, velocities per second, linear colours,
stage units and axes) and the PLY sequence round-trip, and read back with the plain PLY reader too."""
import numpy as np
import pytest
from pxr import Usd, UsdGeom

from exporters import ply
from exporters.point_cache_ply import read_point_frame, write_point_sequence
from exporters.point_cache_usd import POINTS_PATH, PointFrame, read_point_cache_usd, srgb_to_linear, write_point_cache_usd


def frames(n=4, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        count = 50 + 7 * i
        out.append(PointFrame(i, rng.normal(size=(count, 3)).astype(np.float32),
                              rng.integers(0, 256, (count, 3), dtype=np.uint8),
                              rng.normal(0, 0.1, (count, 3)).astype(np.float32), rng.random(count) < 0.3))
    return out


def test_usd_cache_round_trip_and_stage_conventions(tmp_path):
    src = frames()
    path = write_point_cache_usd(tmp_path / "points.usdc", src, fps=25.0, width=0.03)
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z and UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetTimeCodesPerSecond() == 25.0 and stage.GetFramesPerSecond() == 25.0
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (1.0, 4.0)
    prim = UsdGeom.Points(stage.GetDefaultPrim())
    assert prim.GetPath() == POINTS_PATH
    assert prim.GetPointsAttr().GetTimeSamples() == [1.0, 2.0, 3.0, 4.0]
    # velocities are stored per second (USD's unit), i.e. the per-frame scene flow times fps
    np.testing.assert_allclose(np.asarray(prim.GetVelocitiesAttr().Get(2.0)), src[1].velocities * 25.0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(prim.GetWidthsAttr().Get(3.0)), 0.03)
    np.testing.assert_allclose(np.asarray(prim.GetDisplayColorPrimvar().Get(1.0)), srgb_to_linear(src[0].colours), rtol=1e-6)

    back, fps, start = read_point_cache_usd(path)
    assert (fps, start, [f.index for f in back]) == (25.0, 1, [0, 1, 2, 3])
    for a, b in zip(src, back):
        np.testing.assert_allclose(b.positions, a.positions)
        np.testing.assert_allclose(b.velocities, a.velocities, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(b.colours, a.colours)
        np.testing.assert_array_equal(b.dynamic, a.dynamic)


def test_usd_cache_dynamic_only(tmp_path):
    src = frames()
    back, _, _ = read_point_cache_usd(write_point_cache_usd(tmp_path / "d.usdc", src, 24.0, 0.01, dynamic_only=True))
    assert [len(f.positions) for f in back] == [int(f.dynamic.sum()) for f in src]
    np.testing.assert_allclose(back[2].positions, src[2].positions[src[2].dynamic])
    assert all(f.dynamic.all() for f in back)


def test_srgb_to_linear_known_values():
    np.testing.assert_allclose(srgb_to_linear(np.array([[0, 255, 10]], np.uint8)), [[0.0, 1.0, 10 / 255 / 12.92]], rtol=1e-6)
    assert abs(srgb_to_linear(np.array([[128, 128, 128]], np.uint8))[0, 0] - 0.2158605) < 1e-5


def test_ply_sequence_round_trip(tmp_path):
    src = frames(3)
    paths = write_point_sequence(tmp_path / "points", src)
    assert [p.name for p in paths] == ["00000.ply", "00001.ply", "00002.ply"]
    for a, path in zip(src, paths):
        b = read_point_frame(path, a.index)
        np.testing.assert_array_equal(b.positions, a.positions)
        np.testing.assert_array_equal(b.velocities, a.velocities)
        np.testing.assert_array_equal(b.colours, a.colours)
        np.testing.assert_array_equal(b.dynamic, a.dynamic)
        positions, colours = ply.points_and_colours(path)   # any PLY reader sees points and colours
        np.testing.assert_array_equal(positions, a.positions)
        np.testing.assert_array_equal(colours, a.colours)


def test_plain_ply_is_not_a_point_cache(tmp_path):
    ply.write_points(tmp_path / "p.ply", np.zeros((3, 3), np.float32))
    with pytest.raises(ply.PlyError, match="not a point-cache PLY"):
        read_point_frame(tmp_path / "p.ply")
