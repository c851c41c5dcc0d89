"""Runs on a `shotfield serve` server: upload the footage, start the job, follow its progress, download the
job folder. Standard library only (no bpy), over `remote.ShotfieldServer`.

HTTP calls block (an upload can take minutes), so a run talks to the server from its own thread and hands
progress events and its outcome to Blender's main thread through a lock-protected list; only the main
thread (monitor.py) touches Blender data. The server job's id is written to `JOB/SERVER_FILE`, so a run
can be re-attached from its folder after Blender was closed. Cancel asks the server to stop; what the
server finished is still downloaded, so finished stages stay usable.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from .progress import Outcome

SERVER_FILE = ".shotfield_server.json"
POLL_SECONDS = 1.0
FINAL_STATES = ("done", "failed", "cancelled")


def server_module():
    """`remote.py` (the HTTP client), or None when this build of the add-on has no server support."""
    try:
        from . import remote
    except ImportError:
        return None
    return remote


class RemoteRun:
    """One job on a server, driven from a worker thread. Same surface as jobs.LocalRun for the monitor:
    `poll()`, `cancel()`, `events()`, `outcome()`, `job_dir`, `started`."""

    def __init__(self, server, job_dir: str | os.PathLike, footage: str | None = None, settings: dict | None = None,
                 job_id: str | None = None):
        self.server, self.job_dir = server, Path(job_dir)
        self.footage, self.settings, self.job_id = footage, settings or {}, job_id
        self.started = time.time()
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self._outcome: Outcome | None = None
        self._cancel = threading.Event()
        self._stop = threading.Event()     # stop following (file closed); the server job goes on
        self._thread = threading.Thread(target=self._work, name=f"shotfield-remote-{self.job_dir.name}", daemon=True)
        self._thread.start()

    # --- main thread -------------------------------------------------------------------------------------
    def poll(self) -> bool:
        with self._lock:
            return self._outcome is not None

    def events(self) -> list[dict]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def outcome(self) -> Outcome:
        with self._lock:
            return self._outcome or Outcome("failed", "still running")

    def cancel(self) -> None:
        self._cancel.set()

    def detach(self) -> None:
        """Stop following; the job goes on on the server and can be re-attached."""
        self._stop.set()

    def wait(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return self.poll()

    # --- worker thread -----------------------------------------------------------------------------------
    def _push(self, stage: str, fraction: float, message: str) -> None:
        with self._lock:
            self._events.append({"time": time.time(), "stage": stage, "fraction": fraction, "message": message})

    def _reporter(self, stage: str, message: str):
        """An `on_progress(done_bytes, total_bytes)` callback that becomes progress events (at most 1 per %)."""
        last = [-1]

        def report(done: int, total: int) -> None:
            fraction = done / total if total else 0.0
            if int(fraction * 100) != last[0]:
                last[0] = int(fraction * 100)
                self._push(stage, fraction, f"{message} ({done / 1e6:.0f} of {total / 1e6:.0f} MB)")
        return report

    def _remember(self) -> None:
        """Write the server job's id into the job folder, so the run can be re-attached from there."""
        self.job_dir.mkdir(parents=True, exist_ok=True)
        (self.job_dir / SERVER_FILE).write_text(json.dumps({"url": getattr(self.server, "url", ""), "job_id": self.job_id}))

    def _finish(self, outcome: Outcome) -> None:
        with self._lock:
            self._outcome = outcome

    def _work(self) -> None:
        remote = server_module()
        error_type = getattr(remote, "ServerError", Exception)
        try:
            if self.job_id is None:
                self._push("upload", 0.0, "uploading the footage")
                upload_id = self.server.upload(self.footage, on_progress=self._reporter("upload", "uploading the footage"))
                if self._cancel.is_set():
                    return self._finish(Outcome("cancelled", "Cancelled before the server started the job."))
                self.job_id = self.server.create_job(upload_id, self.settings)
                self._remember()
            state = self._follow()
            if state is None:
                return self._finish(Outcome("failed", "Stopped following the server job; re-attach to go on."))
            self._push("download", 0.0, "downloading the results")
            self.server.download(self.job_id, str(self.job_dir),
                                 on_progress=self._reporter("download", "downloading the results"))
            self._remember()  # the download replaced the folder
            self._push("download", 1.0, "done")
            status = state
            if status["state"] == "done":
                self._finish(Outcome("done"))
            elif status["state"] == "cancelled":
                self._finish(Outcome("cancelled", "Cancelled on the server. Finished stages were downloaded: "
                                                  "Run again to go on."))
            else:
                self._finish(Outcome("failed", status.get("error") or "The server job failed; open the log."))
        except error_type as exc:
            self._finish(Outcome("failed", f"Server: {exc}"))
        except Exception as exc:  # noqa: BLE001 - a thread must hand every failure to the main thread
            self._finish(Outcome("failed", f"Server run failed: {type(exc).__name__}: {exc}"))

    def _follow(self) -> dict | None:
        """Poll progress and status until the job ends; its final status, or None when told to stop."""
        offset, cancel_sent = 0, False
        while not self._stop.is_set():
            events, offset = self.server.progress(self.job_id, offset)
            with self._lock:
                self._events.extend(events)
            status = self.server.status(self.job_id)
            if status.get("state") in FINAL_STATES:
                return status
            if status.get("state") == "queued" and not events:
                where = status.get("queue_position")
                self._push("queue", 0.0, "waiting on the server" + (f" (position {where})" if where is not None else ""))
            if self._cancel.is_set() and not cancel_sent:
                self.server.cancel(self.job_id)
                cancel_sent = True
            self._stop.wait(POLL_SECONDS)
        return None


def saved_server_job(job_dir: str | os.PathLike) -> dict | None:
    """{"url", "job_id"} of the server job last started for this folder, if any."""
    try:
        data = json.loads((Path(job_dir) / SERVER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("job_id") else None
