"""Render a preview of a reconstruction to PNG: the footage, seen through the solved camera, with a ground grid
at Z = 0 and the solved point cloud drawn over it. If the camera is right, the grid stays glued to the
floor and the points sit on the features they came from, frame after frame.

    python scripts/render_preview.py -- SOURCE OUT.png [--frames 1,12,24] [--long-side 480] [--samples 4]
    blender -b --python-exit-code 1 --python scripts/render_preview.py -- SOURCE OUT.png

SOURCE is a .blend (e.g. from batch_reconstruct.py or import_job.py; it is not modified) or a job folder
(imported first with the add-on's "Import All"). Several frames (default: first, middle and last) are placed
side by side in one PNG. Renders with Cycles on the CPU (a few samples: the overlay is emissive) over a
transparent film, and lays the render over the Movie Clip in the compositor.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `blender --python` does not add the script's folder
import blender_env  # noqa: E402

blender_env.use_temp_user_resources()

import bpy  # noqa: E402
import numpy as np  # noqa: E402

GRID_COLOUR = (0.1, 0.9, 1.0, 1.0)
POINT_COLOUR = (1.0, 0.6, 0.0, 1.0)   # the imported points show the footage's colours; here they must stand out
GRID_LINES = 10
POINT_PIXELS = 1.0     # radius of a point in pixels at the nearer points' depth (30th percentile)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="render_preview.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help=".blend file or Shotfield job folder")
    parser.add_argument("out_png", type=Path, help="PNG to write")
    parser.add_argument("--frames", help="comma-separated scene frames (default: first, middle, last)")
    parser.add_argument("--long-side", type=int, default=480, help="render size long side in pixels (default 480)")
    parser.add_argument("--samples", type=int, default=4, help="Cycles samples (default 4)")
    return parser.parse_args(blender_env.script_args(argv))


def shot_objects(scene) -> dict[str, bpy.types.Object]:
    """The imported objects by output ("camera", "points", "ground")."""
    return {obj["shotfield_output"]: obj for obj in scene.objects if "shotfield_output" in obj}


def emission_material(name: str, colour) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    emission, output = nodes.new("ShaderNodeEmission"), nodes.new("ShaderNodeOutputMaterial")
    emission.inputs["Color"].default_value = colour
    material.node_tree.links.new(emission.outputs[0], output.inputs["Surface"])
    return material


def add_grid(scene, objects) -> bpy.types.Object:
    """A wireframe grid at Z = 0 over the ground plane's area (or the points'), emissive so lighting does not matter."""
    ground = objects.get("ground")
    if ground is not None:
        corners = np.array([ground.matrix_world @ v.co for v in ground.data.vertices])
    else:
        corners = _point_positions(objects.get("points"))
    lo, hi = (corners[:, :2].min(axis=0), corners[:, :2].max(axis=0)) if len(corners) else (np.full(2, -5.0), np.full(2, 5.0))
    size = float(np.max(hi - lo)) or 10.0
    centre = (lo + hi) / 2
    steps = np.linspace(-size / 2, size / 2, GRID_LINES + 1)
    vertices = [(centre[0] + x, centre[1] + y, 0.0) for y in steps for x in steps]
    n = GRID_LINES + 1
    faces = [(j * n + i, j * n + i + 1, (j + 1) * n + i + 1, (j + 1) * n + i) for j in range(GRID_LINES) for i in range(GRID_LINES)]
    mesh = bpy.data.meshes.new("Preview Grid")
    mesh.from_pydata(vertices, [], faces)
    grid = bpy.data.objects.new("Preview Grid", mesh)
    scene.collection.objects.link(grid)
    wire = grid.modifiers.new("Wire", "WIREFRAME")
    wire.thickness = size / GRID_LINES * 0.02
    mesh.materials.append(emission_material("Preview Grid", GRID_COLOUR))
    return grid


def _point_positions(points) -> np.ndarray:
    if points is None:
        return np.zeros((0, 3))
    co = np.empty(len(points.data.vertices) * 3, np.float32)
    points.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3) @ np.array(points.matrix_world)[:3, :3].T + np.array(points.matrix_world)[:3, 3]


def size_points(scene, points) -> None:
    """Points about POINT_PIXELS in radius at the nearer points' distance (a world-size radius grows near the camera)."""
    camera = scene.camera
    positions = _point_positions(points)
    if camera is None or not len(positions):
        return
    depth = float(np.percentile(np.linalg.norm(positions - np.array(camera.matrix_world.translation), axis=1), 30))
    pixel = depth * camera.data.sensor_width / camera.data.lens / scene.render.resolution_x
    blender_env.addon_module("importers.points").set_radius(points, POINT_PIXELS * pixel * 100 / scene.render.resolution_percentage)
    # This scene is thrown away after rendering, so the shared node group may take the preview's material.
    set_material = next(n for n in points.modifiers["Points"].node_group.nodes if n.bl_idname == "GeometryNodeSetMaterial")
    set_material.inputs["Material"].default_value = emission_material("Preview Points", POINT_COLOUR)


