"""The depth point clouds importer: one object holding every frame's points, of which the Geometry Nodes
modifier shows the current scene frame's. Checked on the evaluated geometry (the point cloud Blender
draws and renders) against the PLYs exporters.depth_maps wrote; bad folders are refused, nothing built."""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.importers import available_outputs, import_job  # noqa: E402
from blender_addon.importers import depth_points  # noqa: E402
from exporters import cameras_json, depth_maps, ply  # noqa: E402

from .test_importers import H, W, make_job  # noqa: E402

FRAMES = 3


def write_depth_points(job, frames=FRAMES, step=2):
    """Per-frame PLYs unprojected from random depth through the job's cameras, each frame with its own
    unknown pixels (so the frames have different point counts). Returns [(positions, colours)] as read back."""
    cameras = cameras_json.read_cameras(job / "camera" / "cameras.json")
    rng = np.random.default_rng(7)
    clouds = []
    for i in range(frames):
        depth = rng.uniform(3.0, 9.0, (H, W)).astype(np.float32)
        depth[rng.random((H, W)) < 0.1 * (i + 1)] = 0.0  # unknown
        rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        path = job / "depth" / "points" / f"{i:05d}.ply"
        depth_maps.write_frame_points(path, depth, cameras.K[i], cameras.world_from_camera[i], rgb, step=step)
        clouds.append(ply.points_and_colours(path))
    return clouds


def evaluated_points(obj) -> tuple[np.ndarray, np.ndarray, int]:
    """(positions (N, 3), colours (N, 4) sRGB, vertices left in the evaluated mesh) of `obj` as the depsgraph
    evaluates it now. Mesh to Points turns the mesh into a point cloud, which the depsgraph hands out as an
    instance of the object's geometry set."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh_vertices = len(obj.evaluated_get(depsgraph).data.vertices)
    found = []
    for instance in depsgraph.object_instances:
        data = instance.object.data
        owner = instance.parent if instance.is_instance else instance.object
        if isinstance(data, bpy.types.PointCloud) and owner is not None and owner.original == obj:
            n = len(data.points)
            positions, colours = np.empty(n * 3, np.float32), np.empty(n * 4, np.float32)
            data.attributes["position"].data.foreach_get("vector", positions)
            data.attributes["Col"].data.foreach_get("color_srgb", colours)
            found.append((positions.reshape(n, 3), colours.reshape(n, 4)))
    assert len(found) <= 1, f"{len(found)} point clouds"
    positions, colours = found[0] if found else (np.zeros((0, 3), np.float32), np.zeros((0, 4), np.float32))
    return positions, colours, mesh_vertices


def depth_points_object(collection):
    objects = [o for o in collection.objects if o.get("shotfield_output") == "depth_points"]
    assert len(objects) == 1, [o.name for o in collection.objects]
    return objects[0]


def test_each_scene_frame_shows_its_frames_points(scene, tmp_path):
    job = make_job(tmp_path / "shot_dp", n=FRAMES)
    clouds = write_depth_points(job)
    assert len({len(p) for p, _ in clouds}) == FRAMES  # the counts tell the frames apart
    result = import_job(scene, job, outputs={"depth_points"}, frame_start=10)
    assert result.outputs == ["camera", "depth_points"]  # it comes with the camera it is aligned with
    obj = depth_points_object(result.collection)
    assert len(obj.data.vertices) == sum(len(p) for p, _ in clouds)  # every frame in one mesh
    assert (scene.frame_start, scene.frame_end) == (10, 10 + FRAMES - 1)

    for i, (positions, colours) in enumerate(clouds):
        scene.frame_set(10 + i)
        shown, shown_colours, left_in_mesh = evaluated_points(obj)
        assert left_in_mesh == 0
        assert shown.shape == positions.shape
        assert np.array_equal(shown, positions)  # float32 in, float32 out, in the PLY's order
        assert np.allclose(shown_colours[:, :3], colours / 255.0, atol=0.5 / 255)
    for outside in (9, 10 + FRAMES):
        scene.frame_set(outside)
        assert len(evaluated_points(obj)[0]) == 0

    # Re-import at another start frame: replaced (one object), and the offset follows.
    result = import_job(scene, job, outputs={"depth_points"}, frame_start=1)
    obj = depth_points_object(result.collection)
    scene.frame_set(2)
    assert np.array_equal(evaluated_points(obj)[0], clouds[1][0])
    modifier = obj.modifiers["Points"]
    assert {n.bl_idname for n in modifier.node_group.nodes} >= {
        "GeometryNodeInputSceneTime", "FunctionNodeCompare", "GeometryNodeDeleteGeometry", "GeometryNodeGroup"}


def test_import_all_leaves_them_out_and_their_own_button_brings_them(scene, tmp_path):
    job = make_job(tmp_path / "shot_all", n=FRAMES)
    write_depth_points(job)
    assert "depth_points" in available_outputs(job)  # the panel draws an import button per available output
    assert bpy.ops.shotfield.import_job(directory=str(job)) == {"FINISHED"}
    assert "depth_points" not in {o.get("shotfield_output") for o in bpy.data.collections["shot_all"].objects}
    assert bpy.ops.shotfield.import_job(directory=str(job), outputs={"depth_points"}) == {"FINISHED"}
    depth_points_object(bpy.data.collections["shot_all"])


@pytest.mark.parametrize("damage", ["missing", "truncated", "not a ply"])
def test_a_bad_frame_is_refused_with_its_file_named(scene, tmp_path, damage):
    job = make_job(tmp_path / "shot_bad", n=FRAMES)
    write_depth_points(job)
    bad = job / "depth" / "points" / "00001.ply"
    if damage == "missing":
        bad.unlink()
    elif damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:-40])
    else:
        bad.write_text("hello\n")
    before = {k: len(getattr(bpy.data, k)) for k in ("objects", "meshes", "node_groups", "materials")}
    with pytest.raises(depth_points.ImportFailed, match=r"00001\.ply.*run the depth stage again") as error:
        import_job(scene, job, outputs={"depth_points"})
    assert str(job / "depth" / "points") in str(error.value)
    assert {k: len(getattr(bpy.data, k)) for k in before} == before


def test_a_missing_last_frame_is_refused(scene, tmp_path):
    """job.json says how many frames there are: a folder that stops early is partial, not shorter."""
    job = make_job(tmp_path / "shot_short", n=FRAMES)
    write_depth_points(job, frames=FRAMES - 1)
    with pytest.raises(depth_points.ImportFailed, match=r"1 of 3 .*00002\.ply"):
        import_job(scene, job, outputs={"depth_points"})


def test_too_many_points_thin_every_frame_and_warn(scene, tmp_path, monkeypatch):
    job = make_job(tmp_path / "shot_cap", n=FRAMES)
    clouds = write_depth_points(job)
    total = sum(len(p) for p, _ in clouds)
    monkeypatch.setattr(depth_points, "MAX_POINTS", total // 4)
    result = import_job(scene, job, outputs={"depth_points"}, frame_start=1)
    assert any("thinned" in w for w in result.warnings)
    obj = depth_points_object(result.collection)
    assert len(obj.data.vertices) <= total // 4
    for i, (positions, _) in enumerate(clouds):
        scene.frame_set(1 + i)
        shown = evaluated_points(obj)[0]
        assert abs(len(shown) - len(positions) / 4) < 2  # the same fraction of every frame
        rows = {row.tobytes() for row in positions}
        assert all(row.tobytes() in rows for row in shown)  # a subset of that frame's own points
