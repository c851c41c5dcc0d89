"""Stage `flow`: Shotfield's optical flow against OpenCV's (Farneback, DIS presets), scored on the GT flow."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from backend import flow_store
from backend.metrics.flow import flow_errors, forward_backward_consistent

from .records import Record
from .runs import REPO_ROOT, Context, log, run_measured, shotfield_run_command, tail
from .shots import Shot, working_frames

#: The entry point whose `--peer-worker flow:METHOD` runs one flow peer in its own process.
ENTRY_POINT = REPO_ROOT / "scripts" / "benchmark.py"


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


def bench_flow(ctx: Context, shot: Shot) -> list[Record]:
    """Shotfield's `flow` stage (OpenCV DIS at the quality's settings) against FLOW_PEERS."""
    work = ctx.work / "flow" / shot.slug
    gt_flow = shot.gt / "flow.npz" if shot.gt else None
    ours = Record("flow", shot.name, f"shotfield ({ctx.quality})", "shotfield")
    peers = {name: Record("flow", shot.name, name, "peer") for name in FLOW_PEERS}
    for rep in range(ctx.repeats):
        job = work / "shotfield"
        shutil.rmtree(job, ignore_errors=True)
        cmd = shotfield_run_command(ctx, shot, job, "ingest,flow", options=(("--flow-gaps", "1"),))
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
            shot.frames = working_frames(shot, ctx.work, ctx.quality, job / "frames" if ours.error is None else None)
        for name, rec in peers.items():
            peer_job = work / name
            shutil.rmtree(peer_job, ignore_errors=True)
            out = work / f"{name}.json"
            cmd = [sys.executable, str(ENTRY_POINT), "--peer-worker", f"flow:{name}",
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



FLOW_COLUMNS = [("epe_median", "EPE med", "{:.3f}"), ("epe_mean", "EPE mean", "{:.3f}"),
                ("outliers_1px", ">1px %", "{:.1f}"), ("outliers_3px", ">3px %", "{:.1f}"),
                ("fb_consistent_pct", "FB-ok %", "{:.1f}")]

