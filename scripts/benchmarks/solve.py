"""Stage `solve`: Shotfield's camera solve against pycolmap (incremental and global mapping, default options,
all frames) and Blender's own tracker, on the test shots (scored against their exact cameras) and on real
footage (no ground truth: registered frames, reprojection error, focal length and costs only).

Shotfield runs `shotfield run FRAMES --job JOB --stages ingest,flow,solve` (the solve needs the flow, so the
costs are those of the three stages together); each peer runs as `python -m scripts.benchmarks.<module>`
on the same frames (Shotfield's working frames for real footage) and writes the same camera/ files.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .records import Record
from .runs import Context, log, run_measured, shotfield_run_command, tail
from .shots import Shot, working_frames
from .solve_metrics import evaluate_job

STAGES = ("ingest", "flow", "solve")


@dataclass(frozen=True)
class SolvePeer:
    """A peer solver: its worker's arguments after `python -m` (FRAMES, JOB and RESULT filled in)."""

    module: str
    args: tuple[str, ...] = ()
    tripod_only: bool = False          # only on shots whose camera does not move (a user would tick "Tripod")

    def command(self, frames: Path, job: Path, result: Path) -> list[str]:
        paths = ["--frames", str(frames), "--job", str(job), "--result", str(result)]
        if self.module.endswith("blender_tracker"):  # a Blender script: its own arguments follow "--"
            return [sys.executable, "-m", self.module, "--", *paths, *self.args]
        return [sys.executable, "-m", self.module, *paths, *self.args]


SOLVE_PEERS: dict[str, SolvePeer] = {
    "pycolmap-incremental": SolvePeer("scripts.benchmarks.colmap_peer", ("--mapper", "incremental")),
    "pycolmap-global": SolvePeer("scripts.benchmarks.colmap_peer", ("--mapper", "global")),
    "blender-tracker": SolvePeer("scripts.benchmarks.blender_tracker"),
    "blender-tracker-tripod": SolvePeer("scripts.benchmarks.blender_tracker", ("--tripod-solver",), tripod_only=True),
}

#: (metric key, header, format) of the printed table; the costs follow. Rotation errors (solve_metrics):
#: RPE = all frame pairs, no alignment (the bar's measure); joint = after a Sim(3) fitted to centres and
#: orientations; orient = rotation fitted to orientations alone; pos-only = Umeyama on the centres alone
#: (ill-posed on a nearly straight path, kept visible); rel Δ1 = consecutive frames.
SOLVE_COLUMNS = [("registered_str", "reg", "{}"), ("ate_percent", "ATE %path", "{:.3f}"), ("ate", "ATE", "{:.4f}"),
                 ("rpe_rotation_mean_deg", "RPE rot mean°", "{:.3f}"), ("rotation_joint_mean_deg", "joint rot mean°", "{:.3f}"),
                 ("orientation_median_deg", "orient med°", "{:.3f}"), ("rotation_mean_deg", "pos-only rot mean°", "{:.3f}"),
                 ("rel_rotation_mean_deg", "rel rot° Δ1", "{:.4f}"), ("focal_percent", "focal %", "{:.2f}"),
                 ("focal_px", "f px", "{:.1f}"), ("reprojection_px", "reproj px", "{:.3f}"),
                 ("tripod_translation_pct", "tripod T %depth", "{:.3f}")]


def shotfield_solve_command(ctx: Context, shot: Shot, job: Path) -> list[str]:
    return shotfield_run_command(ctx, shot, job, ",".join(STAGES))


def stage_seconds(job: Path) -> dict:
    """{stage: seconds} of the job's finished stages (job.json)."""
    stages = json.loads((job / "job.json").read_text()).get("stages", {})
    return {name: stages[name].get("seconds") for name in STAGES if name in stages}


def _finish(run_dir: Path, job: Path) -> None:
    """A run's job folder replaces the last good one (so a later failed run leaves that one to score)."""
    shutil.rmtree(job, ignore_errors=True)
    os.replace(run_dir, job)


def _run_shotfield(ctx: Context, shot: Shot, work: Path, ours: Record) -> str | None:
    """One timed Shotfield run into work/shotfield; returns why it failed, or None."""
    run_dir = work / "shotfield.run"
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = shotfield_solve_command(ctx, shot, run_dir)
    run = run_measured(cmd, work / "shotfield.log", timeout_s=ctx.peer_timeout_s)
    if run.returncode != 0:
        log(f"  shotfield failed: {tail(run.log)}")
        return f"exit {run.returncode}: {tail(run.log, 1)}"
    if not (run_dir / "camera" / "cameras.json").is_file():
        return "no camera/cameras.json (is the solve stage built?)"
    _finish(run_dir, work / "shotfield")
    seconds = stage_seconds(work / "shotfield")
    ours.wall_s.append(run.wall_s)
    ours.peak_mb.append(run.peak_mb)
    ours.compute_s.append(sum(s for s in seconds.values() if s is not None))
    ours.details.update({"command": cmd, "stage_seconds": seconds})
    return None


