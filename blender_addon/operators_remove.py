"""Removing an object the artist marked with a Blender Mask on the footage clip.

"Remove Masked Object" rasterises the chosen Mask on the frames where the artist drew it (the frames of its
keyframes, and the current frame), writes one PNG per frame into a masks folder of the job
(`<job>/user_masks/<mask name>/NNNNN.png`, white = remove, named by job frame, at the clip's size), and starts
the removal through the Run operator with `--remove` that folder. The backend propagates the mask to every
frame (backend/inpaint/propagate.py).

The rasteriser is our own (numpy, no compositor round trip): each spline is a cubic Bezier through its points
(`co`, `handle_left`, `handle_right`), sampled finely, and filled scanline by scanline with the even-odd rule;
layers are combined in order (Add or Subtract, Invert honoured). Mask coordinates follow Blender's clip
convention: x across the frame 0..1, y 0..1 bottom to top, the shorter side scaled by the aspect ratio about
the centre (`BKE_mask_coord_from_frame`). Feathering is ignored: the backend dilates its masks itself.
"""
from __future__ import annotations

import os

import bpy
import numpy as np

from .footage import footage_for_clip
from .properties import active_clip, resolved_job_dir
from .shared_formats import job_manifest

SAMPLES_PER_SEGMENT = 24
MASKS_FOLDER = "user_masks"


