"""The `shotfield` command: run, render, track, status; serve (HTTP server) and submit (shots to a Ray cluster).

Exit codes (for farm managers): 0 success, 1 a stage failed (the message says why; job.json keeps it),
2 bad command line or settings, 130 cancelled by SIGINT, 143 cancelled by SIGTERM.
A cancelled or failed run is resumed by running the same command again.
"""
from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .device import DEVICES
from .rendering import RENDER_SOURCES
from .errors import JobFolderError, ShotfieldError
from .runner import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from .settings import LAYER_KINDS, QUALITIES, FrameRange, RunSettings
from .stages import STAGE_ORDER, registered_stages


class VersionAction(argparse.Action):
    """`--version` also reports the device torch sees: the add-on's "Check" button shows this line."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version and the compute device, then exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from .device import describe_devices

        print(f"shotfield {__version__} ({describe_devices()})")
        parser.exit()


def _gaps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(g) for g in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated frame gaps, e.g. 1,2,4") from exc


def _frame_numbers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(g) for g in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated frame numbers, e.g. 20 or 10,30") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shotfield", description="Reconstruct a shot for VFX compositing in Blender.")
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run stages on footage into a job folder (resumable)")
    run.add_argument("footage", nargs="?", help="video file, image folder or pattern (shot.%%04d.png); "
                     "optional when the job already has footage")
    run.add_argument("--job", required=True, help="job folder (created if missing)")
    run.add_argument("--stages", help=f"comma-separated stages (default: all built ones); order: {','.join(STAGE_ORDER)}")
    run.add_argument("--frames", help="source frame range START:END[:STEP], 0-based, END exclusive")
    run.add_argument("--quality", choices=QUALITIES, default="preview")
    run.add_argument("--device", choices=DEVICES, default="auto")
    run.add_argument("--long-side", type=int, help="working size long side in pixels (default 320 preview, 960 final)")
    run.add_argument("--fps", type=float, help="frame rate of an image sequence (default 24)")
    run.add_argument("--flow-gaps", type=_gaps, default=(1, 2, 4), help="frame gaps for optical flow (default 1,2,4)")
    run.add_argument("--remove", help="'moving' or a folder of masks: what the clean plates remove")
    run.add_argument("--effort", type=float, default=1.0,
                     help="scale of the learned stages' training (default 1; 0.25 for a quick look)")
    run.add_argument("--track-queries", help="JSON or .npy of [frame, x, y] rows to track besides the default grid")
    run.add_argument("--layer-reference", type=_frame_numbers, help="reference frame(s) of the layered meshes, e.g. 20 or "
                     "10,30 (default: the middle frame)")
    run.add_argument("--layer-kind", choices=LAYER_KINDS, default="mpi",
                     help="mpi: planes (default); msi: spheres, for wide or 360 footage")
    run.add_argument("--no-progress", action="store_true", help="no progress bar on the terminal")

    render = sub.add_parser("render", help="render RGB and depth at any cameras and times (from the field or "
                            "the layers)")
    render.add_argument("job")
    render.add_argument("--cameras", required=True, help="cameras.json-style file; an optional float 'time' per frame")
    render.add_argument("--out", required=True, help="folder for 00000.png, 00000.depth.exr, ...")
    render.add_argument("--source", choices=RENDER_SOURCES, default="field")
    render.add_argument("--device", choices=DEVICES, default="auto")

    track = sub.add_parser("track", help="track query points [frame, x, y] through the shot (needs the tracks stage)")
    track.add_argument("job")
    track.add_argument("--queries", required=True, help="a JSON list or .npy array of [frame, x, y] rows")
    track.add_argument("--out", required=True, help="the .npz to write (xy, visible, world, queries)")
    track.add_argument("--device", choices=DEVICES, default="auto")

    status = sub.add_parser("status", help="print a job's stages and their status")
    status.add_argument("job")
    status.add_argument("--json", action="store_true")
    _add_serve_parser(sub)
    _add_submit_parser(sub)
    return parser


def _add_serve_parser(sub) -> None:
    from .server.config import DEFAULT_ROOT

    serve = sub.add_parser("serve", help="serve jobs over HTTP: uploads, a job queue, progress, downloads "
                           "(needs the 'server' extra)")
    serve.add_argument("--root", default=DEFAULT_ROOT, help=f"the server's state folder (default {DEFAULT_ROOT})")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port, see ROOT/address)")
    serve.add_argument("--workers", type=int, help="jobs run at once (default 1 here, 32 in flight on Ray)")
    serve.add_argument("--max-upload-mb", type=float, default=20480, help="largest footage upload (default 20480)")
    serve.add_argument("--max-jobs", type=int, default=200, help="jobs kept on the server (default 200)")
    serve.add_argument("--rate-limit", type=float, default=50.0,
                       help="requests per second per client address (default 50; 0: no limit)")
    serve.add_argument("--ray", metavar="ADDRESS", help="run jobs on this Ray cluster; ROOT must be shared storage")
    serve.add_argument("--ray-gpus", type=float, help="GPUs per torch stage on Ray (default 1 if the cluster has GPUs)")
    serve.add_argument("--ssl-certfile", help="serve HTTPS with this certificate")
    serve.add_argument("--ssl-keyfile", help="... and this key")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument("--show-token", action="store_true", help="print the access token (made if missing) and exit")


def _add_submit_parser(sub) -> None:
    submit = sub.add_parser("submit", help="run shots as Ray tasks on a Ray cluster, one job folder per shot "
                            "(needs the 'server' extra)")
    submit.add_argument("footage", nargs="+", help="video files, image folders or patterns, one per shot")
    submit.add_argument("--ray", required=True, metavar="ADDRESS", help="Ray cluster address ('auto', HOST:PORT)")
    submit.add_argument("--jobs", required=True, help="folder for the job folders (shared storage the nodes see)")
    submit.add_argument("--stages", help="comma-separated stages (default: all built ones)")
    submit.add_argument("--frames", help="source frame range START:END[:STEP]")
    submit.add_argument("--quality", choices=QUALITIES, default="preview")
    submit.add_argument("--device", choices=DEVICES, default="auto")
    submit.add_argument("--long-side", type=int)
    submit.add_argument("--fps", type=float)
    submit.add_argument("--flow-gaps", type=_gaps)
    submit.add_argument("--remove")
    submit.add_argument("--ray-gpus", type=float, help="GPUs per torch stage (default 1 if the cluster has GPUs)")


def cmd_run(args) -> int:
    from .job import Job
    from .runner import run_job

    settings = RunSettings(quality=args.quality, device=args.device, long_side=args.long_side,
                           frames=FrameRange.parse(args.frames), fps=args.fps, flow_gaps=args.flow_gaps,
                           remove=args.remove, effort=args.effort, track_queries=args.track_queries,
                           layer_reference=args.layer_reference, layer_kind=args.layer_kind)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    with Job.open(args.job) as job:
        report = run_job(job, settings, stages, footage=args.footage, show_bar=not args.no_progress)
    for name in report.skipped:
        print(f"{name}: up to date, skipped", file=sys.stderr)
    if report.error:
        where = f"stage {report.failed}: " if report.failed and not report.error.startswith(report.failed) else ""
        print(f"shotfield: {where}{report.error}", file=sys.stderr)
    return report.exit_code


def cmd_render(args) -> int:
    from .rendering import render_command

    return render_command(args.job, args.cameras, args.out, args.source, args.device)


def cmd_track(args) -> int:
    from .tracking_command import track_command

    return track_command(args.job, args.queries, args.out, args.device)


def cmd_status(args) -> int:
    from exporters.job_manifest import read_manifest

    manifest = read_manifest(args.job)
    if args.json:
        print(json.dumps(manifest["stages"], indent=2))
        return EXIT_OK
    for name in registered_stages():
        rec = manifest["stages"].get(name, {"status": "pending"})
        secs = f"{rec['seconds']:.1f} s" if rec.get("seconds") is not None else ""
        print(f"{name:8} {rec['status']:9} {secs:>9}  {rec.get('error') or ''}")
    return EXIT_OK


def _server_command(module: str, function: str, args) -> int:
    """`serve` and `submit` live in backend.server, whose libraries (FastAPI, uvicorn, Ray) are an extra."""
    import importlib

    try:
        command = getattr(importlib.import_module(f".server.{module}", __package__), function)
    except ImportError as exc:
        print(f"shotfield {args.command}: {exc.name or exc} is missing; install the server extra: "
              "pip install 'shotfield[server]'", file=sys.stderr)
        return EXIT_USAGE
    return command(args)


def cmd_serve(args) -> int:
    return _server_command("serve", "serve_command", args)


def cmd_submit(args) -> int:
    return _server_command("submit", "submit_command", args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {"run": cmd_run, "render": cmd_render, "track": cmd_track, "status": cmd_status, "serve": cmd_serve, "submit": cmd_submit}[args.command](args)
    except JobFolderError as exc:  # unwritable, locked or unreadable job folder
        print(f"shotfield: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ShotfieldError as exc:  # bad settings, found before any stage ran
        print(f"shotfield: {exc}", file=sys.stderr)
        return EXIT_USAGE

if __name__ == "__main__":
    sys.exit(main())
