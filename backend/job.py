"""A job folder on disk: its manifest, its lock, its log. The runner (runner.py) drives stages through it."""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from exporters import job_manifest

from .errors import JobFolderError

LOCK = ".job.lock"
LOG = "log.txt"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class Job:
    """An open job folder. `Job.open(path)` creates the folder if needed, checks it is writable, takes an
    exclusive lock (one process per job) and reads or starts the manifest."""

    def __init__(self, path: Path, manifest: dict, lock_fd: int):
        self.path = path
        self.manifest = manifest
        self._lock_fd = lock_fd

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Job":
        path = Path(path).expanduser().absolute()
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise JobFolderError(f"cannot write to the job folder {path} ({exc.strerror or exc}); "
                                 "choose a folder you can write to with --job") from exc
        lock_fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            other = os.pread(lock_fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(lock_fd)
            raise JobFolderError(f"the job {path} is being run by process {other}; wait for it or cancel it") from exc
        os.ftruncate(lock_fd, 0)
        os.pwrite(lock_fd, str(os.getpid()).encode(), 0)
        if (path / job_manifest.MANIFEST).exists():
            try:
                manifest = job_manifest.read_manifest(path)
            except job_manifest.JobFolderError as exc:
                os.close(lock_fd)
                raise JobFolderError(str(exc)) from exc
        else:
            manifest = job_manifest.new_manifest()
        return cls(path, manifest, lock_fd)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def save(self) -> None:
        job_manifest.write_manifest(self.path, self.manifest)

    def stage(self, name: str) -> dict:
        """The manifest record of a stage, created as 'pending' if new."""
        return self.manifest["stages"].setdefault(name, job_manifest.empty_stage_record())

    def progress(self, stage: str, fraction: float, message: str = "") -> None:
        job_manifest.append_progress(self.path, stage, fraction, message)

    def log(self, text: str) -> None:
        """Append to log.txt: the add-on's "open the log" button shows it."""
        with open(self.path / LOG, "a", encoding="utf-8") as f:
            f.write(f"[{now_iso()}] {text.rstrip()}\n")
