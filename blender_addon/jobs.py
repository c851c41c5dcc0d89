"""Backend processes on this computer: start, watch, cancel, re-attach, and never leave one orphaned.

Standard library only (no bpy): `monitor.py` drives these from Blender's main thread, the batch scripts
and tests call them directly.

- A run is `shotfield run ...` started with `start_new_session=True`: its own process group, so Ctrl-C in
  Blender's terminal does not reach it, and cancelling reaches whatever it started (a wrapper script's
  children too). Its stdout and stderr go to a file in the job folder (`OUTPUT_FILE`), never to a pipe
  that nobody drains: the backend's one-line error for bad settings is there.
- Cancel sends SIGTERM: the backend marks the running stage `cancelled`, keeps every finished stage and
  exits with 143. A process still alive `KILL_AFTER` seconds later gets SIGKILL (a stage stuck in native
  code); the stage then stays `running` in job.json and the next run redoes it.
- Every process this module started is registered; `terminate_all()` (called at exit, when another file
  is loaded and when the add-on is disabled) stops them, so closing Blender or the file leaves none behind.
- Re-attaching: the backend holds an exclusive `flock` on `JOB/.job.lock` and writes its PID there. A job
  whose lock is held by a live process is running (started from another Blender session, a terminal or a
  farm); `reattach()` watches it by PID without owning it.
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

LOCK_FILE = ".job.lock"          # backend/job.py: flock + PID
OUTPUT_FILE = ".shotfield_output.txt"
KILL_AFTER = 10.0                # seconds between SIGTERM and SIGKILL
POSIX = os.name == "posix"


class StartFailed(RuntimeError):
    """The backend could not be started; the message says what to fix."""


@dataclass
class LocalRun:
    """A backend process for one job folder: ours (`process` set) or re-attached (watched by PID only)."""

    job_dir: Path
    pid: int
    started: float                              # time.time()
    process: subprocess.Popen | None = None
    command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    finished: bool = False
    cancel_sent: float | None = None

    @property
    def owned(self) -> bool:
        return self.process is not None

    def poll(self) -> bool:
        """True once the process has ended (then `exit_code` is its code, or None if not ours). Escalates a
        cancel to SIGKILL after KILL_AFTER seconds."""
        if self.finished:
            return True
        if self.process is not None:
            code = self.process.poll()
            if code is not None:
                self.exit_code, self.finished = code, True
        elif not pid_alive(self.pid):
            self.finished = True
        if self.finished:
            _running.pop(str(self.job_dir), None)
        elif self.cancel_sent is not None and time.time() - self.cancel_sent > KILL_AFTER:
            self._signal(signal.SIGKILL if POSIX else signal.SIGTERM)
        return self.finished

    def cancel(self) -> None:
        """Ask the backend to stop (SIGTERM); `poll()` reports when it has."""
        if self.finished or self.cancel_sent is not None:
            return
        self.cancel_sent = time.time()
        self._signal(signal.SIGTERM)

    def wait(self, timeout: float) -> bool:
        """Poll until the process ended or `timeout` seconds passed; True if it ended."""
        deadline = time.time() + timeout
        while not self.poll():
            if time.time() > deadline:
                return False
            time.sleep(0.05)
        return True

    def output_tail(self, limit: int = 4000) -> str:
        """The last `limit` characters of what the process printed (only for runs this module started)."""
        path = self.job_dir / OUTPUT_FILE
        try:
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - limit))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _signal(self, sig: int) -> None:
        try:
            if self.process is not None and POSIX:
                os.killpg(self.pid, sig)   # the whole group: start_new_session made the PID its id
            elif self.process is not None:
                self.process.terminate()
            else:
                os.kill(self.pid, sig)     # not ours: its group may be a terminal's
        except (ProcessLookupError, PermissionError):
            pass


# job folder (str) -> the run watching it. Only processes still running are here.
_running: dict[str, LocalRun] = {}


def running(job_dir: str | os.PathLike) -> LocalRun | None:
    run = _running.get(str(Path(job_dir)))
    if run is not None and run.poll():
        return None
    return run


def start(argv: list[str], job_dir: str | os.PathLike, env: dict | None = None) -> LocalRun:
    """Start `argv` (a `shotfield run` command line) for `job_dir`. Raises StartFailed."""
    job_dir = Path(job_dir)
    if running(job_dir) is not None:
        raise StartFailed(f"a run for {job_dir} is already going; cancel it first")
    other = lock_holder(job_dir)
    if other is not None:
        raise StartFailed(f"the job {job_dir} is being run by process {other} (another Blender or a terminal); "
                          "re-attach to follow it, or wait for it")
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        output = open(job_dir / OUTPUT_FILE, "wb")
    except OSError as exc:
        raise StartFailed(f"cannot write to the job folder {job_dir} ({exc.strerror or exc}); choose another") from exc
    kwargs = {"start_new_session": True} if POSIX else {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
    try:
        with output:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                       env=env, close_fds=True, **kwargs)
    except FileNotFoundError as exc:
        raise StartFailed(f"the backend command {argv[0]!r} was not found; set \"Backend command\" in the "
                          "add-on preferences to the `shotfield` of the backend's environment") from exc
    except PermissionError as exc:
        raise StartFailed(f"the backend command {argv[0]!r} cannot be run (not executable)") from exc
    except OSError as exc:
        raise StartFailed(f"the backend command {argv[0]!r} failed to start: {exc}") from exc
    run = LocalRun(job_dir, process.pid, time.time(), process, list(argv))
    _running[str(job_dir)] = run
    return run


def reattach(job_dir: str | os.PathLike) -> LocalRun | None:
    """Watch the process that is running `job_dir` now (started anywhere), or None if none is."""
    job_dir = Path(job_dir)
    current = running(job_dir)
    if current is not None:
        return current
    pid = lock_holder(job_dir)
    if pid is None:
        return None
    try:
        started = (job_dir / LOCK_FILE).stat().st_mtime  # the backend writes its PID when it starts
    except OSError:
        started = time.time()
    run = LocalRun(job_dir, pid, started)
    _running[str(job_dir)] = run
    return run


def lock_holder(job_dir: str | os.PathLike) -> int | None:
    """The PID of the process holding the job's lock, or None if nobody does.

    The PID in the file may be stale (a crashed run) or reused by an unrelated process, so a live PID is
    confirmed by trying the lock: only a lock we cannot take is held. (That probe holds the lock for
    microseconds; a backend starting in exactly that moment would report the job as busy.)
    """
    path = Path(job_dir) / LOCK_FILE
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    if not text.isdigit() or not pid_alive(int(text)):
        return None
    if not POSIX:
        return int(text)
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return int(text)
    except OSError:
        return None
    finally:
        os.close(fd)  # also releases a lock we took
    return None


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie, ended but not yet reaped, is not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
            return state not in (b"Z", b"X")
        except (OSError, IndexError):
            return False
    return True


def terminate_all(timeout: float = 3.0) -> list[int]:
    """Stop every process this module started (SIGTERM, then SIGKILL after `timeout` seconds in all); returns
    their PIDs. Re-attached runs belong to someone else and are only forgotten."""
    ours = [run for run in _running.values() if run.owned and not run.poll()]
    for run in ours:
        run.cancel()
    deadline = time.time() + timeout
    for run in ours:
        if not run.wait(max(0.0, deadline - time.time())):
            run._signal(signal.SIGKILL if POSIX else signal.SIGTERM)
            run.wait(1.0)
    _running.clear()
    return [run.pid for run in ours]


atexit.register(terminate_all)
