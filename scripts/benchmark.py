#!/usr/bin/env python3
"""Benchmark Shotfield's stages on rendered test shots (exact ground truth) and real footage, side by side
with the peers a user would otherwise use.

    python scripts/benchmark.py [--stages flow,solve] [--shots default,tripod] [--quick] [--footage PATH ...]
        [--repeats 3] [--device cpu] [--quality preview] [--timeout 1800] [--out benchmark_results/solve.json]

Stages and their peers (scripts/benchmarks/, one module each):
- flow: Shotfield's flow stage against OpenCV Farneback and DIS (`benchmarks/flow.py`);
- solve: Shotfield's camera solve against pycolmap (incremental and global mapping, default options, all
  frames) and Blender's own tracker driven headlessly (`benchmarks/solve.py`), with the camera-solve issue's
  bars checked at the end (`benchmarks/solve_bars.py`).

Shots (`--shots`): default (40 frames 320x240, two moving objects), large-object, tripod, low-texture (the
same size), quick (24 frames 160x120) and h100 (the 100-frame 960x540 H100 budget shot); rendered once by
`scripts/make_test_shot.py` and cached under `benchmark_results/shots/`.

Every run is a separate process, so wall time and peak memory are those of the run alone: Shotfield is run
through its CLI, each peer through its own worker, writing the same job-folder files, so one evaluation
reads them all. Peak memory is the child's peak resident set size (the process and its descendants; see
`benchmarks.runs.run_measured`). Timings are medians over `--repeats` runs with their spread (± half the
range), runs interleaved across methods; quality metrics come from the last run.

Adding a stage: a module `scripts/benchmarks/<stage>.py` that defines `BENCHMARK = StageBenchmark(bench, columns,
summary)` (bench: `(ctx, shot) -> list[Record]`; summary: the issue's bars, if it has some) and `PEERS`, and
the stage's name in `STAGE_MODULES`. Modules not written yet are left out of `--stages`.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# The pieces, re-exported for the tests and for scripts that import this file.
from scripts.benchmarks.flow import (  # noqa: E402,F401
    FLOW_COLUMNS, FLOW_PEERS, bench_flow, dis_preset, evaluate_flow_job, farneback, peer_flow_job, resize_flow)
from scripts.benchmarks.records import (  # noqa: E402,F401
    Record, StageBenchmark, format_table, jsonable, record_to_json, summarise)
from scripts.benchmarks.runs import (  # noqa: E402,F401
    Context, ProcessRun, environment, log, run_measured, shotfield_command, shotfield_supports, tail)
from scripts.benchmarks.shots import (  # noqa: E402,F401
    RESULTS, SEEDS, SHOTS, Shot, ShotSpec, ensure_shot, generator_digest, shot_info, shot_key, working_frames)
from scripts.benchmarks.solve import SOLVE_COLUMNS, SOLVE_PEERS, bench_solve  # noqa: E402,F401
from scripts.benchmarks.solve_bars import check_bars, format_bars  # noqa: E402


def solve_summary(records: list[Record]) -> tuple[str, list]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    checks = check_bars(records, cores)
    return format_bars(checks), [c.as_dict() for c in checks]


BENCHMARKS: dict[str, StageBenchmark] = {
    "flow": StageBenchmark(bench_flow, FLOW_COLUMNS),
    "solve": StageBenchmark(bench_solve, SOLVE_COLUMNS, solve_summary),
}
PEERS: dict[str, dict] = {"flow": FLOW_PEERS, "solve": SOLVE_PEERS}
#: The later stages' benchmarks, one module each (see the top of this file).
STAGE_MODULES = ("depth", "field", "tracks", "layers", "inpaint")
for _stage in STAGE_MODULES:
    try:
        _module = importlib.import_module(f"scripts.benchmarks.{_stage}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"scripts.benchmarks.{_stage}":
            raise
        continue
    BENCHMARKS[_stage], PEERS[_stage] = _module.BENCHMARK, _module.PEERS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stages", default="flow", help=f"comma-separated, of: {','.join(BENCHMARKS)}")
    p.add_argument("--shots", default=None, help=f"comma-separated test shots, of: {','.join(SHOTS)} "
                   "(default: default; with --quick: quick); 'none' for real footage only")
    p.add_argument("--quick", action="store_true", help="the small 24-frame 160x120 shot, one repeat")
    p.add_argument("--footage", action="append", default=[], help="real footage (video or image folder); repeatable")
    p.add_argument("--footage-long-side", type=int, default=None, help="working long side for footage "
                   "(default: Shotfield's for the quality)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per method (default 3; 1 with --quick)")
    p.add_argument("--device", default="cpu", help="Shotfield's --device (cpu, cuda, auto)")
    p.add_argument("--quality", default="preview", choices=("preview", "final"))
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds after which one run is stopped (solve)")
    p.add_argument("--out", type=Path, default=None, help="JSON results (default benchmark_results/<stages>.json)")
    p.add_argument("--cache", type=Path, default=RESULTS / "shots", help="rendered test shots")
    p.add_argument("--work", type=Path, default=RESULTS / "work", help="job folders of the runs")
    # Worker mode (internal): one flow peer's run in its own process, so its time and memory are its own.
    p.add_argument("--peer-worker", help=argparse.SUPPRESS)
    p.add_argument("--frames-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--job-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.peer_worker:
        stage, method = args.peer_worker.split(":", 1)
        assert stage == "flow", stage
        seconds = peer_flow_job(method, args.frames_dir, args.job_dir)
        args.result.write_text(json.dumps({"compute_s": seconds}))
        return 0

    stages = [s for s in args.stages.split(",") if s]
    unknown = [s for s in stages if s not in BENCHMARKS]
    if unknown:
        log(f"unknown stage(s) {unknown}; have {list(BENCHMARKS)}")
        return 2
    shot_names = [s for s in (args.shots or ("quick" if args.quick else "default")).split(",") if s and s != "none"]
    if any(s not in SHOTS for s in shot_names):
        log(f"unknown shot(s) in {shot_names}; have {list(SHOTS)}")
        return 2
    ctx = Context(work=args.work, repeats=args.repeats or (1 if args.quick else 3), device=args.device,
                  quality=args.quality, peer_timeout_s=args.timeout)
    shots = [ensure_shot(SHOTS[name], args.cache) for name in shot_names]
    for path in args.footage:
        path = Path(path).resolve()
        shots.append(Shot(f"footage:{path.parent.name}/{path.stem}" if path.is_file() else f"footage:{path.name}",
                          path, None, None, long_side=args.footage_long_side))

    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    env_start = environment()
    records: list[Record] = []
    for stage in stages:
        for shot in shots:
            log(f"benchmark {stage} on {shot.name} ({ctx.repeats} repeats) ...")
            records.extend(BENCHMARKS[stage].run(ctx, shot))

    table = format_table(records, {s: BENCHMARKS[s].columns for s in stages})
    summaries = {}
    for stage in stages:
        if BENCHMARKS[stage].summary is not None:
            text, summaries[stage] = BENCHMARKS[stage].summary(records)
            table += ("\n\n" + text) if text else ""
    env_end = environment()
    busy = max((env.get("loadavg") or [0])[0] for env in (env_start, env_end))
    if busy > (env_start["cpus_usable"] or 1):
        table += (f"\nwarning: load average {busy:.1f} on {env_start['cpus_usable']} CPUs: other processes were "
                  "running, so the timings are slower and noisier than on an idle machine")
    print(table)
    out = args.out or RESULTS / f"{'-'.join(stages)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"format": "shotfield-benchmark", "version": 1, "started": started,
              "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              **env_start, "loadavg_end": env_end.get("loadavg"), "seeds": SEEDS, "args": jsonable(vars(args)),
              "shots": {s.name: shot_info(s) for s in shots},
              "records": [record_to_json(r) for r in records], "summaries": jsonable(summaries), "table": table}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, allow_nan=False))
    os.replace(tmp, out)
    log(f"wrote {out}")
    return 0 if all(r.error is None for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
