"""The USD camera through Blender's own USD importer (bpy in this process): at every frame, a world
point lands on the same pixel through bpy_extras' world_to_camera_view as through the OpenCV camera,
principal point included, and the lens arrives in millimetres (DESIGN.md: USD lens values are tenths
of a scene unit; with metersPerUnit 1 they must be written scaled, or the lens imports 100x too long
while the field of view stays right, which the last test shows)."""
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))
import blender_env  # noqa: E402

blender_env.use_temp_user_resources()  # before the first `import bpy`: keep ~/.config/blender out of it
bpy = pytest.importorskip("bpy")
pytest.importorskip("pxr")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402
from pxr import Usd  # noqa: E402

from exporters.camera_formats import usd_camera  # noqa: E402
from exporters.conventions import blender_lens_from_K, project_points  # noqa: E402

from .conftest import HEIGHT, WIDTH, make_cameras, points_in_front  # noqa: E402


@pytest.fixture
def scene():
    blender_env.reset_scene()
    yield bpy.context.scene
    blender_env.reset_scene()


def import_camera(scene, path, pixel_aspect=(1.0, 1.0)):
    assert bpy.ops.wm.usd_import(filepath=str(path)) == {"FINISHED"}
    cameras = [o for o in scene.objects if o.type == "CAMERA"]
    assert len(cameras) == 1, [o.name for o in scene.objects]
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = WIDTH, HEIGHT, 100
    render.pixel_aspect_x, render.pixel_aspect_y = pixel_aspect  # Blender does not read USD's pixelAspectRatio
    return cameras[0]


def blender_pixels(scene, camera, frame, points):
    scene.frame_set(frame)
    evaluated = camera.evaluated_get(bpy.context.evaluated_depsgraph_get())
    uv = np.array([tuple(world_to_camera_view(scene, evaluated, Vector(p)))[:2] for p in points])
    return np.column_stack([uv[:, 0] * WIDTH, (1 - uv[:, 1]) * HEIGHT]), evaluated.data


@pytest.mark.parametrize("aspect", [1.0, 1.04], ids=["square-pixels", "non-square-pixels"])
def test_blender_sees_what_opencv_sees(scene, tmp_path, aspect):
    cams = make_cameras(aspect=aspect)
    path = usd_camera.write_usd_camera(tmp_path / "camera.usda", cams)
    lens0 = blender_lens_from_K(cams.frames[0].K, WIDTH, HEIGHT)
    camera = import_camera(scene, path, (lens0.pixel_aspect_x, lens0.pixel_aspect_y))
    assert (scene.frame_start, scene.frame_end) == (1, len(cams.frames))
    for f, X in zip(cams.frames, points_in_front(cams, per_frame=8)):
        expected, _ = project_points(f.K, f.world_from_camera, X)
        got, data = blender_pixels(scene, camera, 1 + f.index, X)
        np.testing.assert_allclose(got, expected, atol=0.1, err_msg=f"frame {f.index}")
        lens = blender_lens_from_K(f.K, WIDTH, HEIGHT)
        assert data.lens == pytest.approx(lens.lens_mm, rel=1e-5)  # millimetres: 21.4..43, not 2140..4300
        assert data.sensor_width == pytest.approx(36.0, rel=1e-6) and data.sensor_fit == "HORIZONTAL"
        assert (data.shift_x, data.shift_y) == pytest.approx((lens.shift_x, lens.shift_y), abs=1e-6)


def test_unscaled_lens_imports_100x_too_long(scene, tmp_path):
    """The DESIGN.md fact, reproduced: lens values written as millimetres on a metersPerUnit 1 stage."""
    cams = make_cameras(frames=3, aspect=1.0, zoom=False)
    path = usd_camera.write_usd_camera(tmp_path / "camera.usda", cams)
    stage = Usd.Stage.Open(str(path))
    prim = stage.GetDefaultPrim()
    for name in ("focalLength", "horizontalAperture", "verticalAperture", "horizontalApertureOffset",
                 "verticalApertureOffset"):  # "mm", as if metersPerUnit were 0.01
        attr = prim.GetAttribute(name)
        for t in attr.GetTimeSamples() or [Usd.TimeCode.Default()]:
            attr.Set(attr.Get(t) * 100.0, t)
    stage.Save()
    camera = import_camera(scene, path)
    f, X = cams.frames[1], points_in_front(cams)[1]
    got, data = blender_pixels(scene, camera, 2, X)
    assert data.lens == pytest.approx(100 * f.K[0, 0] * 36.0 / WIDTH, rel=1e-5)  # 2137.5 mm: wrong lens
    np.testing.assert_allclose(got, project_points(f.K, f.world_from_camera, X)[0], atol=0.1)  # same view
