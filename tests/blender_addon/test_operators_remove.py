"""Marking what to remove with a Blender Mask: our rasteriser agrees with Blender's own (the compositor's Mask
node, rendered headless), and the operator exports the mask on the frames where it is keyframed, named by
job frame, ready for `--remove`."""
import importlib
import math

import bpy
import numpy as np
from PIL import Image

W, H, N = 64, 40, 5


def _clip(tmp_path):
    folder = tmp_path / "footage"
    folder.mkdir()
    for i in range(N):
        Image.fromarray(np.full((H, W, 3), 40 * i, np.uint8)).save(folder / f"shot.{i + 1:04d}.png")
    clip = bpy.data.movieclips.load(str(folder / "shot.0001.png"))
    clip.frame_start = 1
    return clip


def _blob(mask, centre, radius, squash=0.7):
    """A closed 6-point Bezier blob in mask coordinates."""
    layer = mask.layers.new(name="blob")
    spline = layer.splines.new()
    spline.points.add(5)
    spline.use_cyclic = True
    k = 4 / 3 * math.tan(math.pi / 12) * radius  # handle length of a circle through 6 points
    for i, p in enumerate(spline.points):
        a = 2 * math.pi * i / 6
        c = (centre[0] + radius * math.cos(a), centre[1] + squash * radius * math.sin(a))
        tangent = (-math.sin(a) * k, squash * math.cos(a) * k)
        p.handle_left_type = p.handle_right_type = "FREE"
        p.co = c
        p.handle_left = (c[0] - tangent[0], c[1] - tangent[1])
        p.handle_right = (c[0] + tangent[0], c[1] + tangent[1])
    return layer


def test_rasteriser_matches_blenders_mask_node(scene, addon, tmp_path):
    remove = importlib.import_module(f"{addon}.blender_addon.operators_remove")
    mask = bpy.data.masks.new("blob")
    _blob(mask, (0.4, 0.55), 0.22)
    ours = remove.rasterise(mask, W, H)

    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.view_settings.view_transform = "Standard"
    scene.use_nodes = True
    tree = scene.node_tree
    node = tree.nodes.new("CompositorNodeMask")
    node.mask, node.use_feather = mask, False
    composite = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite")
    tree.links.new(node.outputs["Mask"], composite.inputs["Image"])
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.render.filepath = str(tmp_path / "mask.png")
    scene.render.image_settings.color_mode = "BW"
    bpy.ops.render.render(write_still=True)
    blender = np.asarray(Image.open(tmp_path / "mask.png")) > 127
    assert 0.1 < ours.mean() < 0.5
    iou = (ours & blender).sum() / (ours | blender).sum()
    assert iou > 0.95, iou


def test_operator_exports_the_keyframed_frames(scene, addon, tmp_path):
    remove = importlib.import_module(f"{addon}.blender_addon.operators_remove")
    clip = _clip(tmp_path)
    scene.active_clip = clip
    scene.shotfield.clip = clip
    scene.frame_start, scene.frame_end = 1, N
    mask = bpy.data.masks.new("ball")
    layer = _blob(mask, (0.3, 0.5), 0.15)
    for frame, dx in ((2, 0.0), (4, 0.3)):  # the blob moves right between the two keyframes
        for i, p in enumerate(layer.splines[0].points):
            p.co = (p.co[0] + dx, p.co[1])
            p.handle_left = (p.handle_left[0] + dx, p.handle_left[1])
            p.handle_right = (p.handle_right[0] + dx, p.handle_right[1])
            for prop in ("co", "handle_left", "handle_right"):
                # Mask points have no path of their own: keyframe them through the Mask datablock.
                mask.keyframe_insert(f'layers["blob"].splines[0].points[{i}].{prop}', frame=frame)
    scene.shotfield_remove_mask = mask
    scene.shotfield.job_dir = str(tmp_path / "job")
    scene.frame_set(2)
    assert remove.keyframe_frames(mask) == [2, 4]
    assert bpy.ops.shotfield.remove_masked(run=False) == {"FINISHED"}
    folder = tmp_path / "job" / "user_masks" / "ball"
    assert sorted(p.name for p in folder.iterdir()) == ["00001.png", "00003.png"]  # job frames = scene frame - 1
    first = np.asarray(Image.open(folder / "00001.png").convert("L")) > 127
    last = np.asarray(Image.open(folder / "00003.png").convert("L")) > 127
    cols_first = np.nonzero(first.any(axis=0))[0]
    cols_last = np.nonzero(last.any(axis=0))[0]
    assert first.shape == (H, W) and 0.05 < first.mean() < 0.4
    assert abs((cols_last.mean() - cols_first.mean()) - 0.3 * W) < 2  # it followed the keyframes
    assert scene.frame_current == 2
    # The user's mask folder is what the backend reads: its naming rules and resizing accept it.
    from backend.inpaint.masks import read_user_mask, user_mask_files

    files = user_mask_files(folder)
    assert sorted(files) == [1, 3]
    assert np.array_equal(read_user_mask(files[1], W, H), first)


def test_panel_section(scene, addon, tmp_path):
    """The section the sidebar draws: the Mask to remove and the button; the import button once plates exist."""
    from .layout_recorder import RecordingLayout

    remove = importlib.import_module(f"{addon}.blender_addon.operators_remove")
    layout = RecordingLayout()
    remove.draw_section(layout, bpy.context, str(tmp_path), [])
    assert ("prop", "shotfield_remove_mask") in layout.calls and ("operator", "shotfield.remove_masked") in layout.calls
    assert ("operator", "shotfield.import_job") not in layout.calls
    layout = RecordingLayout()
    remove.draw_section(layout, bpy.context, str(tmp_path), ["footage", "plates"])
    assert ("operator", "shotfield.import_job") in layout.calls
