"""Running things for the benchmarks: each run is a separate process, measured alone (wall time, peak memory).

Shotfield runs through its CLI (`shotfield run FRAMES --job JOB --stages ...`), each peer in its own process
that writes the same job-folder files, so one evaluation reads them all.
"""
from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Context:
    """What every stage benchmark is given: where to work, how often to repeat, Shotfield's options."""

    work: Path
    repeats: int
    device: str | None
    quality: str
    peer_timeout_s: float | None = None


@dataclass
class ProcessRun:
    returncode: int
    wall_s: float
    peak_mb: float
    log: Path


# A child's ru_maxrss also counts the memory of the process it was forked from (Linux records the old image's
# high-water mark at exec, and Python's subprocess may vfork), so a large benchmark process would inflate
# every reading. Children are therefore started by this small launcher, whose own ~10 MB is the floor.
_LAUNCHER = r"""
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    json.dump({"returncode": os.waitstatus_to_exitcode(status), "wall_s": wall, "maxrss": usage.ru_maxrss}, f)
"""


#: What `run_measured` returns as the exit status of a command it stopped at its time limit (as timeout(1)).
TIMED_OUT = 124


def run_measured(cmd: list[str], log_path: Path, env: dict | None = None, timeout_s: float | None = None) -> ProcessRun:
    """Run `cmd` with its output to `log_path`. Returns its wall time and its peak resident set size in MiB
    (rusage of the process and its descendants, read by `_LAUNCHER`). A command still running after
    `timeout_s` is killed (with everything it started) and returns TIMED_OUT."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result = log_path.with_name(log_path.name + ".rusage.json")
    result.unlink(missing_ok=True)
    with open(log_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-I", "-c", _LAUNCHER, str(result), *cmd], stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env, start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            out.write(f"\nbenchmark: stopped after {timeout_s:.0f} s\n")
            return ProcessRun(TIMED_OUT, math.nan, math.nan, log_path)
        except BaseException:
            os.killpg(proc.pid, 9)  # the launcher's own session: it and the command it started
            proc.wait()
            raise
    if proc.returncode != 0 or not result.is_file():
        return ProcessRun(proc.returncode or 1, math.nan, math.nan, log_path)
    usage = json.loads(result.read_text())
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    peak = usage["maxrss"] / (1024 * 1024) if sys.platform == "darwin" else usage["maxrss"] / 1024
    return ProcessRun(usage["returncode"], usage["wall_s"], peak, log_path)


def shotfield_command() -> list[str]:
    exe = Path(sys.executable).parent / "shotfield"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "backend"]


_RUN_HELP: str | None = None


def shotfield_run_command(ctx: "Context", shot, job: Path, stages: str, options: tuple = ()) -> list[str]:
    """`shotfield run` of `stages` on `shot` into `job` with the benchmark's quality, device and working size,
    plus (flag, value) `options`; flags this version of shotfield lacks are left out (older checkouts)."""
    cmd = [*shotfield_command(), "run", str(shot.footage), "--job", str(job), "--stages", stages,
           "--quality", ctx.quality]
    for flag, value in (("--device", ctx.device), *options, ("--long-side", shot.long_side)):
        if value is not None and shotfield_supports(flag):
            cmd += [flag, str(value)]
    if shotfield_supports("--no-progress"):
        cmd.append("--no-progress")
    return cmd


def shotfield_supports(flag: str) -> bool:
    """Whether `shotfield run` has an option (read once from its --help)."""
    global _RUN_HELP
    if _RUN_HELP is None:
        done = subprocess.run([*shotfield_command(), "run", "--help"], capture_output=True, text=True, cwd=REPO_ROOT)
        _RUN_HELP = done.stdout
    return flag in _RUN_HELP


def tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def environment() -> dict:
    versions = {"python": platform.python_version(), "numpy": np.__version__, "cv2": cv2.__version__}
    for dist in ("torch", "pycolmap", "bpy", "kornia"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT,
                                timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                    text=True, cwd=REPO_ROOT, timeout=10).stdout.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit = dirty = None
    return {"versions": versions, "git_commit": commit, "git_dirty": dirty, "platform": platform.platform(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "cv2_threads": cv2.getNumThreads(), "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
