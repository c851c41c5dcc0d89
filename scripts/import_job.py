"""Build a .blend from a Shotfield job folder, headless, with the add-on of this checkout.

    python scripts/import_job.py -- JOB_DIR OUT.blend                    (bpy as a Python module)
    blender -b --python-exit-code 1 --python scripts/import_job.py -- JOB_DIR OUT.blend

Starts from an empty factory scene, loads JOB_DIR/frames/ as a Movie Clip (if there are frames), runs
the add-on's importer for every output the job has (for now: the camera), and saves OUT.blend. Exits
with 1 and the importer's message when an import fails. Without `--python-exit-code 1`, `blender`
itself would exit with 0 after a failed script.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `blender --python` does not add the script's folder
import blender_env  # noqa: E402

blender_env.use_temp_user_resources()  # before bpy starts: keep the user's Blender preferences out of it

import bpy  # noqa: E402

# (output file inside the job folder, operator name): imported when the file exists. Later outputs
# (depth, points, tracks, layers, plates) add a line each.
IMPORTS = (
    ("camera/cameras.json", "import_camera"),
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    # Blender's own arguments come before "--" (`blender -b --python s.py -- ...`); ours after it.
    ours = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    parser = argparse.ArgumentParser(prog="import_job.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("job_dir", type=Path, help="Shotfield job folder")
    parser.add_argument("out_blend", type=Path, help=".blend file to write")
    parser.add_argument("--frame-start", type=int, default=1, help="scene frame of the job's first frame")
    return parser.parse_args(ours)


def load_frames_clip(job_dir: Path, name: str) -> bpy.types.MovieClip | None:
    """The job's working frames (frames/00000.png, 00001.png, ...) as an image-sequence Movie Clip.

    Loading the first file of a numbered series makes Blender read the whole series as one clip.
    """
    first = job_dir / "frames" / "00000.png"
    if not first.is_file():
        return None
    clip = bpy.data.movieclips.load(str(first))
    clip.name = name
    return clip


def import_job(job_dir: Path, out_blend: Path, frame_start: int = 1) -> None:
    """Raises RuntimeError with the importer's message (bpy.ops turns an operator's ERROR report into one)."""
    blender_env.reset_scene()
    with blender_env.addon_enabled():
        scene = bpy.context.scene
        scene.shotfield.job_dir = str(job_dir)
        clip = load_frames_clip(job_dir, job_dir.name)
        if clip is not None:
            scene.active_clip = clip  # the importers put it behind the camera
        for output, operator in IMPORTS:
            if (job_dir / output).is_file():
                getattr(bpy.ops.shotfield, operator)(job_dir=str(job_dir), frame_start=frame_start)
            else:
                print(f"import_job: no {output} in {job_dir}; skipped")
        out_blend.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(out_blend))
    print(f"import_job: wrote {out_blend}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    job_dir = args.job_dir.resolve()
    if not job_dir.is_dir():
        print(f"import_job: {job_dir}: no such job folder", file=sys.stderr)
        return 1
    try:
        import_job(job_dir, args.out_blend.resolve(), args.frame_start)
    except RuntimeError as exc:
        print(f"import_job: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