def _run_peer(ctx: Context, name: str, frames: Path, work: Path, rec: Record) -> str | None:
    """One timed run of peer `name` into work/<name>; returns why it failed, or None."""
    run_dir, result = work / f"{name}.run", work / f"{name}.json"
    shutil.rmtree(run_dir, ignore_errors=True)
    result.unlink(missing_ok=True)
    cmd = SOLVE_PEERS[name].command(frames, run_dir, result)
    # Blender keeps its settings out of ~/.config; COLMAP ignores this.
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(work / "blender-user"))
    run = run_measured(cmd, work / f"{name}.log", env=env, timeout_s=ctx.peer_timeout_s)
    if run.returncode != 0:
        log(f"  {name} failed: {tail(run.log, 2)}")
        return f"exit {run.returncode}: {tail(run.log, 1)}"
    _finish(run_dir, work / name)
    rec.wall_s.append(run.wall_s)
    rec.peak_mb.append(run.peak_mb)
    rec.compute_s.append(json.loads(result.read_text())["compute_s"])
    rec.details["command"] = cmd
    return None


def bench_solve(ctx: Context, shot: Shot) -> list[Record]:
    """Shotfield's solve against SOLVE_PEERS on one shot; metrics from the last good run (see solve_metrics).

    A method whose first run fails is not run again (the failure is its result); one that fails in a later
    repeat (Blender's tracker can crash) keeps its good runs, and its row says how many runs failed.
    """
    work = ctx.work / "solve" / shot.slug
    ours = Record("solve", shot.name, f"shotfield ({ctx.quality})", "shotfield")
    peers = {name: Record("solve", shot.name, name, "peer") for name, peer in SOLVE_PEERS.items()
             if shot.tripod or not peer.tripod_only}
    failed: dict[str, list[str]] = {name: [] for name in ["shotfield", *peers]}
    for rep in range(ctx.repeats):
        if ours.wall_s or not failed["shotfield"]:
            if (why := _run_shotfield(ctx, shot, work, ours)) is not None:
                failed["shotfield"].append(why)
        if shot.frames is None:  # real footage: the peers read Shotfield's working frames (or a fallback)
            job_frames = work / "shotfield" / "frames"
            shot.frames = working_frames(shot, ctx.work, ctx.quality, job_frames if job_frames.is_dir() else None)
        for name, rec in peers.items():
            if rec.wall_s or not failed[name]:
                if (why := _run_peer(ctx, name, shot.frames, work, rec)) is not None:
                    failed[name].append(why)
        log(f"  solve/{shot.name}: repeat {rep + 1}/{ctx.repeats} done")
    frame_count = len(list(shot.frames.glob("*.png")))
    for (name, rec) in [("shotfield", ours), *peers.items()]:
        if failed[name]:
            rec.details["failed_runs"] = failed[name]
            if not rec.wall_s:
                rec.error = failed[name][-1]
                continue
            rec.method += f" [{len(failed[name])} of {len(failed[name]) + len(rec.wall_s)} runs failed]"
        try:
            rec.metrics = evaluate_job(work / name, frame_count, shot.gt, tripod=shot.tripod)
        except Exception as exc:  # a malformed answer is that method's failure, not the benchmark's
            rec.error = f"evaluation: {type(exc).__name__}: {exc}"
    best = best_pycolmap([*peers.values()])
    if best is not None:
        best.method += " (best)"
        best.details["best_pycolmap"] = True
    ours.details["shot"] = {"frames": frame_count, "tripod": shot.tripod, "size": shot.size, "gt": shot.gt is not None}
    return [ours, *peers.values()]


#: A pycolmap run must register at least this share of the frames to count as its best: an ATE over a
#: handful of frames (a model that lost the rest) says little about the shot.
BEST_MIN_REGISTERED = 0.5


def best_pycolmap(records: list[Record]) -> Record | None:
    """The pycolmap run with the lowest ATE (% of path) among those that succeeded and registered at least
    BEST_MIN_REGISTERED of the frames; None without one (real footage, a tripod shot, no such run)."""
    scored = [r for r in records if r.method.startswith("pycolmap") and r.error is None
              and isinstance(r.metrics.get("ate_percent"), float) and math.isfinite(r.metrics["ate_percent"])
              and r.metrics.get("registered", 0) >= BEST_MIN_REGISTERED * r.metrics.get("frames", math.inf)]
    return min(scored, key=lambda r: r.metrics["ate_percent"]) if scored else None
