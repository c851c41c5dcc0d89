"""The depth stage's per-frame point clouds (`depth/points/00000.ply ...`) as one object whose points change
with the frame.

Each PLY is one job frame's depth unprojected through its solved camera (exporters/depth_maps.py), in the
world of `camera/cameras.json`, which is the Blender world the camera importer builds: the points sit
where the imported camera sees them, with no transform. Job frame i shows at scene frame `frame_start + i`,
like the camera's keyframes.

How: every frame's points go into ONE vertex-only mesh (points.point_mesh, bulk `foreach_set`) with the
integer point attribute "frame" (the job frame) and the colour attribute "Col". The Geometry Nodes group
"Shotfield Frame Points" keeps the points whose "frame" equals round(scene frame - Frame Start) (Scene
Time -> Subtract -> Round -> Compare with the attribute -> Delete Geometry) and hands them to the points
importer's "Shotfield Mesh to Points" group (radius, emission material from "Col"). One object and one
mesh rather than one per frame or a keyframed visibility per frame: nothing is evaluated per frame but a
scan of the "frame" attribute, and the artist gets one thing to hide, move or delete.

Heavy on purpose, so optional: "import all" leaves it out (importers/__init__.py, OPTIONAL), the panel
offers it as its own import button.

Missing, partial or unreadable frames refuse the whole import with the file named (ImportFailed): a cloud
with holes in time would look like a tracking error.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import bpy
import numpy as np

from ..shared_formats import ply
from .base import Built, ImportFailed, JobFolder, Shot, socket_identifier, tag
from .points import RADIUS_SOCKET, add_points_modifier, display_radius, mesh_to_points_group, point_mesh

NAME = "depth_points"
LABEL = "Depth Points"
ICON = "OUTLINER_OB_POINTCLOUD"
REQUIRES = ("camera",)          # the points are aligned with the solved camera; both come in together
FOLDER = "depth/points"
FILE = f"{FOLDER}/00000.ply"
FRAME_ATTRIBUTE = "frame"       # int per point: the job frame it belongs to
NODE_GROUP = "Shotfield Frame Points"
FRAME_START_SOCKET = "Frame Start"
#: At most this many points in all. Every point stays in the .blend file and in each undo step (~20 bytes:
#: position 12, colour 4, frame 4), so 3 million is ~60 MB; the depth stage writes ~20,000 a frame, so
#: shots up to ~150 frames come in whole. Beyond it every frame is thinned by the same fraction and the
#: import warns. (Measured at 3 million points, 150 frames: import 2.3 s, a frame change 8-12 ms, .blend 64 MB.)
MAX_POINTS = 3_000_000


@dataclass
class DepthPointsData:
    positions: np.ndarray           # (N, 3) float32, world units (Blender world: Z up)
    colours: np.ndarray             # (N, 3) uint8 sRGB (white where a file has no colours)
    frame: np.ndarray               # (N,) int32, job frame of each point
    count: int                      # frames
    radius: float                   # display radius, world units
    warnings: list[str] = field(default_factory=list)


def available(job: JobFolder) -> bool:
    return job.file(FILE).is_file()


def frame_paths(job: JobFolder) -> list:
    """The per-frame PLYs, frame 0 first. Raises ImportFailed when there are none or one is missing."""
    folder = job.file(FOLDER)
    found = sorted(int(p.stem) for p in folder.glob("[0-9][0-9][0-9][0-9][0-9].ply"))
    if not found:
        raise ImportFailed(f"{folder}: no per-frame point clouds (00000.ply ...); run the depth stage again")
    count = job.frame_count or found[-1] + 1
    paths = [folder / f"{i:05d}.ply" for i in range(count)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        named = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise ImportFailed(f"{folder}: {len(missing)} of {count} frames' point clouds are missing ({named}); "
                           "run the depth stage again")
    return paths


def read(job: JobFolder) -> DepthPointsData:
    positions, colours, dropped = [], [], 0
    for path in frame_paths(job):
        try:
            p, c = ply.points_and_colours(path)
        except ply.PlyError as exc:
            raise ImportFailed(f"{exc}; run the depth stage again to rewrite the depth point clouds") from exc
        finite = np.all(np.isfinite(p), axis=1)
        dropped += int((~finite).sum())
        positions.append(p[finite])
        colours.append(c[finite] if c is not None else np.full((int(finite.sum()), 3), 255, np.uint8))
    total = sum(len(p) for p in positions)
    if total == 0:
        raise ImportFailed(f"{job.file(FOLDER)}: the point clouds hold no points with finite coordinates "
                           "(no known depth); run the depth stage again")
    warnings = [f"{dropped} points without finite coordinates were left out"] if dropped else []
    if total > MAX_POINTS:
        keep = [_thinned(len(p), MAX_POINTS / total) for p in positions]
        positions = [p[k] for p, k in zip(positions, keep)]
        colours = [c[k] for c, k in zip(colours, keep)]
        warnings.append(f"the depth point clouds hold {total:,} points; each frame was thinned to "
                        f"{MAX_POINTS / total:.0%} of its points ({sum(map(len, keep)):,} in all) to keep the "
                        f".blend file and undo small")
    frame = np.repeat(np.arange(len(positions), dtype=np.int32), [len(p) for p in positions])
    everything = np.concatenate(positions)
    radius = display_radius(everything[::max(1, len(everything) // 200_000)])
    return DepthPointsData(everything, np.concatenate(colours), frame, len(positions), radius, warnings)


def _thinned(n: int, fraction: float) -> np.ndarray:
    """floor(n * fraction) indices spread evenly over 0..n-1 (spacing >= 1, so no repeats)."""
    keep = int(n * fraction)
    return np.floor(np.arange(keep) * (n / max(keep, 1))).astype(np.int64)


def create(data: DepthPointsData, shot: Shot) -> Built:
    name = f"{shot.job.name} Depth Points"
    mesh = point_mesh(name, data.positions, data.colours)
    mesh.attributes.new(FRAME_ATTRIBUTE, "INT", "POINT").data.foreach_set("value", data.frame)
    obj = tag(bpy.data.objects.new(name, mesh), NAME, name)
    modifier = add_points_modifier(obj, frame_points_group(), data.radius)
    modifier[socket_identifier(modifier.node_group, FRAME_START_SOCKET)] = shot.frame_start
    return Built(objects=[obj], last_frame_index=data.count - 1, warnings=list(data.warnings))


def frame_points_group():
    """Geometry -> Delete Geometry (points whose "frame" is not the scene's job frame) -> the points importer's
    Mesh to Points group (Radius) -> Geometry. Inputs: Radius, Frame Start (scene frame of job frame 0).
    Shared by every import, made again if someone changed it into something else."""
    inner = mesh_to_points_group()
    group = bpy.data.node_groups.get(NODE_GROUP)
    if (group is not None and group.bl_idname == "GeometryNodeTree"
            and any(n.bl_idname == "GeometryNodeDeleteGeometry" for n in group.nodes)
            and any(n.bl_idname == "GeometryNodeGroup" and n.node_tree == inner for n in group.nodes)):
        return group
    group = bpy.data.node_groups.new(NODE_GROUP, "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    radius = group.interface.new_socket(RADIUS_SOCKET, in_out="INPUT", socket_type="NodeSocketFloat")
    radius.default_value, radius.min_value = 0.01, 0.0
    start = group.interface.new_socket(FRAME_START_SOCKET, in_out="INPUT", socket_type="NodeSocketInt")
    start.default_value, start.description = 1, "Scene frame of the job's first frame"
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = group.nodes, group.links
    group_in, group_out = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    time = nodes.new("GeometryNodeInputSceneTime")
    job_frame = nodes.new("ShaderNodeMath")
    job_frame.operation = "SUBTRACT"
    # Round: motion blur and subframe renders evaluate between frames; they show the nearest frame's points.
    nearest = nodes.new("ShaderNodeMath")
    nearest.operation = "ROUND"
    attribute = nodes.new("GeometryNodeInputNamedAttribute")
    attribute.data_type = "INT"
    attribute.inputs["Name"].default_value = FRAME_ATTRIBUTE
    other = nodes.new("FunctionNodeCompare")
    other.data_type, other.operation = "INT", "NOT_EQUAL"
    compare = {socket.identifier: socket for socket in other.inputs}
    delete = nodes.new("GeometryNodeDeleteGeometry")
    delete.domain = "POINT"
    to_points = nodes.new("GeometryNodeGroup")
    to_points.node_tree = inner
    links.new(time.outputs["Frame"], job_frame.inputs[0])
    links.new(group_in.outputs[FRAME_START_SOCKET], job_frame.inputs[1])
    links.new(job_frame.outputs["Value"], nearest.inputs[0])
    links.new(attribute.outputs["Attribute"], compare["A_INT"])
    links.new(nearest.outputs["Value"], compare["B_INT"])
    links.new(group_in.outputs["Geometry"], delete.inputs["Geometry"])
    links.new(other.outputs["Result"], delete.inputs["Selection"])
    links.new(delete.outputs["Geometry"], to_points.inputs["Geometry"])
    links.new(group_in.outputs[RADIUS_SOCKET], to_points.inputs[RADIUS_SOCKET])
    links.new(to_points.outputs["Geometry"], group_out.inputs["Geometry"])
    for node, (x, y) in ((time, (0, -250)), (job_frame, (200, -250)), (nearest, (400, -250)), (attribute, (400, -450)),
                         (other, (600, -300)), (group_in, (400, 0)), (delete, (800, 0)), (to_points, (1000, 0)),
                         (group_out, (1200, 0))):
        node.location = (x, y)
    return group
