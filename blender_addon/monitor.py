"""Following runs from Blender: a timer on the main thread reads each run's progress, updates the state the
panel draws, and when a run ends records how, and imports its outputs if asked to. In background mode
(`blender -b`, the bpy module) there is no event loop to run timers, so `wait()` polls in a loop instead
and prints one line per change.

Also the lifecycle: loading another file or disabling the add-on stops the processes this session started
(jobs.terminate_all; atexit covers quitting Blender), and after a file is loaded, a job that some process
is running (another Blender, a terminal, a farm) is re-attached to.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import bpy

from . import jobs, progress
from .remote_jobs import RemoteRun
from .shared_formats import job_manifest

TIMER_SECONDS = 0.5


@dataclass
class Watch:
    run: object                    # jobs.LocalRun | remote_jobs.RemoteRun
    state: progress.RunState
    offset: int = 0                # bytes of progress.jsonl already read (local runs)
    import_when_done: bool = False
    scene_name: str = ""
    frame_start: int = 1
    ground_plane: bool = True


# job folder (str) -> its watch; finished watches stay until the next run, so the panel shows the outcome.
_watches: dict[str, Watch] = {}


def watch(run, stages, *, scene=None, import_when_done=False, frame_start=1, ground_plane=True, replay=False) -> Watch:
    """Start following `run` (and the timer if it is not going). `replay`: read progress.jsonl from its start
    (re-attaching), else only what this run writes."""
    key = str(run.job_dir)
    offset = 0
    if isinstance(run, jobs.LocalRun) and not replay:
        offset = _file_size(run.job_dir / job_manifest.PROGRESS)
    where = getattr(getattr(run, "server", None), "url", "server") if isinstance(run, RemoteRun) else "local"
    state = progress.RunState(key, tuple(stages), run.started, where=where)
    w = Watch(run, state, offset, import_when_done, scene.name if scene is not None else "", frame_start, ground_plane)
    _watches[key] = w
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TIMER_SECONDS, persistent=True)
    return w


def state_for(job_dir: str | None) -> progress.RunState | None:
    w = _watches.get(str(job_dir)) if job_dir else None
    return w.state if w is not None else None


def is_active(job_dir: str | None) -> bool:
    state = state_for(job_dir)
    return state is not None and state.active


def cancel(job_dir: str) -> bool:
    w = _watches.get(str(job_dir))
    if w is None or not w.state.active:
        return False
    w.run.cancel()
    w.state.state = "cancelling"
    w.state.message = "cancelling"
    return True


def forget(job_dir: str) -> None:
    _watches.pop(str(job_dir), None)


def update(w: Watch) -> bool:
    """Read what is new for one watch; True when its run ended just now."""
    if not w.state.active:
        return False
    if isinstance(w.run, jobs.LocalRun):
        events, w.offset = job_manifest.read_progress(w.run.job_dir, w.offset)
    else:
        events = w.run.events()
    cancelling = w.state.state == "cancelling"
    progress.apply_events(w.state, events)
    if cancelling:
        w.state.state = "cancelling"
    if not w.run.poll():
        return False
    if isinstance(w.run, jobs.LocalRun):  # the last lines written before it exited
        events, w.offset = job_manifest.read_progress(w.run.job_dir, w.offset)
        progress.apply_events(w.state, events)
        outcome = progress.outcome(w.run.exit_code, _manifest(w.run.job_dir), w.run.output_tail())
        if cancelling and outcome.state == "failed" and w.run.exit_code not in (progress.EXIT_FAILED, progress.EXIT_USAGE):
            outcome = progress.Outcome("cancelled", "Cancelled before the first stage started.")
    else:
        outcome = w.run.outcome()
    progress.finish(w.state, outcome)
    if outcome.state == "done" and w.import_when_done:
        _import(w)
    return True


def _import(w: Watch) -> None:
    from .importers import READ_ERRORS, import_job

    scene = bpy.data.scenes.get(w.scene_name) or bpy.context.scene
    try:
        result = import_job(scene, w.state.job_dir, frame_start=w.frame_start, ground_plane=w.ground_plane)
    except READ_ERRORS as exc:
        w.state.error = f"The run finished, but importing failed: {exc}"
        return
    w.state.message = f"imported {', '.join(result.outputs)} into {result.collection.name}"


def tick() -> float | None:
    """The timer: update every active watch, redraw the panels; stops itself when nothing is running."""
    changed = False
    for w in list(_watches.values()):
        try:
            active = w.state.active
            changed |= update(w) or active
        except Exception as exc:  # noqa: BLE001 - a timer that raises is dropped by Blender for good
            progress.finish(w.state, progress.Outcome("failed", f"Following the run failed: {exc}"))
    if changed:
        _redraw()
    return TIMER_SECONDS if any(w.state.active for w in _watches.values()) else None


def wait(job_dir: str, echo=print, interval: float = 0.5, timeout: float | None = None) -> progress.RunState:
    """Follow a run synchronously (background mode) until it ends, printing a line whenever the stage or
    its message changes. The timer is not needed (and does not run) here."""
    w = _watches[str(job_dir)]
    deadline = None if timeout is None else time.time() + timeout
    last = None
    while True:
        ended = update(w)
        line = (w.state.stage, w.state.message, w.state.state)
        if echo is not None and line != last:
            echo(progress.progress_line(w.state))
            last = line
        if ended or not w.state.active:
            break
        if deadline is not None and time.time() > deadline:
            cancel(job_dir)
            deadline = None
        time.sleep(interval)
    if echo is not None and w.state.error:
        echo(f"shotfield: {w.state.headline()}: {w.state.error}")
    return w.state


def _manifest(job_dir) -> dict | None:
    try:
        return job_manifest.read_manifest(job_dir)
    except job_manifest.JobFolderError:
        return None


def _file_size(path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", ()):
        for area in window.screen.areas:
            if area.type in ("CLIP_EDITOR", "VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


def stop_all() -> None:
    """Stop the processes this session started, stop following server jobs, forget every watch."""
    for w in _watches.values():
        if isinstance(w.run, RemoteRun):
            w.run.detach()
    jobs.terminate_all()
    _watches.clear()


@bpy.app.handlers.persistent
def _on_load_pre(*_args) -> None:
    stop_all()  # closing the file must not leave its runs going


@bpy.app.handlers.persistent
def _on_load_post(*_args) -> None:
    """Re-attach to a run of the loaded scene's job folder that is still going (e.g. after a crash)."""
    from .properties import resolved_job_dir

    context = bpy.context
    if getattr(context, "scene", None) is None or not hasattr(context.scene, "shotfield"):
        return
    job_dir = resolved_job_dir(context)
    if job_dir is None:
        return
    run = jobs.reattach(job_dir)
    if run is not None:
        watch(run, (), scene=context.scene, replay=True)


_HANDLERS = ((bpy.app.handlers.load_pre, _on_load_pre), (bpy.app.handlers.load_post, _on_load_post))


def register():
    for handlers, handler in _HANDLERS:
        if handler not in handlers:
            handlers.append(handler)


def unregister():
    for handlers, handler in _HANDLERS:
        if handler in handlers:
            handlers.remove(handler)
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    stop_all()
