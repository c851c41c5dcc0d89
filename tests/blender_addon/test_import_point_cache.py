"""The field stage's USD point cache imports as one animated point cloud (Blender's USD importer + a cache
modifier): the right count, positions at three frames (evaluated depsgraph), velocities and colours, and the
Geometry Nodes display (dynamic only, spheres)."""
import bpy
import numpy as np

from exporters.point_cache_usd import PointFrame, write_point_cache_usd

from .test_importers import N, make_job

FPS = 25.0   # make_job's job.json fps


def cache_frames(n=N, seed=0):
    """A different number of points each frame, moving by a known velocity; even points dynamic."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        count = 200 + 17 * i
        positions = rng.uniform(-2, 2, (count, 3)).astype(np.float32)
        velocities = rng.normal(0, 0.05, (count, 3)).astype(np.float32)
        colours = rng.integers(0, 256, (count, 3), dtype=np.uint8)
        frames.append(PointFrame(i, positions, colours, velocities, np.arange(count) % 2 == 0))
    return frames


def evaluated(obj):
    ev = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    return ev


def point_attribute(geometry, name, width=3):
    data = geometry.attributes[name].data
    out = np.zeros(len(data) * width, np.float32)
    data.foreach_get("vector" if width == 3 else ("color" if width == 4 else "value"), out)
    return out.reshape(len(data), width) if width > 1 else out


def _importers(addon):
    import importlib
    return importlib.import_module(f"{addon}.blender_addon.importers")


def test_usd_point_cache_arrives_as_animated_point_cloud(scene, addon, tmp_path):
    importers = _importers(addon)
    job = make_job(tmp_path / "plate_B", with_points=False)
    frames = cache_frames()
    write_point_cache_usd(job / "points" / "points.usdc", frames, FPS, width=0.02)
    assert "point_cache" in importers.available_outputs(job)

    result = importers.import_job(scene, job, outputs=["camera", "point_cache"], frame_start=1)
    obj = next(o for o in result.collection.objects if o.get("shotfield_output") == "point_cache")
    assert obj.type == "POINTCLOUD" and obj.name == "plate_B Scene-Flow Points"
    assert [c.name for c in obj.users_collection] == ["plate_B"]
    assert (scene.frame_start, scene.frame_end) == (1, N)

    for index in (0, 2, N - 1):                       # scene frame 1 + job frame index
        scene.frame_set(1 + index)
        cloud = evaluated(obj).data
        f = frames[index]
        assert len(cloud.points) == len(f.positions)
        np.testing.assert_allclose(point_attribute(cloud, "position"), f.positions, atol=1e-6)
        # USD velocities are per second; the job's scene flow is per frame
        np.testing.assert_allclose(point_attribute(cloud, "velocity") / FPS, f.velocities, atol=1e-6)
        radius = point_attribute(cloud, "radius", 1)
        np.testing.assert_allclose(radius, 0.01, atol=1e-7)
        colour = point_attribute(cloud, "displayColor", 4)[:, :3]
        srgb = np.where(colour <= 0.0031308, colour * 12.92, 1.055 * np.power(colour, 1 / 2.4) - 0.055)
        assert np.abs(srgb * 255 - f.colours).max() < 1.0

    # the display: dynamic points only, then spheres (a realised mesh with the colours on it)
    module = importers.BY_NAME["point_cache"]
    scene.frame_set(3)
    module.set_display(obj, dynamic_only=True)
    assert len(evaluated(obj).data.points) == int(frames[2].dynamic.sum())
    module.set_display(obj, dynamic_only=False, spheres=True)
    geometry = evaluated(obj).evaluated_geometry()
    assert geometry.mesh is not None and geometry.pointcloud is None
    assert len(geometry.mesh.vertices) == 42 * len(frames[2].positions) and "displayColor" in geometry.mesh.attributes


def test_job_frame_zero_at_a_later_scene_frame(scene, addon, tmp_path):
    """The shot imported to start at scene frame 101: job frame k shows at scene frame 101 + k."""
    importers = _importers(addon)
    job = make_job(tmp_path / "plate_C", with_points=False)
    frames = cache_frames(seed=1)
    write_point_cache_usd(job / "points" / "points.usdc", frames, FPS, width=0.02)
    result = importers.import_job(scene, job, outputs=["point_cache", "camera"], frame_start=101)
    obj = next(o for o in result.collection.objects if o.get("shotfield_output") == "point_cache")
    scene.frame_set(101 + 3)
    np.testing.assert_allclose(point_attribute(evaluated(obj).data, "position"), frames[3].positions, atol=1e-6)
