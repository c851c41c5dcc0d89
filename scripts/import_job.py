"""Build a .blend from a Shotfield job folder, headless, with the add-on of this checkout.

    python scripts/import_job.py -- JOB_DIR OUT.blend [--frame-start N] [--no-ground] [--outputs camera,points]
    blender -b --python-exit-code 1 --python scripts/import_job.py -- JOB_DIR OUT.blend

Starts from an empty factory scene and runs the add-on's "Import All" (`shotfield.import_job`): the
footage as a Movie Clip, the camera with the clip as its background, the point cloud and the ground plane,
whatever the job has, in a collection named after the shot; then saves OUT.blend. Exits with 1 and the
importer's message when an import fails. Without `--python-exit-code 1`, `blender` itself would exit with 0
after a failed script.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `blender --python` does not add the script's folder
import blender_env  # noqa: E402

blender_env.use_temp_user_resources()  # before bpy starts: keep the user's Blender preferences out of it

import bpy  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="import_job.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("job_dir", type=Path, help="Shotfield job folder")
    parser.add_argument("out_blend", type=Path, help=".blend file to write")
    parser.add_argument("--frame-start", type=int, default=1, help="scene frame of the job's first frame")
    parser.add_argument("--no-ground", action="store_true", help="no shadow-catcher ground plane")
    parser.add_argument("--outputs", help="comma-separated outputs to import (default: everything the job has)")
    return parser.parse_args(blender_env.script_args(argv))


def report_skipped(job_dir: Path, prefix: str = "import_job") -> None:
    """Say which outputs the job does not have (yet)."""
    importers = blender_env.addon_module("importers")
    job = importers.read_job_folder(job_dir)
    for module in importers.IMPORTERS:
        if not module.available(job):
            missing = getattr(module, "FILE", getattr(module, "FIRST_FRAME", module.NAME))
            print(f"{prefix}: no {missing} in {job_dir}; skipped")


def import_job(job_dir: Path, out_blend: Path, frame_start: int = 1, ground: bool = True, outputs=None) -> None:
    """Raises RuntimeError with the importer's message (bpy.ops turns an operator's ERROR report into one)."""
    blender_env.reset_scene()
    with blender_env.addon_enabled():
        bpy.context.scene.shotfield.job_dir = str(job_dir)
        report_skipped(job_dir)
        bpy.ops.shotfield.import_job(directory=str(job_dir), frame_start=frame_start, ground_plane=ground,
                                     outputs=set(outputs or ()))
        out_blend.parent.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(out_blend))
    print(f"import_job: wrote {out_blend}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    job_dir = args.job_dir.resolve()
    if not job_dir.is_dir():
        print(f"import_job: {job_dir}: no such job folder", file=sys.stderr)
        return 1
    outputs = [o.strip() for o in args.outputs.split(",") if o.strip()] if args.outputs else None
    try:
        import_job(job_dir, args.out_blend.resolve(), args.frame_start, not args.no_ground, outputs)
    except RuntimeError as exc:
        print(f"import_job: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
