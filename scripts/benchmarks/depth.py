"""Stage `depth`: Shotfield's depth (learned on the shot, backend/depth/) against depth a user could get
otherwise, on the test shots (scored against their exact depth):

- "sparse-points-griddata": the solve's sparse SfM points projected into each frame and interpolated
  (scipy griddata, linear inside their hull, nearest outside);
- "pycolmap-dense-stereo": COLMAP's PatchMatch stereo, which needs CUDA (reported, not run, without it).

Scores (backend/metrics/depth.py): AbsRel and δ<1.25 with ONE global scale for the whole shot, the scale of
the Sim(3) that aligns the solved camera path with the true one (backend/metrics/camera.py; VFX needs one
consistent scale), and with per-frame median scaling; the same on the moving objects and on the static set
(gt/object_index), and their ratio; temporal consistency (depth.json). Object motion (depth/motion, the
residual translation t -> t+1): its end-point error against the shot's true scene flow (gt/flow.npz
`scene_flow`) on the moving objects' pixels, as a percentage of the mean true motion there, and the static
pixels' mean |motion| (ideally 0) on the same scale; our vectors are taken into the true world by the
rotation and scale of the camera Sim(3) alignment. Costs: wall time and peak memory of
`shotfield run --stages ingest,flow,solve,depth` (run_measured) and the depth stage's own seconds.

Learned intrinsics ("shotfield learned cameras"): the solve's fallback, `ego_motion.estimate_cameras` on the
same job with its cameras withheld and the solve's motion masks (effort 1, in its own process): the focal
length against the true one (bar: within 5 %), plus the self-calibration scan's own answer.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from backend.metrics.camera import align_trajectories
from backend.metrics.depth import depth_errors
from exporters import ply
from exporters.cameras_json import read_cameras
from exporters.exr import read_depth_exr

from .records import Record, StageBenchmark
from .runs import Context, log, run_measured, shotfield_run_command, tail
from .shots import Shot

STAGES = "ingest,flow,solve,depth"
BARS = {"abs_rel_global": 0.06, "delta1_global": 0.95, "moving_static_ratio": 1.5, "preview_minutes_default": 5.0,
        "learned_focal_error": 0.05}

#: Run in its own process from the repository root: argv = job, out.json, device, quality.
LEARNED_CAMERAS = """
import json, sys, time
from pathlib import Path
from backend.depth.ego_motion import estimate_cameras
from backend.depth.self_calibration import scan_focal
from backend.depth.shot import load_moving, load_shot
from backend.frames import load_frames
job, out, device, quality = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
n, h, w = load_frames(job).shape[:3]
moving = load_moving(job, n, h, w)
started = time.monotonic()
scan = scan_focal(load_shot(job, use_cameras=False, moving=moving))
scan_s = time.monotonic() - started
track = estimate_cameras(job, moving, device, effort=1.0, quality=quality)
out.write_text(json.dumps({"f": track.intrinsics.f, "scan_f": scan.f, "scan_s": scan_s,
                           "seconds": time.monotonic() - started, "width": w}))
"""


def _dense_stereo_available() -> bool:
    try:
        import pycolmap

        return bool(getattr(pycolmap, "has_cuda", False))
    except ImportError:
        return False


PEERS = {"sparse-points-griddata": "scipy griddata of the solve's sparse points",
         "pycolmap-dense-stereo": "pycolmap patch_match_stereo (CUDA only)"}


def sparse_points_depth(job: Path) -> np.ndarray:
    """The peer: per frame, the sparse points' planar depths interpolated over the image."""
    from scipy.interpolate import griddata

    cams = read_cameras(job / "camera" / "cameras.json")
    points = ply.points_and_colours(job / "camera" / "points.ply")[0].astype(np.float64)
    h, w = cams.height, cams.width
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    out = np.zeros((len(cams.frames), h, w), np.float32)
    for i, (K, wfc) in enumerate(zip(cams.K, cams.world_from_camera)):
        cfw = np.linalg.inv(wfc)
        cam = points @ cfw[:3, :3].T + cfw[:3, 3]
        cam = cam[cam[:, 2] > 0]
        uv = (cam @ K.T)[:, :2] / cam[:, 2:3]
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        uv, z = uv[inside], cam[inside, 2]
        if len(z) < 4:
            continue
        lin = griddata(uv, z, (xs, ys), method="linear")
        near = griddata(uv, z, (xs, ys), method="nearest")
        out[i] = np.where(np.isfinite(lin), lin, near)
    return out


