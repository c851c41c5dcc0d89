"""The field stage's scene-flow point cache (`points/points.usdc`) as one animated point cloud object.

Route: Blender's own USD importer (`wm.usd_import`). It turns the `UsdGeom.Points` prim into a point cloud
object whose points are re-read every frame through a Mesh Sequence Cache modifier: the point count may
change from frame to frame, and the file's primvars arrive as attributes ("displayColor" linear colours,
"velocity" in units per second, "radius" from the widths, "dynamic" 1 on moving objects). Only the points
prim is imported (`prim_path_mask`), with no materials and without touching the scene's frame range.

Time: the cache's time code is 1 + job frame index (exporters/point_cache_usd.py); the cache file's
frame_offset shifts it to the shot's first scene frame. The points are in the solve's world frame, which is
the imported camera's, so they line up with the camera without any transform.

A Geometry Nodes modifier after the cache ("Shotfield Point Cache" group) shows them ready to render:
- Radius Scale: multiplies the file's radius (points as large as a pixel's footprint);
- Spheres: instance small ico spheres (realised, so Cycles and EEVEE render them as meshes) instead of
  rendering points (Cycles renders points as spheres natively; EEVEE needs the spheres);
- Dynamic Only: keep only the points on moving objects;
and a material shows "displayColor" as emission, so the points look like the footage under any light.
The cache reads the file: moving or deleting `points/points.usdc` afterwards loses the points' motion.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy

from .base import Built, ImportFailed, JobFolder, Shot, attribute_emission_material, socket_identifier, tag

NAME = "point_cache"
LABEL = "Scene-Flow Points"
ICON = "PARTICLES"
REQUIRES = ("camera",)
FILE = "points/points.usdc"
PRIM_PATH = "/ShotfieldPoints"
COLOUR_ATTRIBUTE = "displayColor"
NODE_GROUP = "Shotfield Point Cache"
MATERIAL = "Shotfield Point Cache"
MODIFIER = "Point Display"


@dataclass
class PointCacheData:
    path: Path
    last_frame_index: int | None


def available(job: JobFolder) -> bool:
    return job.file(FILE).is_file()


def read(job: JobFolder) -> PointCacheData:
    path = job.file(FILE)
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except OSError as exc:
        raise ImportFailed(f"{path}: cannot read the point cache ({exc.strerror or exc})") from exc
    if magic != b"PXR-USDC":
        raise ImportFailed(f"{path}: not a binary USD file (crate); run the 'field' stage again")
    return PointCacheData(path.resolve(), job.frame_count - 1 if job.frame_count else None)


def create(data: PointCacheData, shot: Shot) -> Built:
    before = set(bpy.data.objects)
    result = bpy.ops.wm.usd_import(filepath=str(data.path), prim_path_mask=PRIM_PATH, set_frame_range=False,
                                   import_materials=False, import_cameras=False, import_lights=False,
                                   relative_path=False, create_collection=False, import_points=True)
    new = [obj for obj in bpy.data.objects if obj not in before]
    points = [obj for obj in new if obj.type == "POINTCLOUD"]
    if result != {"FINISHED"} or len(points) != 1:
        for obj in new:
            bpy.data.objects.remove(obj)
        raise ImportFailed(f"{data.path}: Blender's USD importer found no points prim {PRIM_PATH}")
    obj = points[0]
    for other in new:
        if other is not obj:
            bpy.data.objects.remove(other)
    for collection in list(obj.users_collection):   # the orchestrator links it into the shot's collection
        collection.objects.unlink(obj)
    name = f"{shot.job.name} Scene-Flow Points"
    obj.name = name
    obj.data.name = name
    tag(obj, NAME, name)
    for modifier in obj.modifiers:
        if modifier.type == "MESH_SEQUENCE_CACHE" and modifier.cache_file is not None:
            modifier.cache_file.frame_offset = shot.frame_start - 1   # time code 1 = job frame 0
            modifier.cache_file.name = name
    display = obj.modifiers.new(MODIFIER, "NODES")
    display.node_group = _node_group()
    return Built(objects=[obj], last_frame_index=data.last_frame_index)


def set_display(obj, radius_scale: float | None = None, spheres: bool | None = None, dynamic_only: bool | None = None) -> None:
    """Change an imported cache's display (the Geometry Nodes modifier's inputs)."""
    modifier = obj.modifiers[MODIFIER]
    for name, value in (("Radius Scale", radius_scale), ("Spheres", spheres), ("Dynamic Only", dynamic_only)):
        if value is not None:
            modifier[socket_identifier(modifier.node_group, name)] = value
    obj.update_tag()


def _node_group():
    """Geometry -> Delete Geometry (static points, when Dynamic Only) -> Set Point Radius (file radius x
    scale) -> [Spheres: Instance on Points (ico sphere) -> Realize Instances] -> Set Material -> Geometry."""
    group = bpy.data.node_groups.get(NODE_GROUP)
    if group is not None and group.bl_idname == "GeometryNodeTree" and any(n.bl_idname == "GeometryNodeInstanceOnPoints" for n in group.nodes):
        return group
    group = bpy.data.node_groups.new(NODE_GROUP, "GeometryNodeTree")
    interface = group.interface
    interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    scale = interface.new_socket("Radius Scale", in_out="INPUT", socket_type="NodeSocketFloat")
    scale.default_value, scale.min_value = 1.0, 0.0
    interface.new_socket("Spheres", in_out="INPUT", socket_type="NodeSocketBool").default_value = False
    interface.new_socket("Dynamic Only", in_out="INPUT", socket_type="NodeSocketBool").default_value = False
    interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = group.nodes, group.links
    group_in, group_out = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")

    dynamic = nodes.new("GeometryNodeInputNamedAttribute")
    dynamic.data_type = "INT"
    dynamic.inputs["Name"].default_value = "dynamic"
    is_static = nodes.new("FunctionNodeCompare")
    is_static.data_type, is_static.operation = "INT", "EQUAL"
    is_static.inputs[3].default_value = 0      # B (int)
    links.new(dynamic.outputs["Attribute"], is_static.inputs[2])
    drop = nodes.new("FunctionNodeBooleanMath")
    drop.operation = "AND"
    links.new(is_static.outputs["Result"], drop.inputs[0])
    links.new(group_in.outputs["Dynamic Only"], drop.inputs[1])
    delete = nodes.new("GeometryNodeDeleteGeometry")
    delete.domain = "POINT"
    links.new(group_in.outputs["Geometry"], delete.inputs["Geometry"])
    links.new(drop.outputs["Boolean"], delete.inputs["Selection"])

    radius = nodes.new("GeometryNodeInputNamedAttribute")
    radius.data_type = "FLOAT"
    radius.inputs["Name"].default_value = "radius"
    scaled = nodes.new("ShaderNodeMath")
    scaled.operation = "MULTIPLY"
    links.new(radius.outputs["Attribute"], scaled.inputs[0])
    links.new(group_in.outputs["Radius Scale"], scaled.inputs[1])
    set_radius = nodes.new("GeometryNodeSetPointRadius")
    links.new(delete.outputs["Geometry"], set_radius.inputs["Points"])
    links.new(scaled.outputs["Value"], set_radius.inputs["Radius"])

    sphere = nodes.new("GeometryNodeMeshIcoSphere")
    sphere.inputs["Radius"].default_value = 1.0
    sphere.inputs["Subdivisions"].default_value = 2   # 42 vertices
    instance = nodes.new("GeometryNodeInstanceOnPoints")
    links.new(set_radius.outputs["Points"], instance.inputs["Points"])
    links.new(sphere.outputs["Mesh"], instance.inputs["Instance"])
    links.new(scaled.outputs["Value"], instance.inputs["Scale"])
    realize = nodes.new("GeometryNodeRealizeInstances")
    links.new(instance.outputs["Instances"], realize.inputs["Geometry"])

    switch = nodes.new("GeometryNodeSwitch")
    switch.input_type = "GEOMETRY"
    links.new(group_in.outputs["Spheres"], switch.inputs["Switch"])
    links.new(set_radius.outputs["Points"], switch.inputs["False"])
    links.new(realize.outputs["Geometry"], switch.inputs["True"])
    set_material = nodes.new("GeometryNodeSetMaterial")
    set_material.inputs["Material"].default_value = _material()
    links.new(switch.outputs["Output"], set_material.inputs["Geometry"])
    links.new(set_material.outputs["Geometry"], group_out.inputs["Geometry"])
    for x, node in enumerate((group_in, delete, set_radius, instance, realize, switch, set_material, group_out)):
        node.location = (200 * x, 0)
    for node, (x, y) in ((dynamic, (0, -250)), (is_static, (150, -250)), (drop, (300, -250)), (radius, (200, -450)),
                         (scaled, (400, -450)), (sphere, (400, -250))):
        node.location = (x, y)
    return group


def _material():
    """Emission from "displayColor" (linear, as USD stores it): the points show the footage's colours."""
    return attribute_emission_material(MATERIAL, COLOUR_ATTRIBUTE)
