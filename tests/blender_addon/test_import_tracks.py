"""Tracked points into Blender (importers/tracks.py): empties keyed in world space that hide while occluded,
and markers in the footage clip's tracking data, muted where occluded. The tracks are real projections of
moving 3D points through an orbiting OpenCV camera; the empties must project through the imported Blender
camera back onto the tracks' 2D positions."""
import bpy
import numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from exporters import tracks_npz

from .test_import_camera import orbit_cameras
from .test_importers import H, N, W, make_job


def projected_tracks(cameras, points_world):
    """xy (F, P, 2) and planar depth (F, P) of world points (F, P, 3) through the OpenCV cameras."""
    xy, z = [], []
    for f, frame in enumerate(cameras.frames):
        camera_from_world = np.linalg.inv(frame.world_from_camera)
        cam = points_world[f] @ camera_from_world[:3, :3].T + camera_from_world[:3, 3]
        pix = cam @ frame.K.T
        xy.append(pix[:, :2] / pix[:, 2:3])
        z.append(cam[:, 2])
    return np.array(xy, np.float32), np.array(z)


def write_tracks(job, n_points=6):
    cameras = orbit_cameras(W, H, n=N, zoom=False)
    t = np.arange(N)[:, None, None]
    rng = np.random.default_rng(1)
    start = rng.uniform(-0.5, 0.5, (1, n_points, 3))
    velocity = np.zeros((1, n_points, 3))
    velocity[0, : n_points // 2] = rng.uniform(-0.03, 0.03, (n_points // 2, 3))   # half of them move
    world = (start + t * velocity).astype(np.float32)
    xy, z = projected_tracks(cameras, world)
    visible = (z > 0) & (xy[..., 0] >= 0) & (xy[..., 0] < W) & (xy[..., 1] >= 0) & (xy[..., 1] < H)
    visible[3:6, 1] = False             # "behind something" for a few frames
    queries = np.stack([np.zeros(n_points), xy[0, :, 0], xy[0, :, 1]], axis=1).astype(np.float32)
    visible[0] = True
    tracks_npz.write_tracks(job / "tracks" / "tracks.npz", tracks_npz.Tracks(queries, xy, visible, world))
    return xy, visible, world


def test_tracks_import_as_empties_that_project_onto_the_tracks(scene, tmp_path):
    job = make_job(tmp_path / "shot_T", with_points=False)
    xy, visible, world = write_tracks(job)
    assert bpy.ops.shotfield.import_job(directory=str(job), outputs={"tracks"}) == {"FINISHED"}

    empties = sorted((o for o in bpy.data.objects if o.get("shotfield_output") == "tracks"), key=lambda o: o.name)
    assert len(empties) == xy.shape[1] and all(o.type == "EMPTY" for o in empties)
    camera = scene.camera
    assert camera is not None and camera.get("shotfield_output") == "camera"
    checked = 0
    for f in range(N):
        scene.frame_set(1 + f)
        for k, empty in enumerate(empties):
            assert empty.hide_viewport == (not visible[f, k]) and empty.hide_render == (not visible[f, k])
            if not visible[f, k]:
                continue
            np.testing.assert_allclose(np.array(empty.matrix_world.translation), world[f, k], atol=1e-4)
            u, v, _ = world_to_camera_view(scene, camera, empty.matrix_world.translation)
            pixel = np.array([u * scene.render.resolution_x, (1.0 - v) * scene.render.resolution_y])
            assert np.linalg.norm(pixel - xy[f, k]) <= 1.0, (f, k, pixel, xy[f, k])
            checked += 1
    assert checked > N * 3


def test_tracks_import_as_clip_markers_muted_where_occluded(scene, tmp_path):
    job = make_job(tmp_path / "shot_M", with_points=False)
    xy, visible, _ = write_tracks(job)
    assert bpy.ops.shotfield.import_job(directory=str(job), outputs={"tracks"}) == {"FINISHED"}
    clip = scene.active_clip
    ours = sorted((t for t in clip.tracking.tracks if t.name.startswith("Shotfield ")), key=lambda t: t.name)
    assert len(ours) == xy.shape[1]
    for k, track in enumerate(ours):
        assert len(track.markers) == N
        for marker in track.markers:
            f = marker.frame - 1
            assert marker.mute == (not visible[f, k])
            np.testing.assert_allclose(marker.co, [xy[f, k, 0] / W, 1 - xy[f, k, 1] / H], atol=1e-5)
    # Importing again replaces our clip tracks instead of adding more.
    assert bpy.ops.shotfield.import_job(directory=str(job), outputs={"tracks"}) == {"FINISHED"}
    assert sum(t.name.startswith("Shotfield ") for t in scene.active_clip.tracking.tracks) == xy.shape[1]
