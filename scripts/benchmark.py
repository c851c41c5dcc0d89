#!/usr/bin/env python3
"""Benchmark Shotfield's stages on rendered test shots (exact ground truth) and real footage, side by side
with the peers a user would otherwise use.

    python scripts/benchmark.py [--stages flow] [--shots default,large] [--quick] [--footage PATH ...]
        [--repeats 3] [--device cpu] [--quality preview] [--out benchmark_results/flow.json]

Every run is a separate process, so wall time and peak memory are those of the run alone: Shotfield is run
through its CLI (`shotfield run FRAMES --job JOB --stages ...`), each peer through this script's worker mode
(`--peer-worker STAGE:METHOD`), which writes the same job-folder files, so one evaluation reads them all.
Peak memory is the child's peak resident set size (the process and its descendants; see `run_measured`).
Timings are medians over `--repeats` runs with their spread (± half the range), runs interleaved across
methods; quality metrics come from the last run (every method here is deterministic).

Adding a stage: write `bench_<stage>(ctx, shot) -> list[Record]`, register it in `BENCHMARKS` with its table
columns, and its peers in `PEERS[<stage>]`. Test shots are rendered once by `scripts/make_test_shot.py` and
cached under `benchmark_results/shots/`, keyed by their options and the generator's source.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from backend import flow_store  # noqa: E402
from backend.metrics.flow import flow_errors, forward_backward_consistent  # noqa: E402

RESULTS = REPO_ROOT / "benchmark_results"
SEEDS = {"test_shot": 0}  # make_test_shot --seed; nothing else here draws random numbers


# ------------------------------------------------------------------------------------------------ shots
@dataclass(frozen=True)
class ShotSpec:
    """A rendered test shot: `make_test_shot.py --frames --width --height --seed` plus extra flags."""

    name: str
    frames: int
    width: int
    height: int
    flags: tuple[str, ...] = ()

    def args(self) -> list[str]:
        return ["--frames", str(self.frames), "--width", str(self.width), "--height", str(self.height),
                "--seed", str(SEEDS["test_shot"]), *self.flags]


SHOTS = {
    "default": ShotSpec("default", 40, 320, 240),   # the 2-core CPU budget shot of DESIGN.md
    "quick": ShotSpec("quick", 24, 160, 120),
    "tripod": ShotSpec("tripod", 40, 320, 240, ("--tripod",)),
    "large": ShotSpec("large", 100, 960, 540),      # the H100 budget shot of DESIGN.md
}


@dataclass
class Shot:
    """What a stage benchmark runs on: `footage` for Shotfield, `frames` (folder of PNGs) for the peers
    once known, and `gt` (folder) for a rendered shot (None for real footage)."""

    name: str
    footage: Path
    frames: Path | None
    gt: Path | None
    long_side: int | None = None

    @property
    def slug(self) -> str:
        """The name as a folder name."""
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name)


#: What a rendered shot depends on (as in tests/conftest.py): the generator and the project modules it uses.
GENERATOR_INPUTS = ["scripts/make_test_shot.py"] + [f"exporters/{n}.py" for n in ("conventions", "cameras_json", "exr", "atomic")]


def generator_digest() -> str:
    h = hashlib.sha256()
    for name in GENERATOR_INPUTS:
        path = REPO_ROOT / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"missing") + b"\0")
    return h.hexdigest()[:10]


def shot_key(spec: ShotSpec, digest: str) -> str:
    """Cache folder name: the options that change the pixels, and the generator's source digest."""
    flags = "".join("-" + f.lstrip("-") for f in spec.flags)
    return f"{spec.frames}f-{spec.width}x{spec.height}-seed{SEEDS['test_shot']}{flags}-{digest}"


def ensure_shot(spec: ShotSpec, cache: Path) -> Shot:
    """Render the shot unless the cache holds it complete (`shot.json` is written last)."""
    folder = cache / shot_key(spec, generator_digest())
    if not (folder / "shot.json").is_file():
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log(f"rendering test shot {spec.name!r} -> {folder} ...")
        cmd = [sys.executable, str(REPO_ROOT / "scripts" / "make_test_shot.py"), "--out", str(tmp), *spec.args()]
        run = run_measured(cmd, cache / f"{folder.name}.log")
        if run.returncode != 0:
            raise RuntimeError(f"make_test_shot failed ({run.returncode}); see {cache / f'{folder.name}.log'}")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return Shot(spec.name, folder / "frames", folder / "frames", folder / "gt", long_side=max(spec.width, spec.height))


