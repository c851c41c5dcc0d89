"""`shotfield.import_job(outputs={"camera"})` end to end: a cameras.json goes through the operator, and Blender's camera
must project world points to the same pixels as the OpenCV cameras did (exporters.conventions)."""
import json
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from exporters import cameras_json, conventions, job_manifest


def look_at(eye, target, roll=0.0) -> np.ndarray:
    """OpenCV world_from_camera (4, 4): z towards `target`, y down, world Z up, then rolled about z."""
    z = np.asarray(target, float) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = np.cos(roll), np.sin(roll)
    rotation = np.stack([x, y, z], axis=1) @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation, eye
    return pose


def orbit_cameras(width, height, n=16, fy_over_fx=1.0, zoom=True, turns=1.25) -> cameras_json.Cameras:
    """A camera circling the origin more than once (so Euler angles pass +-pi), bobbing and rolling,
    zooming, with its principal point off centre."""
    frames = []
    for i in range(n):
        angle = 2 * np.pi * turns * i / (n - 1)
        eye = np.array([6 * np.cos(angle), 6 * np.sin(angle), 1.5 + 0.5 * np.sin(3 * angle)])
        fx = (0.9 + (0.5 * i / n if zoom else 0.0)) * max(width, height)
        K = np.array([[fx, 0, 0.55 * width + 3.0], [0, fx * fy_over_fx, 0.45 * height - 5.0], [0, 0, 1]])
        frames.append(cameras_json.CameraFrame(i, K, look_at(eye, [0.2, -0.1, 0.3], roll=0.2 * np.sin(angle))))
    return cameras_json.Cameras(width, height, frames)


def write_job(job_dir, cameras, fps=None, count=None):
    cameras_json.write_cameras(job_dir / "camera" / "cameras.json", cameras)
    if fps is not None:
        manifest = job_manifest.new_manifest()
        manifest.update(fps=fps, frames={"start": 0, "end": None, "step": 1, "count": count or len(cameras.frames)})
        job_manifest.write_manifest(job_dir, manifest)
    return job_dir


def import_camera(**kwargs):
    """The panel's "Camera" import button."""
    return bpy.ops.shotfield.import_job(outputs={"camera"}, **kwargs)


POINTS = np.array([[0.2, -0.1, 0.3], [1.0, 0.5, 0.0], [-0.7, 0.8, 1.1], [0.5, -1.0, -0.4], [-1.2, -0.6, 0.6]])


def blender_pixels(scene, camera, points) -> np.ndarray:
    """(N, 2) pixels `(x, y)` (top-left origin) through Blender's own camera model at the current frame."""
    W, H = scene.render.resolution_x, scene.render.resolution_y
    out = []
    for p in points:
        u, v, _ = world_to_camera_view(scene, camera, Vector(p))  # (0, 0) bottom-left, (1, 1) top-right
        out.append((u * W, (1.0 - v) * H))
    return np.array(out)


@pytest.mark.parametrize(
    "width, height, fy_over_fx, frame_start",
    [
        (320, 240, 1.0, 1),     # landscape
        (240, 320, 1.0, 1),     # portrait: Blender's horizontal fit divides shift_y by W, not max(W, H)
        (320, 180, 1.0 / 1.2, 101),  # non-square pixels (fy < fx), starting at scene frame 101
        (200, 300, 1.1, 1),     # portrait, fy > fx
    ],
)
def test_camera_projects_like_opencv(scene, tmp_path, width, height, fy_over_fx, frame_start):
    cameras = orbit_cameras(width, height, fy_over_fx=fy_over_fx)
    write_job(tmp_path, cameras, fps=24.0)

    result = import_camera(directory=str(tmp_path), frame_start=frame_start)

    assert result == {"FINISHED"}
    camera = scene.camera
    assert camera is not None and camera.type == "CAMERA"
    assert (scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage) == (width, height, 100)
    assert camera.data.sensor_fit == "HORIZONTAL"
    assert (scene.frame_start, scene.frame_end) == (frame_start, frame_start + len(cameras.frames) - 1)
    for frame in cameras.frames:
        scene.frame_set(frame_start + frame.index)
        expected, depth = conventions.project_points(frame.K, frame.world_from_camera, POINTS)
        assert np.all(depth > 0)
        np.testing.assert_allclose(blender_pixels(scene, camera, POINTS), expected, atol=0.1,
                                   err_msg=f"frame {frame.index}")


def test_keys_are_bulk_linear_and_euler_filtered(scene, tmp_path):
    cameras = orbit_cameras(320, 240, n=24, turns=1.5)
    write_job(tmp_path, cameras)
    import_camera(directory=str(tmp_path))
    camera = scene.camera

    fcurves = {(fc.data_path, fc.array_index): fc for fc in _fcurves(camera)}
    assert set(fcurves) == {(p, i) for p in ("location", "rotation_euler") for i in range(3)}
    for fcurve in fcurves.values():
        keys = fcurve.keyframe_points
        assert [k.co[0] for k in keys] == [1.0 + i for i in range(24)]
        assert {k.interpolation for k in keys} == {"LINEAR"}
    # One and a half turns: without the Euler filter the yaw jumps by 2*pi somewhere.
    yaw = np.array([k.co[1] for k in fcurves["rotation_euler", 2].keyframe_points])
    assert np.abs(np.diff(yaw)).max() < 1.0
    assert np.ptp(yaw) > 2 * np.pi

    lens_curves = {fc.data_path for fc in _fcurves(camera.data)}
    assert "lens" in lens_curves  # the focal length varies (zoom)
    assert "shift_x" not in lens_curves  # the principal point does not: a constant, not a curve


