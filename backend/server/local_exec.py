"""Running a job on this machine: one child process of `shotfield run` (backend.server.child).

The child is the whole story of a job: it holds the job folder's lock, writes job.json and
progress.jsonl, and exits with `shotfield run`'s codes. Stopping it is SIGTERM to its process group
(the running stage is marked cancelled, finished stages stay). It runs in its own session, so a Ctrl-C
meant for the server's terminal never reaches it; the server stops it itself on the way out.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from backend.job import LOCK
from backend.runner import EXIT_FAILED, EXIT_SIGTERM

from .child import PARENT_ENV

KILL_AFTER = 60.0  # seconds a stopped child gets to mark its stage cancelled before SIGKILL
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # where `backend` is imported from


@dataclass
class RunRequest:
    """One run of `shotfield run` for a job."""

    job_dir: Path
    footage: Path
    options: list[str]                 # run options other than --stages (quality, device, ...)
    stages: list[str] | None           # None: every built stage
    log: Path                          # the child's stdout and stderr are appended here
    control: Path                      # a folder for control files (the cancel flag of Ray runs)
    device: str = "auto"               # the --device among `options` (Ray asks for GPUs by it)


@dataclass
class Outcome:
    exit_code: int
    message: str | None = None         # the end of the child's output, for errors that job.json does not hold


def run_arguments(request: RunRequest, stages: list[str] | None) -> list[str]:
    """`run FOOTAGE --job DIR ...`: the arguments of `shotfield run` for this request."""
    argv = ["run", str(request.footage), "--job", str(request.job_dir), "--no-progress", *request.options]
    return argv + (["--stages", ",".join(stages)] if stages else [])


def child_command(arguments: list[str]) -> list[str]:
    return [sys.executable, "-m", "backend.server.child", *arguments]


def child_env() -> dict:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, PARENT_ENV: str(os.getpid()),
            "PYTHONPATH": PACKAGE_PARENT + (os.pathsep + path if path else "")}


def log_tail(log: Path, since: int, lines: int = 6) -> str | None:
    try:
        with open(log, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace").strip()
    except OSError:
        return None
    return "\n".join(text.splitlines()[-lines:]) or None


def lock_holder(job_dir: Path) -> str | None:
    """The pid written in the job's lock while some process holds it, else None."""
    try:
        fd = os.open(job_dir / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
    finally:
        os.close(fd)
    return None


class LocalExecutor:
    """Runs jobs as child processes here; a pool of worker threads bounds how many at once."""

    def describe(self) -> str:
        """The compute device `shotfield run` sees here (from `shotfield --version`, in a child: the server
        itself never imports torch)."""
        try:
            out = subprocess.run([sys.executable, "-m", "backend", "--version"], capture_output=True, text=True,
                                 timeout=300, env=child_env()).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unknown ({exc})"
        return out.partition(" (")[2][:-1] or "unknown"

    def start(self, request: RunRequest) -> "LocalRun":
        return LocalRun(request)


@dataclass
class LocalRun:
    request: RunRequest
    _stop: threading.Event = field(default_factory=threading.Event)
    _proc: subprocess.Popen | None = None

    def wait(self) -> Outcome:
        """Blocking: waits for an earlier run that still holds the job (a killed server's orphan), then
        runs the child to its end. Call it from a thread that lives as long as the run."""
        req = self.request
        while (holder := lock_holder(req.job_dir)) is not None:
            if self._stop.wait(0.2):
                return Outcome(EXIT_SIGTERM, "cancelled before it started")
            _note(req.log, f"waiting for process {holder}, which still holds the job folder")
        if self._stop.is_set():
            return Outcome(EXIT_SIGTERM, "cancelled before it started")
        since = req.log.stat().st_size if req.log.exists() else 0
        with open(req.log, "ab") as log:
            try:
                self._proc = subprocess.Popen(child_command(run_arguments(req, req.stages)), stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, env=child_env(), start_new_session=True)
            except OSError as exc:
                return Outcome(EXIT_FAILED, f"could not start shotfield run: {exc}")
        if self._stop.is_set():
            self._signal(signal.SIGTERM)
        code = self._proc.wait()
        return Outcome(code, log_tail(req.log, since))

    def stop(self) -> None:
        """Ask the run to stop (SIGTERM: the running stage is marked cancelled); SIGKILL if it lingers."""
        self._stop.set()
        if self._proc is not None and self._proc.poll() is None:
            self._signal(signal.SIGTERM)
            threading.Thread(target=self._kill_later, daemon=True).start()

    def _kill_later(self) -> None:
        deadline = time.monotonic() + KILL_AFTER
        while self._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if self._proc.poll() is None:
            self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self._proc.pid, sig)
        except ProcessLookupError:
            pass


def _note(log: Path, text: str, _last: dict = {}) -> None:
    """A line in the job's server log, at most every 30 s per log."""
    now = time.monotonic()
    if now - _last.get(log, -1e9) < 30:
        return
    _last[log] = now
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"[server] {text}\n")
