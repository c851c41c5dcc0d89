"""`layers/layers.glb`: every layer mesh of layers.json as one glTF 2.0 binary, through trimesh (numpy, pillow).

Node tree: one node per reference frame, named "reference 00011", whose transform is the reference camera's
pose in glTF's Y-up world; under it one mesh node per layer ("layer 00"...), back to front, whose vertices are
in the reference camera's frame. The meshes are parented under the camera node rather than baked into world
coordinates so that a tool can move the whole stack with the camera (or re-solve the camera) by one transform,
as the Blender importer does.

Axes, written down where they are applied:
- layer vertices are OpenCV camera coordinates (x right, y down, z forward); the camera node carries
  world_from_camera (OpenCV), so the same vertices are used unchanged;
- Shotfield's world is Z-up, glTF's Y-up: gltf = (x, z, -y), the rotation applied at the root, which Blender's
  glTF importer undoes exactly.
Materials: the layer PNG as baseColorTexture, alphaMode BLEND, double-sided, unlit (KHR_materials_unlit, so
viewers show the texture's colours as they are instead of lighting them).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from trimesh.exchange import gltf

from .atomic import atomic_path
from .layers_json import LayersFile, read_layer_mesh

#: Shotfield world (Z up) -> glTF world (Y up).
GLTF_FROM_WORLD = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def layers_scene(doc: LayersFile) -> trimesh.Scene:
    scene = trimesh.Scene(base_frame="world")
    for ref in doc.references:
        ref_node = f"reference {ref.frame:05d}"
        scene.graph.update(frame_from="world", frame_to=ref_node, matrix=GLTF_FROM_WORLD @ ref.world_from_camera)
        for n, entry in enumerate(ref.layers):
            mesh = read_layer_mesh(doc.path(entry.mesh))
            if len(mesh["faces"]) == 0:
                continue  # a layer with nothing in it
            image = Image.open(doc.path(entry.image)).convert("RGBA")
            material = trimesh.visual.material.PBRMaterial(
                name=f"{ref_node} layer {n:02d}", baseColorTexture=image, alphaMode="BLEND", doubleSided=True,
                metallicFactor=0.0, roughnessFactor=1.0)
            # trimesh's uv origin is the bottom-left corner (it flips v when writing glTF): ours is top-left.
            uv = np.column_stack([mesh["uv"][:, 0], 1.0 - mesh["uv"][:, 1]])
            geometry = trimesh.Trimesh(vertices=mesh["vertices"], faces=mesh["faces"], process=False,
                                       visual=trimesh.visual.TextureVisuals(uv=uv, material=material))
            scene.add_geometry(geometry, node_name=f"{ref_node} layer {n:02d}", geom_name=f"{ref_node} layer {n:02d}",
                               parent_node_name=ref_node)
    return scene


def write_layers_glb(path: str | os.PathLike, doc: LayersFile) -> None:
    data = gltf.export_glb(layers_scene(doc), tree_postprocessor=_unlit)
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data)


def _unlit(tree: dict) -> None:
    """Mark every material KHR_materials_unlit: the layers carry the footage's colours, not a surface to light."""
    for material in tree.get("materials", []):
        material.setdefault("extensions", {})["KHR_materials_unlit"] = {}
    used = tree.setdefault("extensionsUsed", [])
    if "KHR_materials_unlit" not in used:
        used.append("KHR_materials_unlit")