def test_constant_lens_is_not_animated(scene, tmp_path):
    write_job(tmp_path, orbit_cameras(320, 240, zoom=False))
    import_camera(directory=str(tmp_path))
    assert scene.camera.data.animation_data is None


def test_fps_and_frame_range_from_manifest(scene, tmp_path):
    cameras = orbit_cameras(320, 240, n=8)
    write_job(tmp_path, cameras, fps=29.97, count=10)  # two trailing frames the solve did not register
    import_camera(directory=str(tmp_path))
    assert scene.render.fps == 30
    assert scene.render.fps / scene.render.fps_base == pytest.approx(29.97)
    assert (scene.frame_start, scene.frame_end) == (1, 10)


def test_active_clip_becomes_background(scene, tmp_path):
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        Image.fromarray(np.full((24, 32, 3), 60 * i, np.uint8)).save(frames / f"{i:05d}.png")
    clip = bpy.data.movieclips.load(str(frames / "00000.png"))
    scene.active_clip = clip
    write_job(tmp_path, orbit_cameras(32, 24, n=4))

    import_camera(directory=str(tmp_path))

    data = scene.camera.data
    assert data.show_background_images
    assert data.background_images[0].source == "MOVIE_CLIP"
    assert data.background_images[0].clip == clip
    assert clip.frame_start == 1 and clip.frame_duration == 4


@pytest.mark.parametrize("content, message", [
    (None, "the job has no camera/cameras.json"),
    ("{not json", "cannot read JSON"),
    (json.dumps({"width": 4, "height": 3, "frames": [{"K": [[1, 0], [0, 1]], "world_from_camera": np.eye(4).tolist()}]}),
     "frames[0].K"),
    (json.dumps({"width": 4, "height": 3, "frames": []}), "no frames"),
    (json.dumps({"width": 4, "height": 3, "frames": [{"K": [[100, 5, 2], [0, 100, 1.5], [0, 0, 1]],
                                                      "world_from_camera": np.eye(4).tolist()}]}), "skew"),
    (json.dumps({"width": 4, "height": 3, "frames": [{"K": [[-100, 0, 2], [0, 100, 1.5], [0, 0, 1]],
                                                      "world_from_camera": np.eye(4).tolist()}]}), "positive"),
    (json.dumps({"width": 4, "height": 3, "frames": [{"K": np.eye(3).tolist(),
                                                      "world_from_camera": np.diag([1.0, 1, -1, 1]).tolist()}]}),
     "not a rotation"),  # a mirror: OpenCV and OpenGL axes mixed up upstream
])
def test_bad_cameras_file_is_reported_not_raised(scene, tmp_path, addon, content, message):
    path = tmp_path / "camera" / "cameras.json"
    if content is not None:
        path.parent.mkdir()
        path.write_text(content)
    objects_before = len(bpy.data.objects)

    # bpy.ops turns an ERROR report into RuntimeError("Error: <message>"); an exception escaping
    # execute() would show up as a Python traceback instead.
    with pytest.raises(RuntimeError) as info:
        import_camera(directory=str(tmp_path))
    assert message in str(info.value) and "Traceback" not in str(info.value)
    assert len(bpy.data.objects) == objects_before  # phase 1 failed: nothing was built

    # The operator itself returns CANCELLED after reporting.
    reports = []
    fake = SimpleNamespace(directory=str(tmp_path), outputs={"camera"}, frame_start=1, ground_plane=False,
                           report=lambda kind, text: reports.append((kind, text)))
    assert bpy.types.SHOTFIELD_OT_import_job.execute(fake, bpy.context) == {"CANCELLED"}
    assert reports and reports[0][0] == {"ERROR"} and message in reports[0][1]


def test_job_dir_comes_from_the_scene_setting(scene, tmp_path):
    write_job(tmp_path, orbit_cameras(64, 48, n=3))
    scene.shotfield.job_dir = str(tmp_path)
    assert import_camera() == {"FINISHED"}
    assert scene.camera is not None


def test_default_job_dir_of_an_unsaved_file_is_refused(scene):
    assert bpy.data.filepath == ""  # `//shotfield/<clip>/` has no .blend folder to be relative to
    with pytest.raises(RuntimeError, match="save the file first"):
        import_camera()


def _fcurves(id_data):
    """F-curves of an ID's action, for slotted (4.4+) and legacy actions alike."""
    animation_data = id_data.animation_data
    if animation_data is None or animation_data.action is None:
        return []
    action = animation_data.action
    if hasattr(action, "slots"):
        from bpy_extras.anim_utils import action_get_channelbag_for_slot

        return list(action_get_channelbag_for_slot(action, animation_data.action_slot).fcurves)
    return list(action.fcurves)