def set_up_render(scene, long_side: int, samples: int) -> None:
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    render.film_transparent = True
    render.resolution_percentage = max(1, min(400, round(100 * long_side / max(render.resolution_x, render.resolution_y))))
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGB"
    scene.view_settings.view_transform = "Standard"  # the footage's own colours, not a film look
    scene.view_settings.look = "None"
    scene.use_nodes = True
    tree = scene.node_tree
    tree.nodes.clear()
    layers = tree.nodes.new("CompositorNodeRLayers")
    composite = tree.nodes.new("CompositorNodeComposite")
    if scene.active_clip is None:
        tree.links.new(layers.outputs["Image"], composite.inputs["Image"])
        return
    clip = tree.nodes.new("CompositorNodeMovieClip")
    clip.clip = scene.active_clip
    scale = tree.nodes.new("CompositorNodeScale")
    scale.space, scale.frame_method = "RENDER_SIZE", "STRETCH"
    over = tree.nodes.new("CompositorNodeAlphaOver")
    tree.links.new(clip.outputs["Image"], scale.inputs["Image"])
    tree.links.new(scale.outputs["Image"], over.inputs[1])        # background: the footage
    tree.links.new(layers.outputs["Image"], over.inputs[2])       # foreground: grid and points
    tree.links.new(over.outputs["Image"], composite.inputs["Image"])


def render_frames(scene, frames: list[int], out_png: Path) -> None:
    """Render each frame and place them side by side in one PNG."""
    tiles = []
    with tempfile.TemporaryDirectory(prefix="shotfield_preview_") as folder:
        for frame in frames:
            scene.frame_set(frame)
            scene.render.filepath = str(Path(folder) / f"{frame:05d}.png")
            bpy.ops.render.render(write_still=True)
            image = bpy.data.images.load(scene.render.filepath)
            pixels = np.empty(image.size[0] * image.size[1] * 4, np.float32)
            image.pixels.foreach_get(pixels)
            tiles.append(pixels.reshape(image.size[1], image.size[0], 4))
            bpy.data.images.remove(image)
            print(f"render_preview: frame {frame} rendered")
    gap = np.ones((tiles[0].shape[0], 4, 4), np.float32)
    strip = np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1)
    out = bpy.data.images.new("preview", strip.shape[1], strip.shape[0], alpha=False)
    out.pixels.foreach_set(strip.ravel())
    out.filepath_raw = str(out_png)
    out.file_format = "PNG"
    out_png.parent.mkdir(parents=True, exist_ok=True)
    out.save()


def preview(source: Path, out_png: Path, frames: str | None, long_side: int, samples: int) -> None:
    blender_env.reset_scene()
    with blender_env.addon_enabled():
        if source.suffix == ".blend":
            bpy.ops.wm.open_mainfile(filepath=str(source))
        else:
            bpy.ops.shotfield.import_job(directory=str(source))
        scene = bpy.context.scene
        objects = shot_objects(scene)
        if scene.camera is None:
            raise RuntimeError(f"{source}: no camera to look through (run the solve first)")
        if "ground" in objects:
            objects["ground"].hide_render = True  # a shadow catcher with nothing above it shows nothing
        add_grid(scene, objects)
        set_up_render(scene, long_side, samples)
        if "points" in objects:
            size_points(scene, objects["points"])
        wanted = [int(f) for f in frames.split(",")] if frames else sorted({scene.frame_start, (scene.frame_start + scene.frame_end) // 2, scene.frame_end})
        render_frames(scene, wanted, out_png)
        blender_env.reset_scene()  # never save the preview set-up into the source file
    print(f"render_preview: wrote {out_png}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not args.source.exists():
        print(f"render_preview: {args.source}: no such file or folder", file=sys.stderr)
        return 2
    try:
        preview(args.source.resolve(), args.out_png.resolve(), args.frames, args.long_side, args.samples)
    except RuntimeError as exc:
        print(f"render_preview: {str(exc).strip()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
