"""The depth stage's per-frame depth as an image sequence wired into a ready compositor node group.

Reads `depth/compositor/00000.exr ...` (the depth stage writes them beside the job's `depth/00000.exr`): the
same planar depth in world units as channels "Z" (for Nuke) and "Y", because Blender 4.5 reads a lone "Z"
channel of a single-part EXR as garbage but a "Y" channel as a grey float image (exporters/depth_maps.py).

Builds:
- the image "<shot> Depth": source SEQUENCE, Non-Color, job frame i at scene frame `frame_start + i`;
- the compositor node group "<shot> Depth" with the sequence inside it. Outputs: "Depth" (world units,
  what a Z socket expects), "Mist" (0 at the near, 1 at the far depth of depth.json's range, like Blender's
  Mist pass) and "Defocused" (its "Image" input blurred by a Defocus node driven by the depth, z-buffer mode).
  Near/far come from the first frame's 2nd/98th percentiles, read from the loaded image;
- a node of that group in the scene's compositor, fed by the render layers, its outputs left free for the
  artist to link (`add_to_compositor`; the final image stays as it was).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import bpy
import numpy as np

from .base import Built, ImportFailed, JobFolder, Shot

NAME = "depth"
LABEL = "Depth"
ICON = "IMAGE_ZDEPTH"
REQUIRES = ("camera",)
FILE = "depth/compositor/00000.exr"


@dataclass
class DepthData:
    first: str          # path of frame 0
    count: int          # frames in the sequence
    summary: dict       # depth/depth.json (may be empty)


def available(job: JobFolder) -> bool:
    return job.file(FILE).is_file()


def read(job: JobFolder) -> DepthData:
    folder = job.file("depth/compositor")
    count = 0
    while (folder / f"{count:05d}.exr").is_file():
        count += 1
    if count == 0:
        raise ImportFailed(f"{folder}: no depth frames (00000.exr ...); run the depth stage")
    if job.frame_count and count < job.frame_count:
        raise ImportFailed(f"{folder}: {count} of {job.frame_count} depth frames; run the depth stage again")
    summary = {}
    path = job.file("depth/depth.json")
    if path.is_file():
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ImportFailed(f"{path}: unreadable ({exc})") from exc
    return DepthData(str(folder / "00000.exr"), count, summary)


def load_sequence(data: DepthData, name: str, frame_start: int):
    image = bpy.data.images.load(data.first, check_existing=False)
    image.name = name
    image.source = "SEQUENCE"
    image.colorspace_settings.name = "Non-Color"
    return image


def image_depth(image) -> np.ndarray:
    """The loaded frame's depth (H, W) float32, top row first (Blender stores rows bottom-up)."""
    w, h = image.size
    px = np.empty(w * h * image.channels, np.float32)
    image.pixels.foreach_get(px)
    return px.reshape(h, w, image.channels)[::-1, :, 0].copy()


def depth_range(depth: np.ndarray) -> tuple[float, float]:
    known = depth[np.isfinite(depth) & (depth > 0)]
    if known.size == 0:
        return 0.1, 100.0
    near, far = np.percentile(known, [2, 98])
    return float(near), float(max(far, near * 1.01))


def create(data: DepthData, shot: Shot) -> Built:
    name = f"{shot.job.name} Depth"
    image = load_sequence(data, name, shot.frame_start)
    near, far = depth_range(image_depth(image))
    group = bpy.data.node_groups.new(name, "CompositorNodeTree")
    group.interface.new_socket("Image", in_out="INPUT", socket_type="NodeSocketColor")
    for socket in ("Depth", "Mist"):
        group.interface.new_socket(socket, in_out="OUTPUT", socket_type="NodeSocketFloat")
    group.interface.new_socket("Defocused", in_out="OUTPUT", socket_type="NodeSocketColor")
    nodes, links = group.nodes, group.links
    inputs, outputs = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    source = nodes.new("CompositorNodeImage")
    source.image = image
    source.frame_duration = data.count
    source.frame_start = shot.frame_start   # scene frame of job frame 0
    source.frame_offset = 0
    separate = nodes.new("CompositorNodeSeparateColor")
    links.new(source.outputs["Image"], separate.inputs[0])
    depth = separate.outputs[0]  # every colour channel of the grey image is the depth
    links.new(depth, outputs.inputs["Depth"])
    mist = nodes.new("CompositorNodeMapRange")
    mist.use_clamp = True
    mist.inputs[1].default_value, mist.inputs[2].default_value = near, far
    mist.inputs[3].default_value, mist.inputs[4].default_value = 0.0, 1.0
    links.new(depth, mist.inputs[0])
    links.new(mist.outputs[0], outputs.inputs["Mist"])
    defocus = nodes.new("CompositorNodeDefocus")
    defocus.use_zbuffer = True
    links.new(inputs.outputs["Image"], defocus.inputs["Image"])
    links.new(depth, defocus.inputs[1])
    links.new(defocus.outputs[0], outputs.inputs["Defocused"])
    group["shotfield_job"] = str(shot.job.path)
    group["shotfield_depth_range"] = [near, far]
    warnings = []
    check = (data.summary.get("failure_check") or {}).get("mode")
    if check and check != "none":
        warnings.append(f"the depth training reports failure mode '{check}' (see depth/depth.json)")
    return Built(objects=[], last_frame_index=data.count - 1, warnings=warnings,
                 scene_setup=lambda scene: add_to_compositor(scene, group))


def add_to_compositor(scene, group) -> None:
    """Put the depth group in `scene`'s compositor, fed by the render, its outputs free: an artist links
    Defocused, Depth or Mist to where they need it (the final image stays as it was)."""
    scene.use_nodes = True
    tree = scene.node_tree
    # A re-import made a new group: the node of the job's previous depth group goes (that group is then unused).
    for node in [n for n in tree.nodes if n.bl_idname == "CompositorNodeGroup" and n.node_tree is not None
                 and n.node_tree.get("shotfield_job") == group["shotfield_job"] and "shotfield_depth_range" in n.node_tree]:
        tree.nodes.remove(node)
    layers = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None) or tree.nodes.new("CompositorNodeRLayers")
    node = tree.nodes.new("CompositorNodeGroup")
    node.node_tree, node.label = group, "Shot depth (Depth, Mist, Defocused)"
    node.location = (layers.location.x + 300, layers.location.y - 300)
    tree.links.new(layers.outputs["Image"], node.inputs["Image"])
