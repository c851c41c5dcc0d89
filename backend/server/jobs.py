"""Jobs on the server: a record per job (`jobs/ID/server.json`) beside the job folder it runs.

The record holds what the job folder cannot: the uploaded name, the client's settings and the job's
state in the queue (queued | running | done | failed | cancelled). Everything about the stages comes
from the job folder's own job.json, so the two never disagree. A server that starts re-reads every
record; jobs that were queued or running go back into the queue (pool.py).
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from exporters import job_manifest
from exporters.atomic import write_json

from .archive import remove_tree
from .config import ServerConfig
from .errors import ApiError
from .names import is_id, new_id

RECORD = "server.json"
STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = frozenset({"done", "failed", "cancelled"})


@dataclass
class JobRecord:
    id: str
    name: str                  # the uploaded footage's name
    footage: str               # inside jobs/ID/footage/: the video file or "footage" (image folder)
    settings: dict             # jobspec.JobSettings as plain values
    created: float
    footage_info: dict = field(default_factory=dict)
    state: str = "queued"
    error: str | None = None
    exit_code: int | None = None
    started: float | None = None
    finished: float | None = None
    runs: int = 0              # how many times a run started (a restart resumes: one more)


class JobStore:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.root = config.jobs
        self._records: dict[str, JobRecord] = {}
        self._lock = threading.Lock()
        self._manifests: dict[str, tuple[tuple, dict]] = {}

    # -- folders ------------------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def job_dir(self, job_id: str) -> Path:
        """The Shotfield job folder (what `shotfield run --job` gets, and what downloads hold)."""
        return self.root / job_id / "job"

    def footage_path(self, record: JobRecord) -> Path:
        return self.root / record.id / "footage" / record.footage

    def log_path(self, job_id: str) -> Path:
        return self.root / job_id / "server.log"

    # -- records ------------------------------------------------------------------------------------
    def load(self) -> list[JobRecord]:
        """Read every record on disk (at start); unreadable ones are reported and left alone."""
        for folder in sorted(self.root.iterdir()):
            if not is_id(folder.name):
                continue
            try:
                record = JobRecord(**json.loads((folder / RECORD).read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as exc:
                print(f"shotfield serve: skipping {folder} ({exc})", flush=True)
                continue
            self._records[record.id] = record
        return self.all()

    def all(self) -> list[JobRecord]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: r.created)

    def find(self, job_id: str) -> JobRecord | None:
        return self._records.get(job_id) if is_id(job_id) else None

    def get(self, job_id: str) -> JobRecord:
        record = self.find(job_id)
        if record is None:
            raise ApiError(404, f"no job {job_id!r} on this server")
        return record

    def create(self, name: str, footage: str, footage_info: dict, settings: dict) -> JobRecord:
        """A new record and its folders; the caller moves the footage into footage_path()."""
        with self._lock:
            if len(self._records) >= self.config.max_jobs:
                raise ApiError(429, f"this server holds {len(self._records)} jobs, its limit; delete finished "
                                    "jobs first (DELETE /v1/jobs/ID)")
            record = JobRecord(new_id(), name, footage, settings, time.time(), footage_info)
            (self.root / record.id).mkdir(mode=0o700)
            (self.root / record.id / "job").mkdir()
            self._records[record.id] = record
        self.save(record)
        return record

    def update(self, record: JobRecord, **changes) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(record, key, value)
        self.save(record)

    def save(self, record: JobRecord) -> None:
        if (self.root / record.id).is_dir():
            write_json(self.root / record.id / RECORD, asdict(record))

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._records.pop(job_id, None)
            self._manifests.pop(job_id, None)
        remove_tree(self.folder(job_id))

    # -- what clients see ---------------------------------------------------------------------------
    def stages(self, job_id: str) -> dict:
        """The job.json stage records, re-read only when the file changed (status polls are frequent)."""
        path = self.job_dir(job_id) / job_manifest.MANIFEST
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return {}
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._manifests.get(job_id)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            stages = job_manifest.read_manifest(path.parent).get("stages", {})
        except job_manifest.JobFolderError:
            return cached[1] if cached else {}
        self._manifests[job_id] = (stamp, stages)
        return stages

    def status(self, record: JobRecord, queue_position: int | None = None) -> dict:
        return {"id": record.id, "name": record.name, "state": record.state, "error": record.error,
                "stages": self.stages(record.id), "settings": record.settings, "footage": record.footage_info,
                "created": record.created, "started": record.started, "finished": record.finished,
                "queue_position": queue_position, "runs": record.runs}
