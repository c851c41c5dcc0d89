"""A run's progress as the panel and the batch scripts show it: pure functions of the backend's progress events
(`progress.jsonl`), its exit code and `job.json`. Standard library only, so it is tested without a UI.

`RunState` is what the panel draws: the current stage and its message, the overall fraction, the elapsed
time and an estimate of the time left, and, once the run ended, whether it succeeded and the error in words.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

#: Rough relative cost of each stage at the same frame count and size (preview on a CPU), used to turn
#: per-stage fractions into one overall fraction and so into an estimate. Only the ratios matter; an
#: unknown stage counts like the solve.
STAGE_WEIGHTS = {"ingest": 0.2, "flow": 1.0, "solve": 8.0, "depth": 20.0, "field": 40.0, "tracks": 15.0,
                 "layers": 10.0, "inpaint": 10.0,
                 # a server run's own steps around the stages (remote_jobs.py)
                 "upload": 0.5, "queue": 0.0, "download": 0.5}
SKIPPED_MESSAGE = "up to date, skipped"   # the runner's message for a stage whose outputs are current
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143
ACTIVE_STATES = ("starting", "running", "cancelling")


@dataclass
class RunState:
    """One run of one job, as the panel shows it. Times are Unix seconds (`time.time()`)."""

    job_dir: str
    stages: tuple[str, ...]                 # the stages asked for, in run order
    started: float
    where: str = "local"                    # "local" or the server's URL
    state: str = "starting"                 # starting | running | cancelling | done | failed | cancelled
    stage: str = ""
    stage_fraction: float = 0.0
    message: str = ""
    finished: dict[str, str] = field(default_factory=dict)   # stage -> "done" | "skipped"
    work_started: float | None = None       # first event of a stage that is not skipped
    ended: float | None = None
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def fraction(self) -> float:
        """0..1 over the stages asked for, weighted by STAGE_WEIGHTS; skipped stages do not count."""
        if self.state == "done":
            return 1.0
        todo = [s for s in self._all_stages() if self.finished.get(s) != "skipped"]
        total = sum(_weight(s) for s in todo)
        if total <= 0:
            return 0.0
        done = sum(_weight(s) for s in todo if self.finished.get(s) == "done")
        if self.stage and self.stage not in self.finished:
            done += _weight(self.stage) * self.stage_fraction
        return min(max(done / total, 0.0), 1.0)

    def elapsed(self, now: float | None = None) -> float:
        end = self.ended if self.ended is not None else (time.time() if now is None else now)
        return max(0.0, end - self.started)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, extrapolated from the work done so far; None until there is enough to go on."""
        if not self.active or self.work_started is None:
            return None
        now = time.time() if now is None else now
        working = now - self.work_started
        f = self.fraction()
        if f < 0.02 or working < 1.0:
            return None
        return working * (1.0 - f) / f

    def _all_stages(self) -> list[str]:
        extra = [s for s in (*self.finished, self.stage) if s and s not in self.stages]  # prerequisites the backend added
        return list(self.stages) + extra

    def headline(self) -> str:
        """"flow 45%: frame 11/24" while running; the outcome afterwards."""
        if self.state == "starting":
            return "Starting the backend..."
        if self.state == "cancelling":
            return "Cancelling (the running stage stops, finished ones are kept)..."
        if self.state == "done":
            return "Done"
        if self.state == "cancelled":
            return "Cancelled"
        if self.state == "failed":
            return "Failed"
        text = f"{self.stage} {self.stage_fraction:.0%}" if self.stage else "Running"
        return f"{text}: {self.message}" if self.message else text

    def timing(self, now: float | None = None) -> str:
        """"12 s elapsed, about 40 s left"."""
        text = f"{format_duration(self.elapsed(now))} elapsed"
        eta = self.eta(now)
        if eta is not None:
            text += f", about {format_duration(eta)} left"
        elif self.active:
            text += ", estimating the time left"
        return text


def _weight(stage: str) -> float:
    return STAGE_WEIGHTS.get(stage, STAGE_WEIGHTS["solve"])


