"""The bounded worker pool: `slots` threads take jobs from one FIFO queue and run them through an executor
(local child processes, or Ray tasks). On this machine the default is one slot: one GPU job at a time,
the rest wait in the queue.

A record's state follows the run's exit code (`shotfield run`'s codes): 0 done, 130/143 cancelled,
anything else failed, with the failed stage's message from job.json. When the server shuts down it stops
the runs and leaves their records `queued`: the next start runs them again, and `shotfield run` skips
every stage that had finished.
"""
from __future__ import annotations

import threading
import time
from collections import deque

from exporters import job_manifest

from .jobs import FINISHED, JobRecord, JobStore
from .jobspec import JobSettings
from .local_exec import Outcome, RunRequest

CANCEL_CODES = (130, 143)


class JobQueue:
    def __init__(self, store: JobStore, executor, slots: int):
        self.store, self.executor, self.slots = store, executor, slots
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._running: dict[str, object] = {}
        self._cancelled: set[str] = set()
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def start(self) -> int:
        """Queue every job that was queued or running when the server last stopped; start the workers."""
        resumed = 0
        for record in self.store.all():
            if record.state in ("queued", "running"):
                self.store.update(record, state="queued")
                self._queue.append(record.id)
                resumed += 1
        for i in range(self.slots):
            thread = threading.Thread(target=self._work, name=f"shotfield-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return resumed

    def submit(self, record: JobRecord) -> None:
        with self._cond:
            self._queue.append(record.id)
            self._cond.notify()

    def position(self, job_id: str) -> int | None:
        """0 for the next job to start; None when the job is not waiting."""
        with self._cond:
            try:
                return self._queue.index(job_id)
            except ValueError:
                return None

    def is_running(self, job_id: str) -> bool:
        return job_id in self._running

    def cancel(self, record: JobRecord) -> None:
        """A queued job is cancelled at once; a running one is asked to stop (its state follows)."""
        with self._cond:
            if record.id in self._queue:
                self._queue.remove(record.id)
                self.store.update(record, state="cancelled", error="cancelled before it started", finished=time.time())
                return
            run = self._running.get(record.id)
            if run is not None:
                self._cancelled.add(record.id)
        if run is not None:
            run.stop()

    def wait_idle(self, job_id: str, timeout: float) -> bool:
        """Wait until the job is neither queued nor running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while job_id in self._running or job_id in self._queue:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    def resume(self, record: JobRecord) -> None:
        """Run a failed or cancelled job again: finished stages are skipped."""
        self.store.update(record, state="queued", error=None, exit_code=None, finished=None)
        self.submit(record)

    def shutdown(self, timeout: float = 90.0) -> None:
        """Stop the workers and the runs; the runs' records stay queued so a restart resumes them."""
        with self._cond:
            self._stopping = True
            runs = list(self._running.values())
            self._cond.notify_all()
        for run in runs:
            run.stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job_id = self._queue.popleft()
                try:
                    record = self.store.get(job_id)
                except Exception:  # deleted while it waited
                    continue
                self.store.update(record, state="running", started=time.time(), finished=None, error=None,
                                  exit_code=None, runs=record.runs + 1)
                run = self.executor.start(self.request(record))
                self._running[job_id] = run
            try:
                outcome = run.wait()
            except Exception as exc:  # an executor bug or a lost cluster: the job fails, the worker lives on
                outcome = Outcome(1, f"the server could not run the job: {type(exc).__name__}: {exc}")
            with self._cond:
                self._running.pop(job_id, None)
                cancelled = job_id in self._cancelled
                self._cancelled.discard(job_id)
                stopping = self._stopping
                self._finish(record, outcome, cancelled, stopping)
                self._cond.notify_all()

    def request(self, record: JobRecord) -> RunRequest:
        settings = JobSettings(**record.settings)
        stages = settings.stages
        options = JobSettings(**{**record.settings, "stages": None}).run_options()
        folder = self.store.folder(record.id)
        return RunRequest(self.store.job_dir(record.id), self.store.footage_path(record), options, stages,
                          self.store.log_path(record.id), folder, settings.device)

    def _finish(self, record: JobRecord, outcome: Outcome, cancelled: bool, stopping: bool) -> None:
        code, now = outcome.exit_code, time.time()
        if stopping and not cancelled:
            state, error = "queued", None  # the server is going down: the next start resumes it
        elif code == 0:
            state, error = "done", None
        elif cancelled or code in CANCEL_CODES:
            state, error = "cancelled", "cancelled" + ("" if cancelled else f" (exit code {code})")
        else:
            state, error = "failed", self._failure(record, outcome)
        assert state in FINISHED or state == "queued"
        self.store.update(record, state=state, error=error, exit_code=code, finished=None if state == "queued" else now)

    def _failure(self, record: JobRecord, outcome: Outcome) -> str:
        """The failed stage's own message (job.json), else the end of the run's output."""
        try:
            stages = job_manifest.read_manifest(self.store.job_dir(record.id))["stages"]
        except job_manifest.JobFolderError:
            stages = {}
        for name, rec in stages.items():
            if rec.get("status") == "failed" and rec.get("error"):
                return f"{name}: {rec['error']}"
        tail = (outcome.message or "").strip().splitlines()
        return tail[-1] if tail else f"shotfield run exited with code {outcome.exit_code}"
