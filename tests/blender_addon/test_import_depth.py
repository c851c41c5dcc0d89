"""The depth importer: the compositor round trip (an EXR written by exporters is read back by Blender with
the same depth values) and the image sequence + node group it builds."""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.importers import depth as depth_importer  # noqa: E402
from blender_addon.importers import import_job  # noqa: E402
from exporters import depth_maps  # noqa: E402

from .test_importers import N, H, W, make_job  # noqa: E402


def _depths(n=N):
    rng = np.random.default_rng(3)
    return [rng.uniform(0.5, 60.0, (H, W)).astype(np.float32) for _ in range(n)]


def test_compositor_round_trip_reads_back_the_same_depth(tmp_path):
    d = _depths(1)[0]
    path = tmp_path / "00000.exr"
    depth_maps.write_compositor_depth(path, d, grey=True)
    image = bpy.data.images.load(str(path))
    image.colorspace_settings.name = "Non-Color"
    try:
        back = depth_importer.image_depth(image)
        assert back.shape == d.shape
        assert np.array_equal(back, d)  # float32 in, float32 out: exact
    finally:
        bpy.data.images.remove(image)


def test_import_builds_sequence_and_node_group(tmp_path):
    job = make_job(tmp_path / "shot_depth")
    for i, d in enumerate(_depths()):
        depth_maps.write_compositor_depth(job / "depth" / "compositor" / f"{i:05d}.exr", d, grey=True)
    (job / "depth" / "depth.json").write_text('{"failure_check": {"mode": "lazy"}}')
    scene = bpy.context.scene
    result = import_job(scene, job, outputs={"depth"}, frame_start=1)
    assert "depth" in result.outputs and "camera" in result.outputs
    assert any("lazy" in w for w in result.warnings)
    group = bpy.data.node_groups["shot_depth Depth"]
    image_node = next(n for n in group.nodes if n.bl_idname == "CompositorNodeImage")
    assert image_node.image.source == "SEQUENCE" and image_node.frame_duration == N
    assert {s.name for s in group.interface.items_tree if s.in_out == "OUTPUT"} == {"Depth", "Mist", "Defocused"}
    near, far = group["shotfield_depth_range"]
    assert 0.5 <= near < far <= 60.0
    # In the scene's compositor, fed by the render, the final image left as it was.
    users = [n for n in scene.node_tree.nodes if n.bl_idname == "CompositorNodeGroup" and n.node_tree == group]
    assert len(users) == 1 and users[0].inputs["Image"].links[0].from_node.bl_idname == "CompositorNodeRLayers"
    import_job(scene, job, outputs={"depth"}, frame_start=1)  # re-import: still one node
    assert sum(n.bl_idname == "CompositorNodeGroup" and n.node_tree.name.startswith("shot_depth Depth")
               for n in scene.node_tree.nodes) == 1


def test_missing_frames_are_refused(tmp_path):
    job = make_job(tmp_path / "short")
    depth_maps.write_compositor_depth(job / "depth" / "compositor" / "00000.exr", _depths(1)[0], grey=True)
    with pytest.raises(depth_importer.ImportFailed):
        import_job(bpy.context.scene, job, outputs={"depth"})