def apply_events(state: RunState, events: list[dict]) -> RunState:
    """Fold progress events ({"time", "stage", "fraction", "message"}) into `state` (in place; returned)."""
    for event in events:
        stage = str(event.get("stage") or "")
        if not stage:
            continue
        fraction = float(event.get("fraction") or 0.0)
        message = str(event.get("message") or "")
        when = float(event.get("time") or time.time())
        if stage != state.stage and state.stage and state.stage not in state.finished:
            state.finished[state.stage] = "done"  # the runner moves on only after a stage finished
        if state.state == "starting":
            state.state = "running"
        if message == SKIPPED_MESSAGE:
            state.finished[stage] = "skipped"
        else:
            if fraction >= 1.0:
                state.finished.setdefault(stage, "done")
            else:
                state.finished.pop(stage, None)  # (re)started
            if state.work_started is None:
                state.work_started = when
        state.stage, state.stage_fraction, state.message = stage, min(max(fraction, 0.0), 1.0), message
    return state


@dataclass(frozen=True)
class Outcome:
    state: str                  # done | failed | cancelled
    error: str | None = None    # plain words for the panel


def outcome(exit_code: int | None, manifest: dict | None, output_tail: str = "") -> Outcome:
    """How a run ended, from the process's exit code (None: unknown, e.g. a re-attached process of another
    session), `job.json` and the last lines of the process's output."""
    stages = (manifest or {}).get("stages") or {}
    failed = [(n, r) for n, r in stages.items() if r.get("status") == "failed"]
    said = _last_backend_message(output_tail)
    if exit_code == EXIT_OK:
        return Outcome("done")
    cancelled = any(r.get("status") == "cancelled" for r in stages.values())
    if exit_code in (EXIT_SIGINT, EXIT_SIGTERM) or (exit_code is None and cancelled and not failed):
        return Outcome("cancelled", "Cancelled. Finished stages are kept: Run again to go on from where it stopped.")
    if exit_code == EXIT_FAILED or (exit_code is None and failed):
        if failed:
            name, record = failed[-1]
            error = str(record.get("error") or "no message")
            return Outcome("failed", error if error.startswith(name) else f"{name} failed: {error}")
        return Outcome("failed", said or "The backend failed before any stage ran; open the log for details.")
    if exit_code == EXIT_USAGE:
        return Outcome("failed", said or "The backend refused the settings; open the log for details.")
    if exit_code is None:
        if any(r.get("status") == "running" for r in stages.values()):
            return Outcome("failed", "The backend process stopped in the middle of a stage (killed or crashed); "
                                     "Run again to go on.")
        return Outcome("done")
    if exit_code in (-9, 137):
        return Outcome("failed", "The backend was killed (out of memory, or stopped by force); Run again to go on.")
    if exit_code == 127:
        return Outcome("failed", "The backend command was not found; check it in the add-on preferences.")
    detail = f": {said}" if said else "; open the log for details"
    return Outcome("failed", f"The backend stopped unexpectedly (exit code {exit_code}){detail}")


def _last_backend_message(output: str) -> str:
    """The backend's last "shotfield: ..." line (its one-line error), without the prefix."""
    for line in reversed(output.strip().splitlines()):
        if line.startswith("shotfield: "):
            return line[len("shotfield: "):].strip()
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def finish(state: RunState, result: Outcome, now: float | None = None) -> RunState:
    state.state, state.error = result.state, result.error
    state.ended = time.time() if now is None else now
    if result.state == "done" and state.stage:
        state.finished.setdefault(state.stage, "done")
    return state


@dataclass(frozen=True)
class StageRow:
    name: str
    status: str                 # pending | running | done | failed | cancelled
    seconds: float | None
    error: str | None


def stage_rows(manifest: dict | None) -> list[StageRow]:
    """`job.json`'s stages in run order, for the panel's table of a job's last state."""
    stages = (manifest or {}).get("stages") or {}
    from .command import STAGE_ORDER

    order = [s for s in STAGE_ORDER if s in stages] + [s for s in stages if s not in STAGE_ORDER]
    return [StageRow(n, str(stages[n].get("status")), stages[n].get("seconds"), stages[n].get("error")) for n in order]


def format_duration(seconds: float) -> str:
    """7 -> "7 s", 125 -> "2 min 05 s", 3720 -> "1 h 02 min"."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_line(state: RunState, now: float | None = None) -> str:
    """One line for a terminal (background mode): "shotfield: [ 35%] flow 45%: frame 11/24 (3 s elapsed, ...)"."""
    return f"shotfield: [{state.fraction():4.0%}] {state.headline()} ({state.timing(now)})"


def wrap(text: str, width: int = 48) -> list[str]:
    """Split a long message into lines for `layout.label` (which does not wrap)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])
