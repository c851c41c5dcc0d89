"""Runs stages on a job: decides what to skip, records status/seconds/device/error, handles cancel.

Resumability: each stage's key is a hash of its version, the settings it depends on, the keys of the
stages it reads and its own extra inputs (e.g. the footage files). A stage whose record says `done` with the
same key, and whose outputs exist, is skipped. Cancellation: SIGINT/SIGTERM raise `Cancelled` inside the
running stage; it is marked `cancelled`, and everything finished before stays as it was (outputs are only
ever published by atomic renames).
"""
from __future__ import annotations

import hashlib
import json
import signal
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .device import resolve_device
from .errors import Cancelled, ShotfieldError
from .job import Job, now_iso
from .settings import RunSettings
from .stages import Stage, registered_stages
from .terminal import StageBar

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


@dataclass
class StageContext:
    """What a stage gets: the job, the settings, its device and a progress callback."""

    job: Job
    settings: RunSettings
    stage: Stage
    device: str = "cpu"
    footage: str | None = None
    scratch: dict = field(default_factory=dict)
    """Per-run memo a stage's fingerprint and run share (e.g. the probed footage)."""
    _bar: StageBar | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.job.path

    def progress(self, fraction: float, message: str = "") -> None:
        self.job.progress(self.stage.name, fraction, message)
        if self._bar is not None:
            self._bar.update(fraction, message)


@dataclass
class RunReport:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: str | None = None
    error: str | None = None
    exit_code: int = EXIT_OK


def plan_stages(requested: list[str] | None, job: Job) -> list[Stage]:
    """The requested stages plus any prerequisite not yet done, in run order."""
    stages = registered_stages()
    if requested is None:
        wanted = set(stages)
    else:
        unknown = [n for n in requested if n not in stages]
        if unknown:
            raise ShotfieldError(f"--stages: unknown or not yet built stage(s) {', '.join(unknown)}; "
                                 f"available: {', '.join(stages)}")
        wanted = set(requested)
    changed = True
    while changed:  # close over prerequisites that have not finished
        changed = False
        for name in list(wanted):
            for dep in stages[name].requires:
                if dep not in wanted and job.stage(dep)["status"] != "done":
                    wanted.add(dep)
                    changed = True
    return [s for n, s in stages.items() if n in wanted]


def stage_key(ctx: StageContext) -> str:
    stage, job = ctx.stage, ctx.job
    settings = ctx.settings.to_json()
    payload = {
        "stage": stage.name,
        "version": stage.version,
        "settings": {f: settings[f] for f in stage.settings_fields},
        "inputs": {dep: job.stage(dep)["key"] for dep in stage.requires},
        "extra": stage.fingerprint(ctx) if stage.fingerprint else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@contextmanager
def cancel_on_signals():
    """Turn SIGINT/SIGTERM into `Cancelled` for the duration of a run (main thread only)."""
    def handler(signum, _frame):
        raise Cancelled(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_job(job: Job, settings: RunSettings, stages: list[str] | None = None,
            footage: str | None = None, show_bar: bool = True) -> RunReport:
    report = RunReport()
    job.manifest["settings"] = settings.to_json()
    try:
        # Planning imports every stage module first. Native libraries may install signal handlers of their
        # own when imported (pycolmap's glog aborts the process on SIGTERM), so ours go in afterwards.
        plan = plan_stages(stages, job)
    except ShotfieldError as exc:
        report.exit_code, report.error = EXIT_USAGE, str(exc)
        job.save()
        return report
    with cancel_on_signals():
        try:
            for stage in plan:
                ctx = StageContext(job, settings, stage, footage=footage)
                if not _run_one(ctx, report, show_bar):
                    break
        except Cancelled as exc:  # a signal between stages
            report.exit_code = EXIT_SIGTERM if exc.signal_name == "SIGTERM" else EXIT_SIGINT
            report.error = str(exc)
        finally:
            job.save()
    return report


def _run_one(ctx: StageContext, report: RunReport, show_bar: bool) -> bool:
    """Run or skip one stage; False stops the run."""
    job, stage = ctx.job, ctx.stage
    record = job.stage(stage.name)
    try:
        key = stage_key(ctx)
    except ShotfieldError as exc:
        return _fail(ctx, record, report, str(exc), started=time.monotonic())
    if record["status"] == "done" and record["key"] == key and all((job.path / o).exists() for o in stage.outputs):
        report.skipped.append(stage.name)
        job.progress(stage.name, 1.0, "up to date, skipped")
        return True
    started = time.monotonic()
    record.update(status="running", key=None, error=None, seconds=None, started=now_iso(), finished=None, device=None)
    try:
        ctx.device = resolve_device(ctx.settings.device) if stage.uses_torch else "cpu"
        record["device"] = ctx.device
        job.save()
        job.log(f"{stage.name}: started (key {key}, device {ctx.device})")
        ctx.progress(0.0, "started")
        with StageBar(stage.name, enabled=show_bar) as bar:
            ctx._bar = bar
            outputs = stage.run(ctx) or {}
    except Cancelled as exc:
        record.update(status="cancelled", error=str(exc), seconds=round(time.monotonic() - started, 3), finished=now_iso())
        job.log(f"{stage.name}: {exc}")
        job.progress(stage.name, 0.0, str(exc))
        report.failed, report.error = stage.name, f"{stage.name}: {exc}"
        report.exit_code = EXIT_SIGTERM if exc.signal_name == "SIGTERM" else EXIT_SIGINT
        return False
    except ShotfieldError as exc:
        return _fail(ctx, record, report, str(exc), started)
    except Exception as exc:  # a bug: keep the traceback in the log, a readable line for the user
        job.log(traceback.format_exc())
        return _fail(ctx, record, report, f"internal error {type(exc).__name__}: {exc} (details in {job.path / 'log.txt'})", started)
    record.update(status="done", key=key, seconds=round(time.monotonic() - started, 3), finished=now_iso())
    job.manifest["outputs"].update(outputs)
    ctx.progress(1.0, f"done in {record['seconds']:.1f} s")
    job.log(f"{stage.name}: done in {record['seconds']:.2f} s")
    job.save()
    report.ran.append(stage.name)
    return True


def _fail(ctx: StageContext, record: dict, report: RunReport, message: str, started: float) -> bool:
    record.update(status="failed", error=message, seconds=round(time.monotonic() - started, 3), finished=now_iso())
    ctx.job.log(f"{ctx.stage.name}: failed: {message}")
    ctx.job.progress(ctx.stage.name, 0.0, f"failed: {message}")
    ctx.job.save()
    report.failed, report.error, report.exit_code = ctx.stage.name, message, EXIT_FAILED
    return False
