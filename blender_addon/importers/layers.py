"""The layered meshes (`layers/layers.json`) as textured, alpha-blended meshes under an empty at each reference
camera's pose, for parallax-correct 2.5D set extension.

Why meshes built here rather than Blender's glTF importer on `layers/layers.glb`: the glTF importer makes a
Principled BSDF (or, for KHR_materials_unlit, a light-path trick) whose pixels depend on the view transform
and the lighting; here each layer gets exactly what reproduces the footage: its PNG as an emission of strength
1 (sRGB texture, so with the Standard view transform a render shows the texture's values), mixed with a
Transparent BSDF by the texture's straight alpha (image alpha mode "Channel Packed", so Blender leaves the
colour untouched). Cycles composites such layers in linear light, as the backend's own renderer does, so the
reference camera sees the reference frame. The .glb remains the file for other packages.

Frames: layer vertices are stored in the reference camera's OpenCV axes; the parent empty carries the Blender
camera pose (`world_from_camera @ diag(1, -1, -1, 1)`, DESIGN.md), so vertices become (x, -y, -z) here.
Each layer object sits at its typical depth in front of the empty (the vertices shifted back by as much) so
that EEVEE's per-object sorting of blended surfaces orders the layers back to front.
Cycles: every layer a ray crosses is a transparent bounce; `scene.cycles.transparent_max_bounces` must be at
least the number of layers (the default is 8), which create() reports as a warning when it is not.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from ..shared_formats import conventions, layers_json
from .base import Built, ImportFailed, JobFolder, Shot, tag

NAME = "layers"
LABEL = "Layered Meshes"
ICON = "RENDERLAYERS"
REQUIRES = ("camera",)
FILE = "layers/layers.json"
OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0])


@dataclass
class LayerMeshData:
    name: str
    image: Path
    vertices: np.ndarray        # (N, 3) float32, Blender camera axes, relative to the object's origin
    offset: float               # the object's distance in front of the camera (along -Z)
    faces: np.ndarray           # (M, 3) int32
    uv: np.ndarray              # (N, 2) float32, Blender's bottom-left origin


@dataclass
class ReferenceData:
    frame: int
    matrix_world: np.ndarray    # (4, 4) Blender camera pose of the reference frame
    layers: list[LayerMeshData] = field(default_factory=list)


@dataclass
class LayersData:
    kind: str
    references: list[ReferenceData]


def available(job: JobFolder) -> bool:
    return job.file(FILE).is_file()


def read(job: JobFolder) -> LayersData:
    try:
        doc = layers_json.read_layers_json(job.file(FILE))
    except layers_json.LayersFileError as exc:
        raise ImportFailed(str(exc)) from exc
    references = []
    for ref in doc.references:
        pose = conventions.blender_world_from_opencv_world_from_camera(ref.world_from_camera[None])[0]
        data = ReferenceData(ref.frame, pose)
        for n, entry in enumerate(ref.layers):
            image = doc.path(entry.image)
            if not image.is_file():
                raise ImportFailed(f"{image}: layer image missing; run the 'layers' stage again")
            try:
                mesh = layers_json.read_layer_mesh(doc.path(entry.mesh))
            except (OSError, KeyError, ValueError) as exc:
                raise ImportFailed(f"{doc.path(entry.mesh)}: unreadable layer mesh ({exc})") from exc
            if len(mesh["faces"]) == 0:
                continue
            vertices = mesh["vertices"].astype(np.float64) @ OPENCV_TO_BLENDER_CAMERA.T
            offset = float(entry.distance)
            vertices[:, 2] += offset
            uv = np.column_stack([mesh["uv"][:, 0], 1.0 - mesh["uv"][:, 1]]).astype(np.float32)
            data.layers.append(LayerMeshData(f"{n:02d}", image, vertices.astype(np.float32), offset,
                                             mesh["faces"].astype(np.int32), uv))
        references.append(data)
    return LayersData(doc.kind, references)


def create(data: LayersData, shot: Shot) -> Built:
    objects, warnings = [], []
    for ref in data.references:
        name = f"{shot.job.name} Layers {ref.frame:05d}"
        empty = tag(bpy.data.objects.new(name, None), NAME, name)
        empty.empty_display_type = "PLAIN_AXES"
        empty.empty_display_size = 0.2
        empty.matrix_world = Matrix(ref.matrix_world.tolist())
        empty["shotfield_reference_frame"] = ref.frame
        objects.append(empty)
        for layer in ref.layers:
            obj = tag(bpy.data.objects.new(f"{name} {layer.name}", _mesh(f"{name} {layer.name}", layer)), NAME,
                      f"{name} {layer.name}")
            obj.data.materials.append(_material(f"{name} {layer.name}", layer.image))
            obj.parent = empty
            obj.location = (0.0, 0.0, -layer.offset)
            objects.append(obj)
    most = max((len(r.layers) for r in data.references), default=0)
    bounces = getattr(getattr(bpy.context.scene, "cycles", None), "transparent_max_bounces", None)
    if bounces is not None and most > bounces:
        warnings.append(f"Cycles: set Light Paths > Transparent bounces to at least {most} to see every layer")
    return Built(objects=objects, warnings=warnings)


def _mesh(name: str, layer: LayerMeshData):
    mesh = bpy.data.meshes.new(name)
    faces = layer.faces
    mesh.vertices.add(len(layer.vertices))
    mesh.vertices.foreach_set("co", layer.vertices.ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    uv = mesh.uv_layers.new(name="UVMap")
    uv.data.foreach_set("uv", layer.uv[faces.ravel()].ravel())
    mesh.update()
    return mesh


def _material(name: str, image_path: Path):
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    image = bpy.data.images.load(str(image_path), check_existing=False)
    image.colorspace_settings.name = "sRGB"
    image.alpha_mode = "CHANNEL_PACKED"       # straight alpha, colour left as stored
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.interpolation = "Linear"
    texture.extension = "EXTEND"
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0
    transparent = nodes.new("ShaderNodeBsdfTransparent")
    mix = nodes.new("ShaderNodeMixShader")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(texture.outputs["Alpha"], mix.inputs["Fac"])
    links.new(transparent.outputs["BSDF"], mix.inputs[1])
    links.new(emission.outputs["Emission"], mix.inputs[2])
    links.new(mix.outputs["Shader"], output.inputs["Surface"])
    # EEVEE: sorted alpha blending (4.2+ names it the "Blended" render method; older ones blend_method).
    if hasattr(material, "surface_render_method"):
        material.surface_render_method = "BLENDED"
    if hasattr(material, "blend_method"):
        material.blend_method = "BLEND"
    material.use_backface_culling = False
    return material
