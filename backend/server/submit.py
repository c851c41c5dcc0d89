"""`shotfield submit FOOTAGE... --ray ADDRESS --jobs DIR`: shots straight to a Ray cluster, no server.

One job folder per shot (DIR/<footage name>), each shot's stages run as Ray tasks (ray_exec.py), shots
side by side as far as the cluster's resources allow. DIR and the footage must be on storage every
node sees at the same path. Prints each stage as it finishes; exit code 0 when every shot is done, 1
when any failed, 130 when interrupted (the running stages are cancelled; run the same command again to
go on: finished stages are skipped).
"""
from __future__ import annotations

import json
import re
import signal
import sys
import threading
from pathlib import Path

from exporters import job_manifest

from .local_exec import Outcome, RunRequest

POLL = 1.0


def run_options(args) -> list[str]:
    """`shotfield run` options from the submit command's namespace (stages are passed separately)."""
    options = ["--quality", args.quality, "--device", args.device]
    for flag, value in (("--frames", args.frames), ("--long-side", args.long_side), ("--fps", args.fps),
                        ("--remove", args.remove)):
        if value is not None:
            options += [flag, str(value)]
    if args.flow_gaps:
        options += ["--flow-gaps", ",".join(map(str, args.flow_gaps))]
    return options


def job_names(footage: list[Path]) -> list[str]:
    """A folder name per shot from its footage name, made unique (shot, shot-2, ...)."""
    names, seen = [], {}
    for path in footage:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", path.stem if path.is_file() else path.name.split("%")[0].rstrip("._")) or "shot"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def submit_command(args) -> int:
    from .ray_exec import RayExecutor

    footage = [Path(f).expanduser().absolute() for f in args.footage]
    jobs_root = Path(args.jobs).expanduser().absolute()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    try:
        executor = RayExecutor(args.ray, gpus=args.ray_gpus)
        executor.check_shared_storage(jobs_root)
    except RuntimeError as exc:
        print(f"shotfield submit: {exc}", file=sys.stderr)
        return 2
    requests = []
    for path, name in zip(footage, job_names(footage)):
        control = jobs_root / ".shotfield-submit" / name
        control.mkdir(parents=True, exist_ok=True)
        requests.append(RunRequest(jobs_root / name, path, run_options(args), stages, control / "log.txt", control,
                                   args.device))
    print(f"shotfield submit: {len(requests)} shot(s) to {executor.describe()}", file=sys.stderr, flush=True)
    runs = [executor.start(r) for r in requests]
    outcomes: dict[int, Outcome] = {}

    def drive(i: int) -> None:
        outcomes[i] = runs[i].wait()

    threads = [threading.Thread(target=drive, args=(i,), daemon=True) for i in range(len(runs))]
    for t in threads:
        t.start()
    interrupted = _watch(requests, threads)
    if interrupted:
        for run in runs:
            run.stop()
        for t in threads:
            t.join(120)
    for req, i in zip(requests, range(len(runs))):
        outcome = outcomes.get(i, Outcome(143, "cancelled"))
        word = "done" if outcome.exit_code == 0 else f"exit code {outcome.exit_code}"
        detail = f": {outcome.message.splitlines()[-1]}" if outcome.exit_code and outcome.message else ""
        print(f"{req.job_dir.name}: {word}{detail}  ({req.job_dir})", file=sys.stderr)
    if interrupted:
        return 130
    return 0 if all(o.exit_code == 0 for o in outcomes.values()) else 1


def _watch(requests: list[RunRequest], threads: list[threading.Thread]) -> bool:
    """Print stage changes until every shot ends; True when interrupted by SIGINT/SIGTERM."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    seen: dict[tuple[str, str], str] = {}
    try:
        while any(t.is_alive() for t in threads) and not stop.wait(POLL):
            for req in requests:
                _print_changes(req, seen)
        for req in requests:
            _print_changes(req, seen)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return stop.is_set()


def _print_changes(req: RunRequest, seen: dict) -> None:
    try:
        stages = job_manifest.read_manifest(req.job_dir)["stages"]
    except (job_manifest.JobFolderError, json.JSONDecodeError):
        return
    for name, rec in stages.items():
        key = (req.job_dir.name, name)
        if rec["status"] != seen.get(key) and rec["status"] != "pending":
            seen[key] = rec["status"]
            secs = f" in {rec['seconds']:.1f} s" if rec.get("seconds") is not None and rec["status"] != "running" else ""
            print(f"{req.job_dir.name}: {name} {rec['status']}{secs}", file=sys.stderr, flush=True)
