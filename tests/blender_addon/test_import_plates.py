"""Clean plates in Blender: the plates importer builds the compositor setup (footage and plate mixed by the
removal mask, the render over it), and a Cycles render on the CPU equals the plate outside the mask while
what the render adds sits on top."""
import bpy
import numpy as np
from PIL import Image

from exporters import job_manifest

N, W, H = 4, 48, 36
BOX = (slice(10, 26), slice(14, 34))  # rows, columns of the removed region


def make_plates_job(job):
    rng = np.random.default_rng(1)
    for folder in ("frames", "plates", "masks"):
        (job / folder).mkdir(parents=True)
    for i in range(N):
        frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        plate = frame.copy()
        plate[BOX] = (40 + 20 * i, 160, 90)   # the "clean" background differs from the footage in the box
        mask = np.zeros((H, W), np.uint8)
        mask[BOX] = 255
        Image.fromarray(frame).save(job / "frames" / f"{i:05d}.png")
        Image.fromarray(plate).save(job / "plates" / f"{i:05d}.png")
        Image.fromarray(mask).save(job / "masks" / f"{i:05d}.png")
    manifest = job_manifest.new_manifest()
    manifest.update(fps=24.0, frames={"start": 0, "end": None, "step": 1, "count": N}, working_size=[W, H],
                    source_size=[W, H])
    job_manifest.write_manifest(job, manifest)
    return job


def test_compositor_puts_the_plate_under_the_render(scene, addon, tmp_path):
    import importlib

    importers = importlib.import_module(f"{addon}.blender_addon.importers")
    job = make_plates_job(tmp_path / "shot")
    assert "plates" in importers.available_outputs(job)
    result = importers.import_job(scene, job, outputs=["plates"])
    assert "plates" in result.outputs and "footage" in result.outputs
    group = next(n for n in scene.node_tree.nodes if n.bl_idname == "CompositorNodeGroup")
    assert group.node_tree.name == "shot Clean Plate"
    assert group.inputs["Render"].links[0].from_node.bl_idname == "CompositorNodeRLayers"
    composite = next(n for n in scene.node_tree.nodes if n.bl_idname == "CompositorNodeComposite")
    assert composite.inputs["Image"].links[0].from_node == group
    assert bpy.data.movieclips["shot Clean Plate"].frame_duration == N

    # A camera and a small red emissive square in front of it, inside the removed region.
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    bpy.ops.mesh.primitive_plane_add(size=0.1, location=(0, 0, -3))
    material = bpy.data.materials.new("red")
    material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    emission, out = nodes.new("ShaderNodeEmission"), nodes.new("ShaderNodeOutputMaterial")
    emission.inputs["Color"].default_value = (1, 0, 0, 1)
    material.node_tree.links.new(emission.outputs[0], out.inputs["Surface"])
    bpy.context.object.data.materials.append(material)

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = W, H
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.filepath = str(tmp_path / "out.png")
    scene.frame_set(scene.frame_start + 2)
    bpy.ops.render.render(write_still=True)
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGB")).astype(int)
    plate = np.asarray(Image.open(job / "plates" / "00002.png")).astype(int)
    outside = np.ones((H, W), bool)
    outside[BOX] = False
    assert np.abs(out[outside] - plate[outside]).max() <= 2
    # Inside the mask: the plate (not the footage) where the render is empty, the render where it is not.
    centre = out[H // 2 - 1:H // 2 + 1, W // 2 - 1:W // 2 + 1].reshape(-1, 3)
    assert (centre[:, 0] > 200).all() and (centre[:, 1] < 60).all()
    box = out[BOX].reshape(-1, 3)
    plate_box = plate[BOX].reshape(-1, 3)
    assert np.mean(np.abs(box - plate_box).max(axis=1) <= 2) > 0.8

    # Re-importing rebuilds the same group instead of adding another.
    importers.import_job(scene, job, outputs=["plates"])
    assert sum(n.bl_idname == "CompositorNodeGroup" for n in scene.node_tree.nodes) == 1
    assert len([g for g in bpy.data.node_groups if g.name.startswith("shot Clean Plate")]) == 1