def _bezier(p0, p1, p2, p3, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
    return ((1 - t) ** 3) * p0 + 3 * ((1 - t) ** 2) * t * p1 + 3 * (1 - t) * t * t * p2 + (t ** 3) * p3


def spline_polygon(points, cyclic: bool) -> np.ndarray:
    """(N, 2) mask-space outline of a spline: `points` rows are (co, handle_left, handle_right), each (2,)."""
    pts = np.asarray(points, np.float64)
    if len(pts) < 2:
        return pts[:, 0] if len(pts) else np.zeros((0, 2))
    segments = len(pts) if cyclic else len(pts) - 1
    outline = [_bezier(pts[i, 0], pts[i, 2], pts[(i + 1) % len(pts), 1], pts[(i + 1) % len(pts), 0], SAMPLES_PER_SEGMENT)
               for i in range(segments)]
    return np.concatenate(outline)


def mask_to_pixels(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """Mask coordinates -> pixel coordinates (x right, y down; pixel centres at i + 0.5)."""
    x, y = polygon[:, 0].copy(), polygon[:, 1].copy()
    if width > height:
        y = (y - 0.5) * (width / height) + 0.5
    elif height > width:
        x = (x - 0.5) * (height / width) + 0.5
    return np.stack([x * width, (1.0 - y) * height], axis=1)


def fill_polygon(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """bool (H, W): pixel centres inside the closed pixel-space polygon (even-odd rule), row by row."""
    out = np.zeros((height, width), bool)
    if len(polygon) < 3:
        return out
    a, b = polygon, np.roll(polygon, -1, axis=0)
    ys = np.arange(height) + 0.5
    xs = np.arange(width) + 0.5
    y0, y1 = a[:, 1][None], b[:, 1][None]
    crosses = ((y0 <= ys[:, None]) & (y1 > ys[:, None])) | ((y1 <= ys[:, None]) & (y0 > ys[:, None]))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (ys[:, None] - y0) / (y1 - y0)
    xcross = np.where(crosses, a[:, 0][None] + t * (b[:, 0] - a[:, 0])[None], np.inf)
    for row in np.nonzero(crosses.any(axis=1))[0]:
        hits = np.sort(xcross[row][np.isfinite(xcross[row])])
        # Pixels left of an odd number of crossings are inside.
        out[row] = (np.searchsorted(hits, xs) % 2) == 1
    return out


def rasterise(mask, width: int, height: int) -> np.ndarray:
    """bool (H, W) of a Mask datablock as it is now (evaluate it at the frame first)."""
    result = np.zeros((height, width), bool)
    for layer in mask.layers:
        if layer.hide_render:
            continue
        shape = np.zeros((height, width), bool)
        for spline in layer.splines:
            rows = [(tuple(p.co), tuple(p.handle_left), tuple(p.handle_right)) for p in spline.points]
            # A filled outline is closed whether or not the spline is marked cyclic.
            polygon = mask_to_pixels(spline_polygon(rows, True), width, height)
            shape ^= fill_polygon(polygon, width, height)  # overlapping splines cut holes, like use_fill_overlap off
        if layer.invert:
            shape = ~shape
        result = result & ~shape if layer.blend == "SUBTRACT" else result | shape
    return result


def keyframe_frames(mask) -> list[int]:
    """Scene frames where the mask's points have keyframes (F-curves on the points)."""
    frames = set()
    anim = mask.animation_data
    if anim is not None and anim.action is not None:
        for fcurve in anim.action.fcurves:
            frames.update(int(round(k.co[0])) for k in fcurve.keyframe_points)
    return sorted(frames)


def job_frame(scene_frame: int, clip_frame_start: int, first_index: int, source_start: int, step: int) -> int | None:
    """The job frame a scene frame shows, or None when it shows no job frame (between strided frames)."""
    position = scene_frame - clip_frame_start + first_index
    offset = position - source_start
    if offset < 0 or offset % step:
        return None
    return offset // step


def export_masks(scene, mask, clip, folder: str, frames: list[int], source_start: int, step: int, count: int | None) -> list[int]:
    """Rasterise `mask` at each scene frame of `frames` into `folder`/NNNNN.png (job frames); returns them."""
    width, height = clip.size
    try:
        first_index = footage_for_clip(bpy.path.abspath(clip.filepath, library=clip.library), clip.source).first_index
    except ValueError:
        first_index = 0
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".png"):
            os.remove(os.path.join(folder, name))  # a redrawn mask replaces the old export entirely
    written = []
    current = scene.frame_current
    try:
        for f in frames:
            n = job_frame(f, clip.frame_start, first_index, source_start, step)
            if n is None or (count is not None and n >= count):
                continue
            scene.frame_set(f)
            evaluated = mask.evaluated_get(bpy.context.evaluated_depsgraph_get())
            pixels = rasterise(evaluated, width, height)
            if pixels.any():
                _write_png(os.path.join(folder, f"{n:05d}.png"), pixels)
                written.append(n)
    finally:
        scene.frame_set(current)
    return written


def _write_png(path: str, pixels: np.ndarray) -> None:
    """Through a Blender image (the add-on has no OpenCV or PIL): white = remove, top row first on disk."""
    height, width = pixels.shape
    image = bpy.data.images.new("shotfield_mask_export", width, height, alpha=False)
    try:
        rgba = np.ones((height, width, 4), np.float32)
        rgba[..., :3] = pixels[::-1, :, None]  # Blender images are stored bottom row first
        image.pixels.foreach_set(rgba.ravel())
        image.filepath_raw = path
        image.file_format = "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)


class SHOTFIELD_OT_remove_masked(bpy.types.Operator):
    """Export the chosen Mask (on the frames where it is drawn) and remove what it marks from the whole shot"""

    bl_idname = "shotfield.remove_masked"
    bl_label = "Remove Masked Object"
    bl_options = {"REGISTER"}

    mask: bpy.props.StringProperty(name="Mask", description="The Mask to remove (default: the panel's choice)")
    frames: bpy.props.StringProperty(
        name="Frames", description="Scene frames to export, e.g. 1,12,24 (default: its keyframes and the current frame)")
    run: bpy.props.BoolProperty(name="Run", description="Start the removal after exporting", default=True)

    def execute(self, context):
        scene = context.scene
        mask = bpy.data.masks.get(self.mask) if self.mask else getattr(scene, "shotfield_remove_mask", None)
        clip = active_clip(context)
        job_dir = resolved_job_dir(context)
        if mask is None:
            self.report({"ERROR"}, "Choose the Mask that marks the object (draw one in the Clip Editor's Mask mode)")
            return {"CANCELLED"}
        if clip is None:
            self.report({"ERROR"}, "Open the footage as a Movie Clip first")
            return {"CANCELLED"}
        if job_dir is None:
            self.report({"ERROR"}, "Save the .blend file first (the job folder is relative to it), or choose a job folder")
            return {"CANCELLED"}
        try:
            frames = sorted({int(t) for t in self.frames.replace(" ", "").split(",") if t}) if self.frames.strip() else \
                sorted(set(keyframe_frames(mask)) | {scene.frame_current})
        except ValueError:
            self.report({"ERROR"}, f"Frames {self.frames!r}: give scene frame numbers separated by commas")
            return {"CANCELLED"}
        source_start, step, count = _job_frames(context, job_dir)
        folder = os.path.join(job_dir, MASKS_FOLDER, bpy.path.clean_name(mask.name))
        written = export_masks(scene, mask, clip, folder, frames, source_start, step, count)
        if not written:
            self.report({"ERROR"}, "The mask covers nothing on the chosen frames (or they are outside the shot)")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Mask '{mask.name}' exported on job frames {written} to {folder}")
        if not self.run:
            return {"FINISHED"}
        props = scene.shotfield
        props.remove, props.remove_masks, props.output_clean_plates = "masks", folder, True
        return bpy.ops.shotfield.run(stages="inpaint")


def _job_frames(context, job_dir: str) -> tuple[int, int, int | None]:
    """(footage position of job frame 0, step, frame count) from job.json, else from the panel's frame range."""
    try:
        frames = job_manifest.read_manifest(job_dir).get("frames") or {}
        return int(frames.get("start") or 0), int(frames.get("step") or 1), frames.get("count")
    except (job_manifest.JobFolderError, OSError, ValueError):
        props = context.scene.shotfield
        clip = active_clip(context)
        first = 0
        if clip is not None:
            try:
                first = footage_for_clip(bpy.path.abspath(clip.filepath, library=clip.library), clip.source).first_index
            except ValueError:
                pass
        if props.use_frame_range:
            return first + props.clip_frame_start - 1, props.clip_frame_step, None
        return first, 1, None


def draw_section(layout, context, job_dir, outputs) -> None:
    box = layout.box().column()
    box.label(text="Remove Objects", icon="MOD_MASK")
    box.prop(context.scene, "shotfield_remove_mask", text="Mask")
    row = box.row()
    row.enabled = job_dir is not None
    row.operator(SHOTFIELD_OT_remove_masked.bl_idname, icon="MOD_MASK")
    if "plates" in outputs:
        op = box.operator("shotfield.import_job", text="Import Clean Plates", icon="IMAGE_PLANE")
        op.outputs = {"plates"}


_classes = (SHOTFIELD_OT_remove_masked,)


def register():
    for cls in _classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.shotfield_remove_mask = bpy.props.PointerProperty(
        type=bpy.types.Mask, name="Mask", description="The Mask that marks what to remove (drawn on the footage clip)")


def unregister():
    del bpy.types.Scene.shotfield_remove_mask
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
