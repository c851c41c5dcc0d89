"""Stage `layers`: Shotfield's layered meshes against the two things a compositor would otherwise do with one
frame and its depth: a single camera-projection card at the median depth, and the depth-warped frame
(card_view, depth_warp_view below), scored at the test shots' held-out cameras.

The held-out cameras (gt/heldout/cameras.json) sit at the shot's camera path at their "time", moved 0.25-0.4
units sideways/up off it. The benchmark runs on a ground-truth-camera job (real ingest and flow, then the
shot's exact cameras, depth and motion masks, as tests/conftest.py's `ground_truth_job` does), so the held-out
cameras are already in the job's world frame and the figures are those of the layers alone, not of the solve
or the depth stage; `--layer-reference` is set to the held-out times, so each held-out view is rendered from
the reference frame at its own time (the moving objects are where the reference frame shows them).
The peers use the same reference frame and its ground-truth depth:

- `card_view`: the classic camera-projection card: the reference frame projected onto one plane, fronto-parallel
  to the reference camera at the median depth of the frame (its edge repeated past the frame).
- `depth_warp_view`: the reference frame forward-warped with its depth (each pixel splatted to the nearest target
  pixel, nearest depth wins in a z-buffer), holes (cracks and disocclusions) filled by OpenCV's Telea inpainting,
  what a user gets from the depth pass alone.


Bars (issue 7), checked by `summary`: at the held-out cameras, layers ≥ 26 dB PSNR, ≥ 4 dB above the card and
≥ 1.5 dB above the depth warp (mean over the views); the layers of one reference frame in ≤ 3 minutes at
preview quality (the median of each reference frame's own seconds in layers.json, on the 2-core machine).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import torch

from backend.job import Job
from backend.layers.render import (nearest_reference, read_job_layers, render_surfaces, surfaces_from_arrays,
                                   to_uint8)
from backend.metrics.image import psnr, ssim
from exporters.cameras_json import read_cameras, write_cameras
from exporters.exr import read_depth_exr, write_depth_exr

from .records import Record, StageBenchmark
from .runs import Context, log, run_measured, shotfield_command, tail
from .shots import Shot

def card_view(image: np.ndarray, depth: np.ndarray, K_ref: np.ndarray, world_from_ref: np.ndarray,
              K: np.ndarray, world_from_camera: np.ndarray, width: int, height: int) -> np.ndarray:
    finite = depth[np.isfinite(depth) & (depth > 0)]
    z = float(np.median(finite))
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    grid = np.array([[[0, 0, 1], [0, 0, 1]], [[0, 0, 1], [0, 0, 1]]], np.float32).reshape(4, 3) * z
    card = surfaces_from_arrays("mpi", K_ref, world_from_ref, [rgba], [{"vertices": grid, "grid": np.array([2, 2])}], [z], -1)
    with torch.no_grad():
        return to_uint8(render_surfaces(card, K, world_from_camera, width, height))[0]


def depth_warp_view(image: np.ndarray, depth: np.ndarray, K_ref: np.ndarray, world_from_ref: np.ndarray,
                    K: np.ndarray, world_from_camera: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = depth.shape
    ys, xs = np.mgrid[0:h, 0:w]
    ok = np.isfinite(depth) & (depth > 0)
    pixels = np.stack([xs + 0.5, ys + 0.5, np.ones_like(xs, float)], -1)[ok]
    cam = (pixels @ np.linalg.inv(K_ref).T) * depth[ok][:, None]
    world = cam @ world_from_ref[:3, :3].T + world_from_ref[:3, 3]
    target = (world - world_from_camera[:3, 3]) @ world_from_camera[:3, :3]
    z = target[:, 2]
    proj = target @ K.T
    u = np.floor(proj[:, 0] / z).astype(int)
    v = np.floor(proj[:, 1] / z).astype(int)
    inside = (z > 1e-6) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    colours = image[ok][inside]
    u, v, z = u[inside], v[inside], z[inside]
    order = np.argsort(-z)                   # far first: nearer points overwrite them
    out = np.zeros((height, width, 3), np.uint8)
    filled = np.zeros((height, width), np.uint8)
    out[v[order], u[order]] = colours[order]
    filled[v[order], u[order]] = 1
    return cv2.inpaint(out, (filled == 0).astype(np.uint8), 3, cv2.INPAINT_TELEA)


PEERS = {
    "single card (median depth)": card_view,
    "depth warp (z-buffer + Telea)": depth_warp_view,
}
COLUMNS = [("psnr", "PSNR", "{:.2f}"), ("ssim", "SSIM", "{:.3f}"), ("psnr_static", "PSNR static", "{:.2f}"),
           ("layers", "layers", "{}"), ("triangles", "triangles", "{}"), ("seconds_per_reference", "s/ref", "{:.1f}")]
PSNR_MIN, OVER_CARD, OVER_WARP, SECONDS_MAX = 26.0, 4.0, 1.5, 180.0


def ground_truth_job(ctx: Context, shot: Shot, job: Path) -> str | None:
    """ingest + flow by Shotfield, then the shot's cameras, depth and motion masks marked as solve and depth."""
    cmd = [*shotfield_command(), "run", str(shot.footage), "--job", str(job), "--stages", "ingest,flow",
           "--quality", ctx.quality, "--long-side", str(shot.long_side), "--no-progress"]
    run = run_measured(cmd, job.parent / "ingest.log")
    if run.returncode != 0:
        return f"ingest/flow failed: {tail(run.log, 1)}"
    write_cameras(job / "camera" / "cameras.json", read_cameras(shot.gt / "cameras.json"))
    (job / "masks" / "motion").mkdir(parents=True, exist_ok=True)
    (job / "depth").mkdir(exist_ok=True)
    for path in sorted((shot.gt / "depth").glob("*.exr")):
        write_depth_exr(job / "depth" / path.name, read_depth_exr(path))
        index = cv2.imread(str(shot.gt / "object_index" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(job / "masks" / "motion" / f"{path.stem}.png"), np.where(index > 0, 255, 0).astype(np.uint8))
    with Job.open(job) as handle:
        for name in ("solve", "depth"):
            handle.stage(name).update(status="done", key="ground-truth", error=None, seconds=0.0, device="cpu")
        handle.save()
    return None


def bench_layers(ctx: Context, shot: Shot) -> list[Record]:
    ours = Record("layers", shot.name, f"shotfield ({ctx.quality})", "shotfield")
    peers = {name: Record("layers", shot.name, name, "peer") for name in PEERS}
    records = [ours, *peers.values()]
    if shot.gt is None or not (shot.gt / "heldout" / "cameras.json").is_file():
        for r in records:
            r.error = "needs a rendered test shot with held-out views"
        return records
    work = ctx.work / "layers" / shot.slug
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    base = work / "ground-truth"
    if (why := ground_truth_job(ctx, shot, base)) is not None:
        for r in records:
            r.error = why
        return records
    held = read_cameras(shot.gt / "heldout" / "cameras.json")
    times = sorted({int(round(f.time)) for f in held.frames})
    job = work / "shotfield"
    for rep in range(ctx.repeats):
        shutil.rmtree(job, ignore_errors=True)
        shutil.copytree(base, job)
        cmd = [*shotfield_command(), "run", str(shot.footage), "--job", str(job), "--stages", "layers",
               "--quality", ctx.quality, "--long-side", str(shot.long_side), "--no-progress",
               "--layer-reference", ",".join(map(str, times))]
        if ctx.device:
            cmd += ["--device", ctx.device]
        run = run_measured(cmd, work / "shotfield.log", timeout_s=ctx.peer_timeout_s)
        if run.returncode != 0:
            ours.error = f"exit {run.returncode}: {tail(run.log, 1)}"
            log(f"  shotfield layers failed: {tail(run.log)}")
            return records
        seconds = json.loads((job / "job.json").read_text())["stages"]["layers"]["seconds"]
        ours.wall_s.append(run.wall_s)
        ours.peak_mb.append(run.peak_mb)
        ours.compute_s.append(seconds)
    _score(shot, job, held, ours, peers)
    return records


def _score(shot: Shot, job: Path, held, ours: Record, peers: dict[str, Record]) -> None:
    references = read_job_layers(job, "cpu")
    doc = json.loads((job / "layers" / "layers.json").read_text())
    cameras = {f.index: f for f in read_cameras(job / "camera" / "cameras.json").frames}
    frames_dir = job / "frames"
    scores: dict[str, list] = {"shotfield": [], **{name: [] for name in peers}}
    for n, cam in enumerate(held.frames):
        truth = cv2.imread(str(shot.gt / "heldout" / "frames" / f"{n:05d}.png"))[..., ::-1] / 255.0
        static = cv2.imread(str(shot.gt / "heldout" / "object_index" / f"{n:05d}.png"), cv2.IMREAD_UNCHANGED) == 0
        layers = nearest_reference(references, float(cam.time), cam.world_from_camera)
        with torch.no_grad():
            rgb = to_uint8(render_surfaces(layers, cam.K, cam.world_from_camera, held.width, held.height))[0]
        scores["shotfield"].append(_metrics(rgb, truth, static))
        r = layers.frame
        image = cv2.imread(str(frames_dir / f"{r:05d}.png"))[..., ::-1].copy()
        depth = read_depth_exr(job / "depth" / f"{r:05d}.exr")
        for name, view in PEERS.items():
            out = view(image, depth, cameras[r].K, cameras[r].world_from_camera, cam.K, cam.world_from_camera,
                       held.width, held.height)
            scores[name].append(_metrics(out, truth, static))
    for name, rec in [("shotfield", ours), *peers.items()]:
        rec.metrics.update({k: float(np.mean([s[k] for s in scores[name]])) for k in ("psnr", "ssim", "psnr_static")})
        rec.details["per_view"] = scores[name]
    refs = doc["references"]
    ours.metrics.update(layers=int(np.mean([len(r["layers"]) for r in refs])),
                        triangles=int(np.mean([sum(l["triangles"] for l in r["layers"]) for r in refs])),
                        seconds_per_reference=float(np.median([r["seconds"] for r in refs])),
                        reference_psnr_db=float(np.mean([r["reference_psnr_db"] for r in refs])))


def _metrics(rgb: np.ndarray, truth: np.ndarray, static: np.ndarray) -> dict:
    pred = rgb / 255.0
    return {"psnr": psnr(pred, truth), "ssim": ssim(pred, truth), "psnr_static": psnr(pred, truth, static)}


def summary(records: list[Record]) -> tuple[str, list]:
    lines, checks = ["layers bars (issue 7):"], []
    for shot in sorted({r.shot for r in records if r.stage == "layers"}):
        mine = [r for r in records if r.stage == "layers" and r.shot == shot]
        ours = next((r for r in mine if r.role == "shotfield"), None)
        if ours is None or ours.error or "psnr" not in ours.metrics:
            checks.append({"shot": shot, "bar": "layers ran", "status": "FAIL", "value": ours.error if ours else None})
            continue
        peer = {r.method: r.metrics.get("psnr", float("nan")) for r in mine if r.role == "peer"}
        card, warp = peer.get("single card (median depth)"), peer.get("depth warp (z-buffer + Telea)")
        p = ours.metrics["psnr"]
        for bar, value, ok in (
                (f"PSNR >= {PSNR_MIN} dB", p, p >= PSNR_MIN),
                (f">= {OVER_CARD} dB above the single card", p - card, p - card >= OVER_CARD),
                (f">= {OVER_WARP} dB above the depth warp", p - warp, p - warp >= OVER_WARP),
                (f"<= {SECONDS_MAX:.0f} s per reference frame", ours.metrics["seconds_per_reference"],
                 ours.metrics["seconds_per_reference"] <= SECONDS_MAX)):
            checks.append({"shot": shot, "bar": bar, "status": "PASS" if ok else "FAIL", "value": round(value, 2)})
    lines += [f"  {c['shot']}: {c['bar']}: {c['status']} ({c['value']})" for c in checks]
    return "\n".join(lines), checks


BENCHMARK = StageBenchmark(bench_layers, COLUMNS, summary)