def evaluate(pred: np.ndarray, job: Path, gt: Path) -> dict:
    """Metrics of a (F, H, W) depth in the job's world units against the shot's ground truth."""
    n = len(pred)
    gt_depth = np.stack([read_depth_exr(gt / "depth" / f"{i:05d}.exr") for i in range(n)])
    objects = np.stack([cv2.imread(str(gt / "object_index" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED) for i in range(n)])
    est = read_cameras(job / "camera" / "cameras.json").world_from_camera
    true = read_cameras(gt / "cameras.json").world_from_camera
    scale = float(align_trajectories(est, true).sim3.scale)
    g = depth_errors(pred * scale, gt_depth)
    static = depth_errors(pred * scale, gt_depth, mask=objects == 0)
    moving = depth_errors(pred * scale, gt_depth, mask=objects > 0)
    per_frame = [depth_errors(pred[i], gt_depth[i], median_scaling=True) for i in range(n)]
    m = {"global_scale": scale, "abs_rel_global": g.abs_rel, "delta1_global": g.delta1, "coverage": g.coverage,
         "abs_rel_static": static.abs_rel, "abs_rel_moving": moving.abs_rel,
         "moving_static_ratio": moving.abs_rel / static.abs_rel if static.abs_rel else None,
         "abs_rel_median_scaled": float(np.mean([e.abs_rel for e in per_frame])),
         "delta1_median_scaled": float(np.mean([e.delta1 for e in per_frame]))}
    return m


def motion_errors(job: Path, gt: Path) -> dict:
    """The depth stage's object-motion maps against the true scene flow (both t -> t+1, world axes).

    Our world is the solve's: a vector v (a difference of two points) maps into the true world as
    scale * R v with the Sim(3) that aligns the solved camera path with the true one (its translation drops
    out). Moving = gt/object_index > 0. Returns the EPE over the moving pixels as a percentage of their mean
    true motion, and the mean |v| over the static pixels as a percentage of the same (0 is right there)."""
    from exporters.exr import read_exr

    with np.load(gt / "flow.npz") as f:
        truth = f["scene_flow"].astype(np.float64)                # (F-1, H, W, 3)
    est = read_cameras(job / "camera" / "cameras.json").world_from_camera
    true = read_cameras(gt / "cameras.json").world_from_camera
    sim3 = align_trajectories(est, true).sim3
    errors, motion, static = [], [], []
    for t in range(len(truth)):
        path = job / "depth" / "motion" / f"{t:05d}.exr"
        if not path.is_file():
            return {}
        m = read_exr(path)
        v = np.stack([m["X"], m["Y"], m["Z"]], -1).astype(np.float64)
        if v.shape[:2] != truth.shape[1:3]:
            return {}
        v = sim3.scale * v @ sim3.rotation.T
        ids = cv2.imread(str(gt / "object_index" / f"{t:05d}.png"), cv2.IMREAD_UNCHANGED)
        moving = ids > 0
        errors.append(np.linalg.norm(v[moving] - truth[t][moving], axis=1))
        motion.append(np.linalg.norm(truth[t][moving], axis=1))
        static.append(np.linalg.norm(v[~moving], axis=1))
    e, m, s = np.concatenate(errors), np.concatenate(motion), np.concatenate(static)
    if e.size == 0:
        return {}
    scale = max(float(m.mean()), 1e-12)
    return {"motion_epe_pct": 100 * float(e.mean()) / scale, "motion_true_mean": float(m.mean()),
            "motion_static_pct": 100 * float(s.mean()) / scale}


def bench_depth(ctx: Context, shot: Shot) -> list[Record]:
    work = ctx.work / "depth" / shot.slug
    ours = Record("depth", shot.name, f"shotfield ({ctx.quality})", "shotfield")
    grid = Record("depth", shot.name, "sparse-points-griddata", "peer")
    stereo = Record("depth", shot.name, "pycolmap-dense-stereo", "peer")
    if not _dense_stereo_available():
        stereo.error = "pycolmap's patch_match_stereo needs CUDA; this pycolmap has none (cannot run here)"
    job = work / "shotfield"
    for rep in range(ctx.repeats):
        shutil.rmtree(job, ignore_errors=True)
        cmd = shotfield_run_command(ctx, shot, job, STAGES)
        run = run_measured(cmd, work / "shotfield.log")
        if run.returncode != 0:
            ours.error = f"exit {run.returncode}: {tail(run.log, 1)}"
            log(f"  shotfield failed: {tail(run.log)}")
            break
        stage = json.loads((job / "job.json").read_text())["stages"]["depth"]
        ours.wall_s.append(run.wall_s)
        ours.peak_mb.append(run.peak_mb)
        ours.compute_s.append(stage.get("seconds"))
        started = time.perf_counter()
        peer_depth = sparse_points_depth(job)
        grid.compute_s.append(time.perf_counter() - started)
        log(f"  depth/{shot.name}: repeat {rep + 1}/{ctx.repeats} done")
    if ours.error is None and shot.gt is not None:
        n = len(list((job / "depth").glob("[0-9]*.exr")))
        pred = np.stack([read_depth_exr(job / "depth" / f"{i:05d}.exr") for i in range(n)])
        ours.metrics = evaluate(pred, job, shot.gt)
        summary = json.loads((job / "depth" / "depth.json").read_text())
        ours.metrics["temporal_median_rel"] = summary["temporal_consistency"]["median_rel"]
        ours.metrics["failure_mode"] = summary["failure_check"]["mode"]
        ours.metrics.update(motion_errors(job, shot.gt))
        ours.details = {"depth_json": {k: summary[k] for k in ("losses", "steps", "seconds", "sparse_points")}}
        grid.metrics = evaluate(peer_depth, job, shot.gt)
    elif ours.error is not None:
        grid.error = "needs the solve of the Shotfield run, which failed"
    learned = bench_learned_cameras(ctx, shot, job, work) if ours.error is None and shot.gt is not None else None
    return [ours, grid, stereo] + ([learned] if learned else [])


def bench_learned_cameras(ctx: Context, shot: Shot, job: Path, work: Path) -> Record:
    rec = Record("depth", shot.name, f"shotfield learned cameras ({ctx.quality})", "shotfield")
    out = work / "learned_cameras.json"
    out.unlink(missing_ok=True)
    device = "cuda" if ctx.device == "cuda" else "cpu"
    run = run_measured([sys.executable, "-c", LEARNED_CAMERAS, str(job), str(out), device, ctx.quality],
                       work / "learned_cameras.log")
    if run.returncode != 0 or not out.is_file():
        rec.error = f"exit {run.returncode}: {tail(run.log, 1)}"
        return rec
    got = json.loads(out.read_text())
    true = read_cameras(shot.gt / "cameras.json")
    true_f = float(true.K[0, 0, 0]) * got["width"] / true.width
    rec.wall_s.append(run.wall_s)
    rec.peak_mb.append(run.peak_mb)
    rec.compute_s.append(got["seconds"])
    rec.metrics = {"focal_px": got["f"], "focal_true_px": true_f, "focal_error": got["f"] / true_f - 1,
                   "scan_focal_px": got["scan_f"], "scan_focal_error": got["scan_f"] / true_f - 1,
                   "scan_s": got["scan_s"]}
    return rec


COLUMNS = [("abs_rel_global", "AbsRel (global)", "{:.4f}"), ("delta1_global", "δ<1.25 (global)", "{:.4f}"),
           ("abs_rel_median_scaled", "AbsRel (median)", "{:.4f}"), ("delta1_median_scaled", "δ<1.25 (median)", "{:.4f}"),
           ("abs_rel_static", "AbsRel static", "{:.4f}"), ("abs_rel_moving", "AbsRel moving", "{:.4f}"),
           ("moving_static_ratio", "moving/static", "{:.2f}"), ("temporal_median_rel", "temporal med", "{:.4f}"),
           ("motion_epe_pct", "motion EPE %", "{:.1f}"), ("motion_static_pct", "static motion %", "{:.1f}"),
           ("focal_error", "focal err", "{:+.4f}"), ("scan_focal_error", "scan focal err", "{:+.4f}")]


def summary(records: list[Record]) -> tuple[str, list]:
    lines, out = [], []
    for r in records:
        if r.stage != "depth" or r.role != "shotfield" or r.error or not r.metrics:
            continue
        m = r.metrics
        if "focal_error" in m:
            checks = {"learned_focal": abs(m["focal_error"]) <= BARS["learned_focal_error"]}
            verdict = "PASS" if checks["learned_focal"] else "FAIL"
            lines.append(f"depth/{r.shot} learned cameras: learned_focal {verdict} "
                         f"({m['focal_px']:.1f} px for {m['focal_true_px']:.1f})")
            out.append({"shot": r.shot, "method": r.method, "checks": checks})
            continue
        checks = {"abs_rel_global": m["abs_rel_global"] <= BARS["abs_rel_global"],
                  "delta1_global": m["delta1_global"] >= BARS["delta1_global"],
                  "moving_static_ratio": (m["moving_static_ratio"] or 99) <= BARS["moving_static_ratio"]}
        if r.shot == "default" and r.wall_s:
            checks["preview_minutes"] = float(np.median(r.compute_s)) / 60 <= BARS["preview_minutes_default"]
        lines.append(f"depth/{r.shot}: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in checks.items()))
        out.append({"shot": r.shot, "checks": checks})
    return "\n".join(lines), out


BENCHMARK = StageBenchmark(bench_depth, COLUMNS, summary)
