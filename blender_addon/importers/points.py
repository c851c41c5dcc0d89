"""The solve's coloured scene points (`camera/points.ply`) as a point cloud object.

Why a mesh with a Geometry Nodes "Mesh to Points" modifier, rather than importing through USD:
`bpy.data.pointclouds.new()` cannot be given points from Python (DESIGN.md), so the two routes are (a) write
a temporary `UsdGeom.Points` file and run Blender's USD importer, or (b) build a vertex-only mesh with
`foreach_set` and convert it in the modifier stack. (b) is chosen: it needs no temporary file and no
operator (importers must work from a timer and in background mode, where operators need a context
override), it is one bulk copy, and the artist keeps real vertices to snap the 3D cursor and new objects
to, while the viewport and Cycles see a real point cloud (spheres of an adjustable radius). USD stays the
route for the time-sampled scene-flow caches (`points/points.usdc`), where a cache modifier animates them.

Colours: the PLY's 8-bit sRGB colours become a byte colour attribute "Col" on the points (set through
`color_srgb`, so Blender does the sRGB-to-linear step), which the material shows as emission, so the points
look like the footage whatever the lighting.
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..shared_formats import ply
from .base import Built, ImportFailed, JobFolder, Shot, attribute_emission_material, socket_identifier, tag

NAME = "points"
LABEL = "Point Cloud"
ICON = "POINTCLOUD_DATA"
REQUIRES = ()
FILE = "camera/points.ply"
COLOUR_ATTRIBUTE = "Col"
NODE_GROUP = "Shotfield Mesh to Points"
MATERIAL = "Shotfield Points"
RADIUS_SOCKET = "Radius"


@dataclass
class PointsData:
    positions: np.ndarray           # (N, 3) float32, world units (Blender world: Z up)
    colours: np.ndarray | None      # (N, 3) uint8 sRGB
    radius: float                   # display radius, world units
    dropped: int                    # points without finite coordinates


def available(job: JobFolder) -> bool:
    return job.file(FILE).is_file()


def read(job: JobFolder) -> PointsData:
    try:
        positions, colours = ply.points_and_colours(job.file(FILE))
    except ply.PlyError as exc:
        raise ImportFailed(str(exc)) from exc
    finite = np.all(np.isfinite(positions), axis=1)
    positions = positions[finite]
    colours = colours[finite] if colours is not None else None
    if len(positions) == 0:
        raise ImportFailed(f"{job.file(FILE)}: no points with finite coordinates")
    return PointsData(positions, colours, display_radius(positions), int((~finite).sum()))


def display_radius(positions: np.ndarray) -> float:
    """A point radius that reads as a dot at the scene's scale: 1/500 of the robust extent (the span of
    the middle 90% of the points along their longest axis)."""
    lo, hi = np.percentile(positions, [5, 95], axis=0)
    extent = float(np.max(hi - lo))
    return max(extent / 500.0, 1e-4)


def create(data: PointsData, shot: Shot) -> Built:
    name = f"{shot.job.name} Points"
    obj = tag(bpy.data.objects.new(name, point_mesh(name, data.positions, data.colours)), NAME, name)
    add_points_modifier(obj, mesh_to_points_group(), data.radius)
    warnings = [f"{data.dropped} points without finite coordinates were left out"] if data.dropped else []
    return Built(objects=[obj], warnings=warnings)


def point_mesh(name: str, positions: np.ndarray, colours: np.ndarray | None):
    """A vertex-only mesh: positions (N, 3) float, world units; colours (N, 3) uint8 sRGB or None, as the byte
    colour attribute "Col" (through `color_srgb`: Blender does the sRGB-to-linear step). One bulk
    `foreach_set` per array."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(positions))
    mesh.vertices.foreach_set("co", np.ascontiguousarray(positions, np.float32).ravel())
    if colours is not None:
        attribute = mesh.color_attributes.new(COLOUR_ATTRIBUTE, "BYTE_COLOR", "POINT")
        rgba = np.ones((len(colours), 4), np.float32)
        rgba[:, :3] = colours / 255.0
        attribute.data.foreach_set("color_srgb", rgba.ravel())
        mesh.color_attributes.active_color = attribute
    mesh.update()
    return mesh


def add_points_modifier(obj, group, radius: float):
    """The Geometry Nodes modifier "Points" running `group` (which has a "Radius" input) on `obj`."""
    modifier = obj.modifiers.new("Points", "NODES")
    modifier.node_group = group
    modifier[socket_identifier(group, RADIUS_SOCKET)] = radius
    return modifier


def set_radius(obj, radius: float) -> None:
    """Change an imported point cloud's display radius (e.g. for a preview render); also the depth points'."""
    modifier = obj.modifiers["Points"]
    modifier[socket_identifier(modifier.node_group, RADIUS_SOCKET)] = radius
    obj.update_tag()


def mesh_to_points_group():
    """Geometry -> Mesh to Points (radius from the modifier) -> Set Material -> Geometry. One group shared by
    every imported point cloud, made again if someone changed it into something else."""
    group = bpy.data.node_groups.get(NODE_GROUP)
    if group is not None and group.bl_idname == "GeometryNodeTree" and any(n.bl_idname == "GeometryNodeMeshToPoints" for n in group.nodes):
        return group
    group = bpy.data.node_groups.new(NODE_GROUP, "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    radius = group.interface.new_socket(RADIUS_SOCKET, in_out="INPUT", socket_type="NodeSocketFloat")
    radius.default_value, radius.min_value = 0.01, 0.0
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = group.nodes, group.links
    group_in, group_out = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    to_points = nodes.new("GeometryNodeMeshToPoints")
    to_points.mode = "VERTICES"
    set_material = nodes.new("GeometryNodeSetMaterial")
    set_material.inputs["Material"].default_value = material()
    links.new(group_in.outputs["Geometry"], to_points.inputs["Mesh"])
    links.new(group_in.outputs[RADIUS_SOCKET], to_points.inputs["Radius"])
    links.new(to_points.outputs["Points"], set_material.inputs["Geometry"])
    links.new(set_material.outputs["Geometry"], group_out.inputs["Geometry"])
    for x, node in enumerate((group_in, to_points, set_material, group_out)):
        node.location = (200 * x, 0)
    return group


def material():
    """Emission from the "Col" attribute: the points show the footage's colours under any light."""
    return attribute_emission_material(MATERIAL, COLOUR_ATTRIBUTE)
