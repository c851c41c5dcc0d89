"""`shotfield track JOB --queries Q --out OUT.npz`: tracks for any query points from the trained model of the
job's `tracks` stage (tracks/model.pt), forwards and backwards through the shot.

Q is a JSON list or .npy array of [frame, x, y] rows (job frame index, working-frame pixels). OUT.npz is
exporters/tracks_npz.py's format (queries, xy, visible, world). Exit codes: 0 written; 1 the job has no
trained tracks stage (run it) or tracking failed; 2 a bad queries file.
"""
from __future__ import annotations

import sys
from pathlib import Path

from exporters.tracks_npz import Tracks, TracksFileError, read_queries, write_tracks

from .device import resolve_device
from .errors import ShotfieldError
from .runner import EXIT_FAILED, EXIT_OK, EXIT_USAGE

CHECKPOINT = Path("tracks") / "model.pt"


def track_command(job: str, queries_path: str, out: str, device: str = "auto") -> int:
    job_dir = Path(job)
    checkpoint = job_dir / CHECKPOINT
    if not checkpoint.is_file():
        print(f"shotfield track: {job_dir} has no trained tracker ({CHECKPOINT}); run the tracks stage first: "
              f"shotfield run FOOTAGE --job {job_dir} --stages tracks", file=sys.stderr)
        return EXIT_FAILED
    from .tracks import query          # torch: imported only once there is something to track
    from .tracks.model import load_checkpoint

    try:
        resolved = resolve_device(device)
        model, _ = load_checkpoint(checkpoint, resolved)
    except (ShotfieldError, ValueError, OSError, RuntimeError, KeyError) as exc:
        print(f"shotfield track: cannot load {checkpoint}: {exc}; run the tracks stage again", file=sys.stderr)
        return EXIT_FAILED
    g = model.geometry
    try:
        queries = read_queries(queries_path, model.config.frames, g.width, g.height)
    except TracksFileError as exc:
        print(f"shotfield track: {exc}", file=sys.stderr)
        return EXIT_USAGE
    xy, visible, world = query.track(model, queries, resolved)
    write_tracks(out, Tracks(queries, xy, visible, world))
    print(f"shotfield track: {len(queries)} point(s) over {model.config.frames} frames -> {out}")
    return EXIT_OK
