"""The job folder's manifest (`job.json`) and progress log (`progress.jsonl`). Standard library only.

The backend writes both; the add-on, the server and the benchmarks read them. `job.json`:

    {"format": "shotfield-job", "version": 1,
     "footage": {"source": str, "kind": "video" | "images"},
     "frames": {"start": int, "end": int | null, "step": int, "count": int, "source_indices": [int]},
     "fps": float, "working_size": [W, H], "source_size": [W, H],
     "settings": {...},                      # the run's settings (quality, device, long_side, ...)
     "stages": {name: {"status": "pending|running|done|failed|cancelled", "seconds": float | null,
                       "device": str | null, "error": str | null, "key": str | null,
                       "started": iso-time | null, "finished": iso-time | null}},
     "outputs": {name: relative path}}       # index of what the stages wrote

`progress.jsonl` holds one JSON object per line: {"time": unix seconds, "stage": str, "fraction": 0..1,
"message": str}.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .atomic import write_json

FORMAT = "shotfield-job"
VERSION = 1
MANIFEST = "job.json"
PROGRESS = "progress.jsonl"
STATUSES = ("pending", "running", "done", "failed", "cancelled")


class JobFolderError(RuntimeError):
    """A job folder is missing, unreadable or not a Shotfield job; the message says which and what to do."""


def new_manifest() -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "footage": None,
        "frames": None,
        "fps": None,
        "working_size": None,
        "source_size": None,
        "settings": {},
        "stages": {},
        "outputs": {},
    }


def empty_stage_record() -> dict:
    return {"status": "pending", "seconds": None, "device": None, "error": None, "key": None,
            "started": None, "finished": None}


def read_manifest(job_dir: str | os.PathLike) -> dict:
    """Read and check `job.json`. Raises JobFolderError with a plain message."""
    path = Path(job_dir) / MANIFEST
    if not path.is_file():
        raise JobFolderError(f"{path}: no job manifest here; run `shotfield run FOOTAGE --job {job_dir}` first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise JobFolderError(f"{path}: cannot read the job manifest ({exc}); delete the job folder and run again") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise JobFolderError(f"{path}: not a Shotfield job manifest (format is not {FORMAT!r})")
    if manifest.get("version", 0) > VERSION:
        raise JobFolderError(f"{path}: written by a newer Shotfield (version {manifest['version']}); update Shotfield")
    for name, record in manifest.get("stages", {}).items():
        if record.get("status") not in STATUSES:
            raise JobFolderError(f"{path}: stage {name!r} has an unknown status {record.get('status')!r}")
    return manifest


def write_manifest(job_dir: str | os.PathLike, manifest: dict) -> None:
    write_json(Path(job_dir) / MANIFEST, manifest)


def append_progress(job_dir: str | os.PathLike, stage: str, fraction: float, message: str = "") -> dict:
    """Append one progress line. A single short `write` in append mode, so readers never see half a line
    in practice; a torn last line is skipped by `read_progress` anyway."""
    event = {"time": time.time(), "stage": stage, "fraction": float(min(max(fraction, 0.0), 1.0)), "message": message}
    with open(Path(job_dir) / PROGRESS, "a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")
    return event


def read_progress(job_dir: str | os.PathLike, offset: int = 0) -> tuple[list[dict], int]:
    """Progress events written since byte `offset`, and the offset to pass next time (for polling).

    Only whole lines are consumed: a line still being written is left for the next call.
    """
    path = Path(job_dir) / PROGRESS
    if not path.is_file():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, offset + end
