"""Remove objects from a shot and save a .blend with the clean plates wired into the compositor, headless.

    python scripts/batch_remove.py -- FOOTAGE --job DIR --remove moving|MASK_DIR --blend OUT.blend
        [--frames START:END[:STEP]] [--quality preview|final] [--device auto|cpu|cuda] [--long-side PX]
        [--effort E] [--backend PATH] [--frame-start N] [--render FRAME]
    blender -b --python-exit-code 1 --python scripts/batch_remove.py -- FOOTAGE --job DIR --remove moving --blend OUT.blend

Does what an artist does in the panel: opens FOOTAGE (a video file, an image folder or one of its numbered
images) as a Movie Clip, runs the backend's `inpaint` stage (and whatever it needs that the job has not done
yet) through the add-on's Run operator with `--remove` (everything that moves, or what the masks in MASK_DIR
mark: PNG, white = remove, named by job frame number, drawn on one or more frames), imports the job (footage,
camera, points and the clean plates with their compositor setup: the plate under the render, mixed by the
mask) and saves OUT.blend. `--render FRAME` also renders that scene frame through the compositor to
OUT.blend's folder (`<name>_FRAME.png`), a quick look at the result.

Exit codes: 0 saved; 1 the run or the import failed (the message says why; OUT.blend then holds the clip
only); 2 bad arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `blender --python` does not add the script's folder
import blender_env  # noqa: E402

blender_env.use_temp_user_resources()

import bpy  # noqa: E402

from batch_reconstruct import open_clip, run_and_import  # noqa: E402  (the same clip handling and run as reconstruct)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch_remove.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("footage", type=Path, help="video file, image folder, or the first image of a sequence")
    parser.add_argument("--job", type=Path, required=True, help="job folder (an existing job is reused)")
    parser.add_argument("--remove", required=True, help="'moving' or a folder of masks (white = remove)")
    parser.add_argument("--blend", type=Path, required=True, help=".blend file to write")
    parser.add_argument("--frames", help="START:END[:STEP], 0-based footage positions, END exclusive")
    parser.add_argument("--quality", choices=("preview", "final"), default="preview")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--long-side", type=int, default=0, help="working size long side in pixels")
    parser.add_argument("--effort", type=float, default=1.0, help="training effort of the learned stages")
    parser.add_argument("--backend", help="the `shotfield` command (default: the add-on preference's default)")
    parser.add_argument("--frame-start", type=int, default=1, help="scene frame of the shot's first frame")
    parser.add_argument("--render", type=int, default=None, metavar="FRAME",
                        help="render this scene frame through the compositor beside OUT.blend")
    return parser.parse_args(blender_env.script_args(argv))


def remove(args) -> int:
    blender_env.reset_scene()
    with blender_env.addon_enabled() as module_name:
        scene = bpy.context.scene
        props = scene.shotfield
        if not open_clip(scene, args.footage, args.frames, "batch_remove"):
            return 2
        props.job_dir = str(args.job.resolve())
        for name, *_ in blender_env.addon_module("properties").OUTPUTS:
            setattr(props, f"output_{name}", name == "clean_plates")
        if args.remove == "moving":
            props.remove = "moving"
        else:
            props.remove, props.remove_masks = "masks", str(Path(args.remove).resolve())
        props.quality, props.device, props.long_side, props.effort = args.quality, args.device, args.long_side, args.effort
        props.scene_frame_start = args.frame_start
        props.import_when_done = False  # imported below, with its own report
        out = args.blend.resolve()
        if not run_and_import(module_name, out, "inpaint", args.frame_start, False, args.backend, "batch_remove"):
            return 1
        if args.render is not None:
            scene.frame_set(args.render)
            scene.render.filepath = str(out.with_name(f"{out.stem}_{args.render:04d}.png"))
            scene.render.image_settings.file_format = "PNG"
            bpy.ops.render.render(write_still=True)
        collection = next(c for c in bpy.data.collections if c.get("shotfield_job"))
        print(f"batch_remove: wrote {out} ({', '.join(o.name for o in collection.objects)}; clean plates in the compositor)")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not args.footage.exists():
        print(f"batch_remove: {args.footage}: no such file or folder", file=sys.stderr)
        return 2
    if args.remove != "moving" and not Path(args.remove).is_dir():
        print(f"batch_remove: --remove {args.remove}: give 'moving' or a folder of masks", file=sys.stderr)
        return 2
    return remove(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
