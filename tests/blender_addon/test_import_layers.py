"""The layered meshes in Blender: the .glb opens in Blender's own glTF importer, and the add-on's importer
builds meshes that a Cycles render from the reference camera shows as the reference frame itself."""
import json

import bpy
import numpy as np
import pytest
from PIL import Image

from backend.metrics.image import psnr
from blender_addon.importers import import_job
from tests.backend.layers.jobs import layers_job


@pytest.fixture(scope="module")
def job(test_shot, ground_truth_pipeline):
    return layers_job(test_shot, ground_truth_pipeline)


def test_glb_opens_in_blenders_gltf_importer(scene, job):
    reference = json.loads((job / "layers" / "layers.json").read_text())["references"][0]
    layers, margin = reference["layers"], reference["margin"]
    before = set(bpy.data.objects)
    assert bpy.ops.import_scene.gltf(filepath=str(job / "layers" / "layers.glb")) == {"FINISHED"}
    meshes = [o for o in set(bpy.data.objects) - before if o.type == "MESH"]
    assert len(meshes) == sum(1 for layer in layers if layer["triangles"] > 0)
    assert sum(len(o.data.polygons) for o in meshes) == sum(layer["triangles"] for layer in layers)
    for obj in meshes:  # each layer keeps its RGBA texture: the frame and the canvas margin around it
        images = [n.image for n in obj.active_material.node_tree.nodes if n.type == "TEX_IMAGE"]
        assert margin > 0 and images and images[0].size[:] == (160 + 2 * margin, 120 + 2 * margin)


def _render_reference(scene, frame: int, out) -> np.ndarray:
    scene.frame_set(scene.frame_start + frame)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    scene.cycles.transparent_max_bounces = 32
    scene.cycles.min_transparent_bounces = 32  # no Russian roulette through the layers: it would add noise
    scene.cycles.filter_width = 0.01           # each sample at its pixel centre: no reconstruction blur
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_depth = "8"
    scene.render.filepath = str(out)
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(out).convert("RGB"))


def test_imported_layers_render_the_reference_frame(scene, job, tmp_path):
    doc = json.loads((job / "layers" / "layers.json").read_text())
    frame = doc["references"][0]["frame"]
    result = import_job(scene, job, outputs={"layers"})
    empties = [o for o in result.objects if o.type == "EMPTY"]
    meshes = [o for o in result.objects if o.type == "MESH"]
    assert len(empties) == 1 and all(m.parent == empties[0] for m in meshes)
    assert result.camera is not None and scene.camera == result.camera

    rendered = _render_reference(scene, frame, tmp_path / "reference.png")
    reference = np.asarray(Image.open(job / "frames" / f"{frame:05d}.png").convert("RGB"))
    assert rendered.shape == reference.shape
    quality = psnr(rendered / 255.0, reference / 255.0)
    assert quality >= 35.0, quality
    # Without the layers' opacity the render is plainly something else (the check can fail).
    for obj in meshes[1:]:
        obj.hide_render = True
    assert psnr(_render_reference(scene, frame, tmp_path / "backdrop.png") / 255.0, reference / 255.0) < quality - 5
