"""Reconstruct a shot and save it as a .blend, in one command, headless, with the add-on of this checkout.

    python scripts/batch_reconstruct.py -- FOOTAGE OUT.blend [--job DIR] [--outputs camera] [--stages ...]
        [--frames START:END[:STEP]] [--quality preview|final] [--device auto|cpu|cuda] [--long-side PX]
        [--backend PATH] [--frame-start N] [--no-ground]
    blender -b --python-exit-code 1 --python scripts/batch_reconstruct.py -- FOOTAGE OUT.blend ...

Does what an artist does in the panel: opens FOOTAGE (a video file, an image folder or one of its numbered
images) as a Movie Clip, saves OUT.blend (so the default job folder, `//shotfield/<clip>/`, lies beside it),
runs the backend through the add-on's Run operator (which waits in background mode and prints a line per
progress step), imports everything the job has through "Import All", and saves OUT.blend again.
`--frames` counts like `shotfield run --frames`: 0-based footage positions, END exclusive.

Exit codes: 0 saved; 1 the run or the import failed (the message says why; OUT.blend then holds the clip
only); 2 bad arguments.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `blender --python` does not add the script's folder
import blender_env  # noqa: E402

blender_env.use_temp_user_resources()

import bpy  # noqa: E402

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch_reconstruct.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("footage", type=Path, help="video file, image folder, or the first image of a sequence")
    parser.add_argument("out_blend", type=Path, help=".blend file to write")
    parser.add_argument("--job", type=Path, help="job folder (default: shotfield/<clip name>/ beside OUT.blend)")
    parser.add_argument("--outputs", default="camera",
                        help="comma-separated outputs: camera, depth, point_cache, tracks, layers, clean_plates "
                             "(default: camera); 'none' runs only ingest and flow")
    parser.add_argument("--stages", default="", help="backend stages instead of --outputs, e.g. ingest,flow,solve")
    parser.add_argument("--frames", help="START:END[:STEP], 0-based footage positions, END exclusive")
    parser.add_argument("--quality", choices=("preview", "final"), default="preview")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--long-side", type=int, default=0, help="working size long side in pixels")
    parser.add_argument("--backend", help="the `shotfield` command (default: the add-on preference's default)")
    parser.add_argument("--frame-start", type=int, default=1, help="scene frame of the shot's first frame")
    parser.add_argument("--no-ground", action="store_true", help="no shadow-catcher ground plane")
    return parser.parse_args(blender_env.script_args(argv))


def first_image(folder: Path) -> Path | None:
    """The first image of a folder, in the numeric order the backend uses."""
    key = lambda p: [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]  # noqa: E731
    images = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")), key=key)
    return images[0] if images else None


def load_clip(footage: Path):
    """FOOTAGE as a Movie Clip (Blender reads a numbered image series from its first file)."""
    path = first_image(footage) if footage.is_dir() else footage
    if path is None or not path.is_file():
        raise ValueError(f"{footage}: no video file or images there")
    clip = bpy.data.movieclips.load(str(path))
    if footage.is_dir():
        clip.name = footage.name if footage.name != "frames" else footage.parent.name
    return clip


def apply_frames(props, frames: str | None) -> None:
    """`--frames START:END[:STEP]` (backend counting) -> the panel's clip frame range (1-based, inclusive)."""
    if not frames:
        return
    parts = frames.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"--frames {frames!r}: expected START:END[:STEP]")
    start = int(parts[0] or 0)
    props.use_frame_range = True
    props.clip_frame_start = start + 1
    props.clip_frame_end = int(parts[1]) if parts[1] else 1_000_000
    props.clip_frame_step = int(parts[2]) if len(parts) == 3 and parts[2] else 1


def open_clip(scene, footage: Path, frames: str | None, tool: str) -> bool:
    """The footage as the scene's clip and the panel's, with `--frames` applied; False (said on stderr) when
    the footage or the range cannot be used."""
    props = scene.shotfield
    try:
        clip = load_clip(footage.resolve())
        apply_frames(props, frames)
    except ValueError as exc:
        print(f"{tool}: {exc}", file=sys.stderr)
        return False
    scene.active_clip = props.clip = clip
    return True


def run_and_import(module_name: str, out: Path, stages: str, frame_start: int, ground_plane: bool,
                   backend: str | None, tool: str) -> bool:
    """Save OUT.blend (`//` job folders are relative to it), run `stages` in the foreground as the panel's Run
    does, import the job and save again; False (the operators' error on stderr) when a stage or the import
    failed. The .blend is saved either way, so what was done is kept."""
    if backend:
        bpy.context.preferences.addons[module_name].preferences.backend_command = str(Path(backend).resolve())
    bpy.context.preferences.filepaths.save_version = 0  # no OUT.blend1 from saving twice
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out))
    try:
        bpy.ops.shotfield.run(stages=stages, blocking="ON")
        bpy.ops.shotfield.import_job(frame_start=frame_start, ground_plane=ground_plane)
    except RuntimeError as exc:  # the operators' ERROR reports
        print(f"{tool}: {str(exc).strip()}", file=sys.stderr)
        return False
    finally:
        bpy.ops.wm.save_mainfile()
    return True


def reconstruct(args) -> int:
    blender_env.reset_scene()
    with blender_env.addon_enabled() as module_name:
        scene = bpy.context.scene
        props = scene.shotfield
        if not open_clip(scene, args.footage, args.frames, "batch_reconstruct"):
            return 2
        if args.job:
            props.job_dir = str(args.job.resolve())
        outputs = [] if args.outputs.strip() == "none" else [o.strip() for o in args.outputs.split(",") if o.strip()]
        for name, *_ in blender_env.addon_module("properties").OUTPUTS:
            setattr(props, f"output_{name}", name in outputs)
        props.quality, props.device, props.long_side = args.quality, args.device, args.long_side
        props.scene_frame_start, props.ground_plane = args.frame_start, not args.no_ground
        props.import_when_done = False  # imported below, with its own report
        out = args.out_blend.resolve()
        if not run_and_import(module_name, out, args.stages, args.frame_start, not args.no_ground, args.backend,
                              "batch_reconstruct"):
            return 1
        collection = next(c for c in bpy.data.collections if c.get("shotfield_job"))
        print(f"batch_reconstruct: wrote {out} ({', '.join(o.name for o in collection.objects)})")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not args.footage.exists():
        print(f"batch_reconstruct: {args.footage}: no such file or folder", file=sys.stderr)
        return 2
    return reconstruct(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