# ------------------------------------------------------------------------------------------------ processes
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


def run_measured(cmd: list[str], log_path: Path, env: dict | None = None) -> ProcessRun:
    """Run `cmd` with its output to `log_path`. Returns its wall time and its peak resident set size in MiB
    (rusage of the process and its descendants, read by `_LAUNCHER`)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result = log_path.with_name(log_path.name + ".rusage.json")
    result.unlink(missing_ok=True)
    with open(log_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-I", "-c", _LAUNCHER, str(result), *cmd], stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env, start_new_session=True)
        try:
            proc.wait()
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


# ------------------------------------------------------------------------------------------------ records
@dataclass
class Record:
    """One method on one shot for one stage: its metrics and one entry per repeat for the costs."""

    stage: str
    shot: str
    method: str
    role: str                                   # "shotfield" | "peer"
    metrics: dict = field(default_factory=dict)
    wall_s: list = field(default_factory=list)     # whole process, per repeat
    compute_s: list = field(default_factory=list)  # the stage's own seconds (job.json) / the peer's loop
    peak_mb: list = field(default_factory=list)    # peak RSS of the process, MiB
    error: str | None = None
    details: dict = field(default_factory=dict)


def summarise(values: list[float]) -> dict:
    """Median and spread of repeated measurements: {"median", "spread" (half the range), "min", "max", "n"}."""
    v = [float(x) for x in values if x is not None and math.isfinite(x)]
    if not v:
        return {"median": None, "spread": None, "min": None, "max": None, "n": 0}
    return {"median": float(np.median(v)), "spread": (max(v) - min(v)) / 2, "min": min(v), "max": max(v), "n": len(v)}


def jsonable(value):
    """Plain JSON values: NaN and ±inf become None (JSON has no NaN), numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record_to_json(record: Record) -> dict:
    out = asdict(record)
    for key in ("wall_s", "compute_s", "peak_mb"):
        out[key + "_summary"] = summarise(getattr(record, key))
    return jsonable(out)


def _fmt_cost(values: list[float], digits: int) -> str:
    s = summarise(values)
    if s["median"] is None:
        return "-"
    return f"{s['median']:.{digits}f}" + (f" ±{s['spread']:.{digits}f}" if s["n"] > 1 else "")


def _fmt_metric(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value)


def format_table(records: list[Record], columns: dict[str, list[tuple[str, str, str]]]) -> str:
    """A plain-text table: stage, shot, method, the stage's metric columns, then the costs.
    columns: per stage, [(metric key, header, format)]; records of one stage share one header block."""
    lines = []
    for stage in dict.fromkeys(r.stage for r in records):
        cols = columns.get(stage, [])
        header = ["stage", "shot", "method", *[c[1] for c in cols], "compute s", "wall s", "peak MB"]
        rows, failures = [], []
        for r in (r for r in records if r.stage == stage):
            failed = r.error is not None
            rows.append([r.stage, r.shot, r.method,
                         *["-" if failed else _fmt_metric(r.metrics.get(k), f) for k, _, f in cols],
                         *(["-"] * 3 if failed else [_fmt_cost(r.compute_s, 2), _fmt_cost(r.wall_s, 2),
                                                    _fmt_cost(r.peak_mb, 0)])])
            failures.append(f"  FAILED: {r.error}"[:120] if failed else "")
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + fail).rstrip()
                     for row, fail in zip(rows, failures))
        lines.append("")
    lines.append("costs: median ±half the range over repeats; compute s = the stage's own time (Shotfield: "
                 "job.json) or the peer's loop; wall s and peak MB: the whole process")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ flow stage
def farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """OpenCV Farneback with the parameters of OpenCV's own optical-flow tutorial (pyr 0.5, 3 levels,
    window 15, 3 iterations, poly_n 5, poly_sigma 1.2): what a user would reach for first."""
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def dis_preset(preset: int) -> Callable[[], Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    def make():
        dis = cv2.DISOpticalFlow_create(preset)
        return lambda a, b: dis.calc(a, b, None)
    return make


#: Flow peers: name -> factory returning flow(gray_a, gray_b) -> (H, W, 2) float32 (uint8 grey inputs).
FLOW_PEERS: dict[str, Callable[[], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "opencv-farneback": lambda: farneback,
    "opencv-dis-ultrafast": dis_preset(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST),
    "opencv-dis-medium": dis_preset(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM),
}


def peer_flow_job(method: str, frames_dir: Path, job_dir: Path) -> float:
    """Forward and backward flow of every consecutive pair with a peer, plus the forward-backward check,
    written as a job's `flow/` (gap 1): the same work as Shotfield's flow stage. Returns the seconds taken
    (frame loading included, as in the stage)."""
    start = time.perf_counter()
    paths = sorted(frames_dir.glob("*.png"))
    gray = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]
    if len(gray) < 2 or any(g is None for g in gray):
        raise RuntimeError(f"{frames_dir}: need at least two readable PNG frames")
    flow = FLOW_PEERS[method]()
    h, w = gray[0].shape
    writer = flow_store.FlowWriter(job_dir, 1, len(gray) - 1, h, w)
    for t in range(len(gray) - 1):
        fwd, bwd = flow(gray[t], gray[t + 1]), flow(gray[t + 1], gray[t])
        writer.put(t, fwd, bwd, forward_backward_consistent(fwd, bwd), forward_backward_consistent(bwd, fwd))
    writer.close(ok=True)
    flow_store.write_index(job_dir, [1], len(gray), w, h, method=method)
    return time.perf_counter() - start


def resize_flow(flow: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 2) flow resampled to (height, width, 2), vectors scaled by the size ratio."""
    h, w = flow.shape[:2]
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    return out * np.array([width / w, height / h], np.float32)


def evaluate_flow_job(job_dir: Path, gt_flow: Path | None) -> dict:
    """Metrics of a job's gap-1 flow: forward-backward consistency (%) for all, and against GT (flow.npz
    `forward` (F-1, H, W, 2), `forward_visible` (F-1, H, W)) the EPE statistics on GT-visible pixels."""
    store = flow_store.FlowStore(job_dir)
    pairs = store.frames - 1
    consistent = [forward_backward_consistent(store.forward(t), store.backward(t)) for t in range(pairs)]
    metrics = {"fb_consistent_pct": 100.0 * float(np.mean(consistent)),
               "stage_valid_pct": 100.0 * float(np.mean([store.forward_valid(t) for t in range(pairs)])),
               "pairs": pairs, "gaps": store.gaps, "size": [store.width, store.height]}
    if gt_flow is None:
        return metrics
    with np.load(gt_flow) as gt:
        gt_forward, gt_visible = gt["forward"], gt["forward_visible"].astype(bool)
    n = min(pairs, len(gt_forward))
    gh, gw = gt_forward.shape[1:3]
    pred = np.stack([store.forward(t) for t in range(n)])
    if (store.height, store.width) != (gh, gw):
        pred = np.stack([resize_flow(p, gw, gh) for p in pred])
        metrics["resized_to_gt"] = [gw, gh]
    metrics.update(flow_errors(pred, gt_forward[:n], gt_visible[:n]).as_dict())
    if (store.height, store.width) == (gh, gw):
        metrics["fb_agrees_with_gt_visible_pct"] = 100.0 * float(np.mean(np.stack(consistent[:n]) == gt_visible[:n]))
    return metrics


def bench_flow(ctx: "Context", shot: Shot) -> list[Record]:
    """Shotfield's `flow` stage (OpenCV DIS at the quality's settings) against FLOW_PEERS."""
    work = ctx.work / "flow" / shot.slug
    gt_flow = shot.gt / "flow.npz" if shot.gt else None
    ours = Record("flow", shot.name, f"shotfield ({ctx.quality})", "shotfield")
    peers = {name: Record("flow", shot.name, name, "peer") for name in PEERS["flow"]}
    for rep in range(ctx.repeats):
        job = work / "shotfield"
        shutil.rmtree(job, ignore_errors=True)
        cmd = [*shotfield_command(), "run", str(shot.footage), "--job", str(job), "--stages", "ingest,flow",
               "--quality", ctx.quality]
        for flag, value in (("--device", ctx.device), ("--flow-gaps", "1"), ("--long-side", shot.long_side)):
            if value is not None and shotfield_supports(flag):
                cmd += [flag, str(value)]
        if shotfield_supports("--no-progress"):
            cmd.append("--no-progress")
        run = run_measured(cmd, work / "shotfield.log")
        if run.returncode != 0:
            ours.error = f"exit {run.returncode}: {tail(run.log, 1)}"
            log(f"  shotfield failed: {tail(run.log)}")
        elif ours.error is None:
            stage = json.loads((job / "job.json").read_text())["stages"]["flow"]
            ours.wall_s.append(run.wall_s)
            ours.peak_mb.append(run.peak_mb)
            ours.compute_s.append(stage.get("seconds"))
            ours.details = {"command": cmd, "job_stage": stage}
        if shot.frames is None:  # real footage: the peers read Shotfield's working frames (or a fallback)
            shot.frames = working_frames(shot, ctx, job / "frames" if ours.error is None else None)
        for name, rec in peers.items():
            peer_job = work / name
            shutil.rmtree(peer_job, ignore_errors=True)
            out = work / f"{name}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--peer-worker", f"flow:{name}",
                   "--frames-dir", str(shot.frames), "--job-dir", str(peer_job), "--result", str(out)]
            run = run_measured(cmd, work / f"{name}.log")
            if run.returncode != 0:
                rec.error = f"exit {run.returncode}: {tail(run.log, 1)}"
                continue
            rec.wall_s.append(run.wall_s)
            rec.peak_mb.append(run.peak_mb)
            rec.compute_s.append(json.loads(out.read_text())["compute_s"])
            rec.details = {"command": cmd}
        log(f"  flow/{shot.name}: repeat {rep + 1}/{ctx.repeats} done")
    for rec, job in [(ours, work / "shotfield"), *[(r, work / n) for n, r in peers.items()]]:
        if rec.error is None:
            rec.metrics = evaluate_flow_job(job, gt_flow)
    if ours.error is None and ours.metrics["gaps"] != [1]:  # other stages asked for more gaps: more work
        ours.method += f" gaps {','.join(map(str, ours.metrics['gaps']))}"
    return [ours, *peers.values()]


def working_frames(shot: Shot, ctx: "Context", job_frames: Path | None) -> Path:
    """A stable copy of the frames real footage was reduced to: Shotfield's working frames when it ran,
    else the footage decoded with OpenCV and shrunk to the working long side (Shotfield's default if not
    given). Later stages of the same run reuse it (`shot.frames`)."""
    out = ctx.work / "frames" / shot.slug
    shutil.rmtree(out, ignore_errors=True)
    if job_frames is not None and job_frames.is_dir():
        shutil.copytree(job_frames, out)
        return out
    out.mkdir(parents=True)
    cap = cv2.VideoCapture(str(shot.footage))
    long_side, i = shot.long_side or (320 if ctx.quality == "preview" else 960), 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        s = min(1.0, long_side / max(h, w))
        frame = cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else frame
        cv2.imwrite(str(out / f"{i:05d}.png"), frame)
        i += 1
    return out


FLOW_COLUMNS = [("epe_median", "EPE med", "{:.3f}"), ("epe_mean", "EPE mean", "{:.3f}"),
                ("outliers_1px", ">1px %", "{:.1f}"), ("outliers_3px", ">3px %", "{:.1f}"),
                ("fb_consistent_pct", "FB-ok %", "{:.1f}")]


# ------------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class StageBenchmark:
    run: Callable[["Context", Shot], list[Record]]
    columns: list[tuple[str, str, str]]


BENCHMARKS: dict[str, StageBenchmark] = {"flow": StageBenchmark(bench_flow, FLOW_COLUMNS)}
PEERS: dict[str, dict[str, Callable]] = {"flow": FLOW_PEERS}


@dataclass
class Context:
    work: Path
    repeats: int
    device: str | None
    quality: str


def shot_info(shot: Shot) -> dict:
    info = {"footage": str(shot.footage), "gt": str(shot.gt) if shot.gt else None, "long_side": shot.long_side}
    meta = shot.gt.parent / "shot.json" if shot.gt else None
    if meta is not None and meta.is_file():
        data = json.loads(meta.read_text())
        info.update({k: data.get(k) for k in ("options", "frame_count", "width", "height", "total_seconds")})
    return info


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


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
    p.add_argument("--out", type=Path, default=None, help="JSON results (default benchmark_results/<stages>.json)")
    p.add_argument("--cache", type=Path, default=RESULTS / "shots", help="rendered test shots")
    p.add_argument("--work", type=Path, default=RESULTS / "work", help="job folders of the runs")
    # Worker mode (internal): one peer's run in its own process, so its time and memory are its own.
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
                  quality=args.quality)
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
              "records": [record_to_json(r) for r in records], "table": table}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, allow_nan=False))
    os.replace(tmp, out)
    log(f"wrote {out}")
    return 0 if all(r.error is None for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
