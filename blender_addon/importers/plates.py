"""The clean plates (`plates/`) and removal masks (`masks/`) of the inpaint stage, wired into the compositor.

What it builds:
- a Movie Clip "<shot> Clean Plate" of the plates (the footage-size ones in `plates/full/` when the job has
  them, else the working-size ones), playing from the shot's first frame: usable as a camera background or
  in the Clip Editor like the footage;
- the masks as an image sequence "<shot> Removal Mask" (Non-Color; 255 = removed);
- a compositor node group "<shot> Clean Plate" and, in the scene's compositor, Render Layers -> group ->
  Composite (and Viewer). Inside the group: the footage and the plate, each scaled to the render size, are
  mixed by the mask (footage where nothing was removed, plate where something was: the mix factor is the
  knob to check or soften the removal), and the render goes over that background with Alpha Over. The
  scene renders with a transparent film and the Standard view transform, so the plate comes out as it went
  in and only what the artist adds on top changes it. Ready to render.

Re-importing rebuilds the same group and reuses the clip and the image.
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy

from .base import JOB_TAG, Built, ImportFailed, JobFolder, Shot

NAME = "plates"
LABEL = "Clean Plates"
ICON = "IMAGE_PLANE"
FILE = "plates/00000.png"
REQUIRES = ("footage",)
GROUP_TAG = "shotfield_plates_group"


@dataclass
class PlatesData:
    plate_file: str        # first file of the plate sequence the clip shows
    mask_file: str         # first file of the mask sequence
    count: int
    full_size: bool


def available(job: JobFolder) -> bool:
    return job.file(FILE).is_file() and job.file("masks/00000.png").is_file()


def _count(folder, pattern: str) -> int:
    n = 0
    while (folder / pattern.format(n)).is_file():
        n += 1
    return n


def read(job: JobFolder) -> PlatesData:
    plates, masks = job.file("plates"), job.file("masks")
    if not available(job):
        raise ImportFailed(f"{job.path}: no clean plates (plates/00000.png and masks/00000.png); run the removal first")
    count = _count(plates, "{:05d}.png")
    if _count(masks, "{:05d}.png") < count:
        raise ImportFailed(f"{masks}: fewer masks than plates; run the removal again")
    if job.frame_count and count != job.frame_count:
        raise ImportFailed(f"{plates}: {count} plates for a {job.frame_count}-frame shot; run the removal again")
    plate_file = plates / "00000.png"
    full = False
    for name in ("00000.exr", "00000.png"):
        candidate = plates / "full" / name
        if candidate.is_file() and _count(plates / "full", "{:05d}" + candidate.suffix) == count:
            plate_file, full = candidate, True
            break
    return PlatesData(str(plate_file), str(masks / "00000.png"), count, full)


def _clip(path: str, name: str, job: JobFolder):
    for clip in bpy.data.movieclips:
        if bpy.path.abspath(clip.filepath) == path:
            return clip
    clip = bpy.data.movieclips.load(path)
    clip.name = name
    clip[JOB_TAG] = str(job.path)
    return clip


def _mask_image(path: str, name: str, job: JobFolder):
    for image in bpy.data.images:
        if bpy.path.abspath(image.filepath) == path:
            image.reload()
            return image
    image = bpy.data.images.load(path)
    image.name = name
    image.source = "SEQUENCE"
    image.colorspace_settings.name = "Non-Color"
    image[JOB_TAG] = str(job.path)
    return image


def _group(name: str, job: JobFolder):
    """The shot's node group, emptied (re-import) or new."""
    group = next((g for g in bpy.data.node_groups if g.get(GROUP_TAG) == str(job.path)), None)
    if group is None:
        group = bpy.data.node_groups.new(name, "CompositorNodeTree")
        group[GROUP_TAG] = str(job.path)
    group.nodes.clear()
    group.interface.clear()
    group.interface.new_socket("Render", in_out="INPUT", socket_type="NodeSocketColor")
    group.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    group.interface.new_socket("Mask", in_out="OUTPUT", socket_type="NodeSocketFloat")
    return group


def _to_render_size(nodes, links, socket, x, y):
    scale = nodes.new("CompositorNodeScale")
    scale.space, scale.frame_method = "RENDER_SIZE", "STRETCH"
    scale.location = (x, y)
    links.new(socket, scale.inputs["Image"])
    return scale.outputs["Image"]


def build_group(group, plate_clip, footage_clip, mask, count: int, frame_start: int):
    nodes, links = group.nodes, group.links
    inputs, outputs = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    inputs.location, outputs.location = (-200, -400), (900, 0)
    plate = nodes.new("CompositorNodeMovieClip")
    plate.clip, plate.label, plate.location = plate_clip, "Clean plate", (-600, 0)
    image = nodes.new("CompositorNodeImage")
    image.image, image.label, image.location = mask, "Removal mask", (-600, -250)
    image.frame_duration, image.frame_start, image.frame_offset = count, frame_start, 0
    image.use_auto_refresh = True
    plate_out = _to_render_size(nodes, links, plate.outputs["Image"], -300, 0)
    mask_out = _to_render_size(nodes, links, image.outputs["Image"], -300, -250)
    to_bw = nodes.new("CompositorNodeRGBToBW")
    to_bw.location = (-100, -250)
    links.new(mask_out, to_bw.inputs["Image"])
    mix = nodes.new("CompositorNodeMixRGB")
    mix.label, mix.location = "Footage / plate by mask", (200, 100)
    links.new(to_bw.outputs["Val"], mix.inputs["Fac"])
    if footage_clip is not None:
        footage = nodes.new("CompositorNodeMovieClip")
        footage.clip, footage.label, footage.location = footage_clip, "Footage", (-600, 250)
        links.new(_to_render_size(nodes, links, footage.outputs["Image"], -300, 250), mix.inputs[1])
    else:
        links.new(plate_out, mix.inputs[1])
    links.new(plate_out, mix.inputs[2])
    over = nodes.new("CompositorNodeAlphaOver")
    over.label, over.location = "Render over the plate", (500, 0)
    links.new(mix.outputs["Image"], over.inputs[1])
    links.new(inputs.outputs["Render"], over.inputs[2])
    links.new(over.outputs["Image"], outputs.inputs["Image"])
    links.new(to_bw.outputs["Val"], outputs.inputs["Mask"])


def wire_compositor(scene, group) -> None:
    """Render Layers -> the group -> Composite and Viewer in `scene`'s compositor (replacing what fed them)."""
    scene.use_nodes = True
    tree = scene.node_tree
    for node in [n for n in tree.nodes if n.bl_idname == "CompositorNodeGroup" and n.node_tree == group]:
        tree.nodes.remove(node)
    layers = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None) or tree.nodes.new("CompositorNodeRLayers")
    composite = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None) or tree.nodes.new("CompositorNodeComposite")
    viewer = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeViewer"), None)
    node = tree.nodes.new("CompositorNodeGroup")
    node.node_tree, node.label = group, "Clean plate under the render"
    node.location = (layers.location.x + 300, layers.location.y)
    tree.links.new(layers.outputs["Image"], node.inputs["Render"])
    tree.links.new(node.outputs["Image"], composite.inputs["Image"])
    if viewer is not None:
        tree.links.new(node.outputs["Image"], viewer.inputs["Image"])
    scene.render.film_transparent = True
    # The plate must leave the compositor as it came in: no filmic/AgX tone curve on top of footage.
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"


def create(data: PlatesData, shot: Shot) -> Built:
    job = shot.job
    plate_clip = _clip(data.plate_file, f"{job.name} Clean Plate", job)
    plate_clip.frame_start = shot.frame_start
    mask = _mask_image(data.mask_file, f"{job.name} Removal Mask", job)
    group = _group(f"{job.name} Clean Plate", job)
    build_group(group, plate_clip, shot.clip, mask, data.count, shot.frame_start)
    warnings = [] if data.full_size else ["the plates are at the working size (footage-size plates need the footage)"]
    # The compositor belongs to the scene the shot is imported into, which the orchestrator hands over last.
    return Built(last_frame_index=data.count - 1, warnings=warnings,
                 scene_setup=lambda scene: wire_compositor(scene, group))
