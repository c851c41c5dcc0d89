"""Stage `inpaint`: clean plates of the moving objects against per-frame OpenCV Telea inpainting and flow-guided
propagation, scored on the shot rendered without its moving objects (gt/clean).

On a rendered shot, a job is prepared with the real `ingest` and `flow` stages and, as the depth stage may not
be there yet, the shot's ground-truth cameras, depth and motion masks (solve and depth marked done: what the
tests' `ground_truth_pipeline` does); with SHOTFIELD_BENCH_INPAINT_CHAIN=1 in the environment the real solve
and depth stages run instead. Then, each timed in its own
process (wall time, peak memory):

- shotfield: `shotfield run --stages inpaint --remove moving` (the stage's own seconds are "compute s");
- opencv-telea: `cv2.inpaint(frame, mask, 5, INPAINT_TELEA)` on every frame, with Shotfield's masks;
- flow-guided: the flow inside the mask is completed from its surroundings (Telea on each flow channel, as
  flow-guided video inpainting does), then each masked pixel follows the chained flow to the nearest frame
  (forward and backward, up to the whole shot) where it lands outside that frame's mask, and copies the
  colour there; what no frame reaches is Telea-inpainted.

Metrics: PSNR/SSIM inside the removal mask (Shotfield's masks, and the GT object masks dilated by the same
radius: both reported) and over the whole frame; temporal flicker: the mean absolute change inside the mask
from frame t to t+1 after warping t+1 back by the background's flow, computed the same way for the GT clean
plates (their own flicker is resampling only). The background flow is DIS flow on the GT clean plates (the
GT flow of the shot is that of whatever is in front, the objects inside the mask). Also: a mask drawn on ONE
frame (the GT mask of object 1 on the middle frame) is propagated by a second run; its IoU with the GT object
masks on every frame where the object shows. The same mask drawn on four other frames (one run each) shows
whether the follower depends on the frame drawn: reported, not a bar.

    python scripts/benchmark.py --stages inpaint --shots quick --repeats 1
    python -m scripts.benchmarks.inpaint --peer NAME --job JOB --out DIR    (one peer, as the benchmark runs it)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from backend.metrics.image import psnr, ssim  # noqa: E402
from scripts.benchmarks.records import Record, StageBenchmark  # noqa: E402
from scripts.benchmarks.runs import Context, log, run_measured, shotfield_command, tail  # noqa: E402

TELEA_RADIUS = 5
DRAWN_OBJECT = 1


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(path)
    return image[..., ::-1].copy()


def _read_mask(path: Path) -> np.ndarray:
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise FileNotFoundError(path)
    return m > 127


def _frames(folder: Path, count: int) -> np.ndarray:
    return np.stack([_read_rgb(folder / f"{i:05d}.png") for i in range(count)])


def _masks(folder: Path, count: int) -> np.ndarray:
    return np.stack([_read_mask(folder / f"{i:05d}.png") for i in range(count)])


# --- peers ------------------------------------------------------------------------------------------------

def telea(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    return np.stack([cv2.inpaint(f, m.astype(np.uint8), TELEA_RADIUS, cv2.INPAINT_TELEA) for f, m in zip(frames, masks)])


def complete_flow(flow: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The flow inside `mask` replaced by a smooth fill from around it (the object's own motion is not the
    background's)."""
    if not mask.any():
        return flow
    hole = mask.astype(np.uint8)
    return np.stack([cv2.inpaint(np.ascontiguousarray(flow[..., c]), hole, TELEA_RADIUS, cv2.INPAINT_TELEA)
                     for c in range(2)], axis=-1)


def flow_guided(frames: np.ndarray, masks: np.ndarray, forward: list, backward: list) -> np.ndarray:
    """Copy each masked pixel from the nearest frame where the chained (completed) flow lands outside the
    mask. forward[t]: flow t -> t+1 of frame t's pixels; backward[t]: flow t+1 -> t of frame t+1's pixels."""
    n, h, w = masks.shape
    fwd = [complete_flow(forward[t], masks[t]) for t in range(n - 1)]
    bwd = [complete_flow(backward[t], masks[t + 1]) for t in range(n - 1)]
    out = frames.copy()
    for t in range(n):
        ys, xs = np.nonzero(masks[t])
        if len(ys) == 0:
            continue
        todo = np.ones(len(ys), bool)
        colours = np.zeros((len(ys), 3), np.float32)
        # Walk both directions in order of distance: t+1, t-1, t+2, t-2, ...
        pos = {1: np.stack([xs + 0.5, ys + 0.5], 1).astype(np.float32), -1: np.stack([xs + 0.5, ys + 0.5], 1).astype(np.float32)}
        alive = {1: np.ones(len(ys), bool), -1: np.ones(len(ys), bool)}
        for k in range(1, n):
            for step in (1, -1):
                s, dst = t + step * (k - 1), t + step * k
                if not 0 <= dst < n or not todo.any():
                    continue
                flow = fwd[s] if step == 1 else bwd[dst]
                p = pos[step]
                d = cv2.remap(flow, p[:, 0:1] - 0.5, p[:, 1:2] - 0.5, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[:, 0]
                p = p + d
                pos[step] = p
                inside = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
                alive[step] &= inside
                xi = np.clip(p[:, 0].astype(int), 0, w - 1)
                yi = np.clip(p[:, 1].astype(int), 0, h - 1)
                seen = alive[step] & todo & ~masks[dst][yi, xi]
                if seen.any():
                    sample = cv2.remap(frames[dst].astype(np.float32), p[seen, 0:1] - 0.5, p[seen, 1:2] - 0.5,
                                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[:, 0]
                    colours[seen] = sample
                    todo &= ~seen
        out[t][ys[~todo], xs[~todo]] = np.clip(np.round(colours[~todo]), 0, 255).astype(np.uint8)
        if todo.any():
            hole = np.zeros((h, w), np.uint8)
            hole[ys[todo], xs[todo]] = 1
            out[t] = cv2.inpaint(out[t], hole, TELEA_RADIUS, cv2.INPAINT_TELEA)
    return out


PEERS = {
    "opencv-telea": "OpenCV Telea inpainting on every frame on its own (radius 5)",
    "flow-guided": "flow completed inside the mask, chained to the nearest frame that saw the background, copied",
}


def run_peer(name: str, job: Path, out: Path) -> None:
    """One peer on a job that has frames/, masks/ (Shotfield's removal masks) and flow/ (gap 1)."""
    from backend.flow_store import FlowStore

    count = len(list((job / "frames").glob("*.png")))
    frames = _frames(job / "frames", count)
    masks = _masks(job / "masks", count)
    start = time.perf_counter()
    if name == "opencv-telea":
        plates = telea(frames, masks)
    elif name == "flow-guided":
        store = FlowStore(job)
        plates = flow_guided(frames, masks, [store.forward(t, 1) for t in range(count - 1)],
                             [store.backward(t, 1) for t in range(count - 1)])
    else:
        raise SystemExit(f"unknown peer {name}; have {', '.join(PEERS)}")
    seconds = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(plates):
        cv2.imwrite(str(out / f"{i:05d}.png"), p[..., ::-1])
    (out / "result.json").write_text(json.dumps({"compute_s": seconds}))


# --- metrics ----------------------------------------------------------------------------------------------

def background_flow(clean: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(flow t -> t+1, forward-backward valid) of the GT clean plates, DIS at the finest preset."""
    from backend.metrics.flow import forward_backward_consistent

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = [cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in clean]
    out = []
    for t in range(len(clean) - 1):
        f, b = dis.calc(grey[t], grey[t + 1], None), dis.calc(grey[t + 1], grey[t], None)
        out.append((f, forward_backward_consistent(f, b)))
    return out


def flicker(plates: np.ndarray, masks: np.ndarray, flows) -> float:
    """Mean absolute change (0..255) inside the mask between frame t and frame t+1 warped back by the
    background flow, over the pixels whose flow is consistent and lands inside the frame."""
    h, w = masks.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    changes = []
    for t, (f, valid) in enumerate(flows):
        mx, my = xs + f[..., 0], ys + f[..., 1]
        use = masks[t] & valid & (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        nxt = cv2.remap(plates[t + 1].astype(np.float32), mx, my, cv2.INTER_LINEAR)
        changes.append(np.abs(nxt - plates[t].astype(np.float32)).mean(-1)[use])
    values = np.concatenate(changes) if changes else np.zeros(0)
    return float(values.mean()) if len(values) else float("nan")


def _region_scores(plates: np.ndarray, clean: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """PSNR over all masked pixels of the shot (one MSE), mean per-frame SSIM inside the mask."""
    a = plates.astype(np.float64) / 255
    b = clean.astype(np.float64) / 255
    diff = np.concatenate([(x - y)[m] for x, y, m in zip(a, b, masks) if m.any()])
    p = float(10 * np.log10(1 / max(float(np.mean(diff ** 2)), 1e-12)))
    s = float(np.nanmean([ssim(x, y, m) for x, y, m in zip(a, b, masks) if m.sum() > 16]))
    return p, s


def evaluate(plates: np.ndarray, clean: np.ndarray, ours: np.ndarray, gt_masks: np.ndarray, flows, clean_flicker: float) -> dict:
    pm, sm = _region_scores(plates, clean, ours)
    pg, sg = _region_scores(plates, clean, gt_masks)
    a, b = plates / 255.0, clean / 255.0
    f = flicker(plates, ours, flows)
    # The clean plates' own flicker over the same pixels: what lies under the masks (textured ground beside
    # the objects, the edges of things behind them) resamples worse than the frame on average.
    floor = flicker(clean, ours, flows)
    return {"psnr_mask": pm, "ssim_mask": sm, "psnr_gt_mask": pg, "ssim_gt_mask": sg,
            "psnr_frame": float(np.mean([psnr(x, y) for x, y in zip(a, b)])),
            "ssim_frame": float(np.mean([ssim(x, y) for x, y in zip(a, b)])),
            "flicker": f, "flicker_clean": clean_flicker, "flicker_ratio": f / clean_flicker if clean_flicker else None,
            "flicker_clean_mask": floor, "flicker_ratio_mask": f / floor if floor else None}


# --- the benchmark ----------------------------------------------------------------------------------------

def _run(cmd: list[str], log_path: Path):
    return run_measured(cmd, log_path)


def prepare_job(ctx: Context, shot, job: Path) -> str | None:
    """ingest + flow for real, then GT cameras/depth/motion masks (or the real chain). Returns an error or None."""
    from backend.job import Job
    from exporters.cameras_json import read_cameras, write_cameras
    from exporters.exr import read_depth_exr, write_depth_exr

    shutil.rmtree(job, ignore_errors=True)
    chain = os.environ.get("SHOTFIELD_BENCH_INPAINT_CHAIN") == "1"
    stages = "ingest,flow,solve,depth" if chain else "ingest,flow"
    w, h = shot.size
    cmd = [*shotfield_command(), "run", str(shot.footage), "--job", str(job), "--stages", stages, "--quality",
           ctx.quality, "--long-side", str(max(w, h)), "--no-progress"]
    run = _run(cmd, job.parent / "prepare.log")
    if run.returncode != 0:
        return f"preparing the job failed: {tail(run.log, 2)}"
    if chain:
        return None
    write_cameras(job / "camera" / "cameras.json", read_cameras(shot.gt / "cameras.json"))
    (job / "masks" / "motion").mkdir(parents=True, exist_ok=True)
    count = len(list((job / "frames").glob("*.png")))
    for i in range(count):
        index = cv2.imread(str(shot.gt / "object_index" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(job / "masks" / "motion" / f"{i:05d}.png"), np.where(index > 0, 255, 0).astype(np.uint8))
        write_depth_exr(job / "depth" / f"{i:05d}.exr", read_depth_exr(shot.gt / "depth" / f"{i:05d}.exr"))
    with Job.open(job) as handle:
        for name in ("solve", "depth"):
            handle.stage(name).update(status="done", key="ground-truth", error=None, seconds=0.0, device="cpu")
        handle.save()
    return None


def bench_inpaint(ctx: Context, shot) -> list[Record]:
    work = ctx.work / "inpaint" / shot.slug
    ours = Record("inpaint", shot.name, f"shotfield ({ctx.quality})", "shotfield")
    peers = {name: Record("inpaint", shot.name, name, "peer") for name in PEERS}
    records = [ours, *peers.values()]
    if shot.gt is None or not (shot.gt / "clean").is_dir():
        for r in records:
            r.error = "needs a rendered shot (gt/clean)"
        return records
    base = work / "base"
    error = prepare_job(ctx, shot, base / "job")
    if error:
        for r in records:
            r.error = error
        return records
    count = len(list((base / "job" / "frames").glob("*.png")))
    clean = _frames(shot.gt / "clean", count)
    index = np.stack([cv2.imread(str(shot.gt / "object_index" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED) for i in range(count)])
    flows = background_flow(clean)
    clean_flicker = flicker(clean, np.ones(index.shape, bool), flows)
    plates = {}
    for rep in range(ctx.repeats):
        job = work / "shotfield"
        shutil.rmtree(job, ignore_errors=True)
        shutil.copytree(base / "job", job, ignore=shutil.ignore_patterns(".job.lock"))
        cmd = [*shotfield_command(), "run", "--job", str(job), "--stages", "inpaint", "--remove", "moving",
               "--quality", ctx.quality, "--no-progress"]
        if ctx.device:
            cmd += ["--device", ctx.device]
        run = _run(cmd, work / "shotfield.log")
        if run.returncode != 0:
            ours.error = f"exit {run.returncode}: {tail(run.log, 1)}"
            break
        stage = json.loads((job / "job.json").read_text())["stages"]["inpaint"]
        ours.wall_s.append(run.wall_s)
        ours.peak_mb.append(run.peak_mb)
        ours.compute_s.append(stage.get("seconds"))
        ours.details = {"command": cmd, "plates": json.loads((job / "plates" / "plates.json").read_text())}
        for name, rec in peers.items():
            out = work / name
            shutil.rmtree(out, ignore_errors=True)
            peer_cmd = [sys.executable, "-m", "scripts.benchmarks.inpaint", "--peer", name, "--job", str(job), "--out", str(out)]
            prun = _run(peer_cmd, work / f"{name}.log")
            if prun.returncode != 0:
                rec.error = f"exit {prun.returncode}: {tail(prun.log, 1)}"
                continue
            rec.wall_s.append(prun.wall_s)
            rec.peak_mb.append(prun.peak_mb)
            rec.compute_s.append(json.loads((out / "result.json").read_text())["compute_s"])
            rec.details = {"command": peer_cmd}
        log(f"  inpaint/{shot.name}: repeat {rep + 1}/{ctx.repeats} done")
    if ours.error is not None:
        for r in peers.values():
            r.error = r.error or "needs Shotfield's masks"
        return records
    job = work / "shotfield"
    masks = _masks(job / "masks", count)
    radius = ours.details["plates"]["dilation_px"]
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    gt_masks = np.stack([cv2.dilate((i > 0).astype(np.uint8), kernel) > 0 for i in index])
    plates["shotfield"] = _frames(job / "plates", count)
    for name in peers:
        if peers[name].error is None:
            plates[name] = _frames(work / name, count)
    for rec, key in [(ours, "shotfield"), *[(r, n) for n, r in peers.items()]]:
        if key in plates:
            rec.metrics = evaluate(plates[key], clean, masks, gt_masks, flows, clean_flicker)
    ours.metrics.update(_drawn_mask_run(ctx, base / "job", work, index))
    return records


#: Besides the middle frame (the bar's), the mask is also drawn on these shares of the shot, one run each: the
#: follower must not depend on which frame the artist draws on (a view where the object is partly hidden, or
#: touches another mover, is the hard case). Reported, not a bar.
OTHER_DRAWN_SHARES = (1 / 6, 1 / 3, 2 / 3, 5 / 6)


def _drawn_mask_run(ctx: Context, base_job: Path, work: Path, index: np.ndarray) -> dict:
    """The GT mask of one object on the middle frame as the only drawn mask: IoU of the propagated object masks.
    The same from other drawn frames (OTHER_DRAWN_SHARES): the worst minimum and the mean of their means."""
    count = len(index)
    k = count // 2
    first = _drawn_from(ctx, base_job, work, index, k)
    if "error" in first:
        return {"drawn_error": first["error"]}
    out = {"drawn_frame": k, "drawn_iou_min": first["min"], "drawn_iou_mean": first["mean"],
           "drawn_seconds": first["seconds"]}
    others = {}
    for share in OTHER_DRAWN_SHARES:
        j = int(round(share * (count - 1)))
        if j != k and (index[j] == DRAWN_OBJECT).sum() >= 20:
            others[j] = _drawn_from(ctx, base_job, work, index, j)
    scored = {j: r for j, r in others.items() if "error" not in r and r["min"] is not None}
    if scored:
        out.update(drawn_other_frames={j: [r["min"], r["mean"]] for j, r in scored.items()},
                   drawn_other_iou_min=min(r["min"] for r in scored.values()),
                   drawn_other_iou_mean=float(np.mean([r["mean"] for r in scored.values()])))
    return out


def _drawn_from(ctx: Context, base_job: Path, work: Path, index: np.ndarray, k: int) -> dict:
    """One run of the stage with the GT mask of DRAWN_OBJECT on frame k as the only drawn mask:
    {min, mean} IoU over the frames where 20 px or more of it show, and the stage's seconds."""
    drawn = work / "drawn"
    shutil.rmtree(drawn, ignore_errors=True)
    drawn.mkdir(parents=True)
    cv2.imwrite(str(drawn / f"{k:05d}.png"), np.where(index[k] == DRAWN_OBJECT, 255, 0).astype(np.uint8))
    job = work / "drawn_job"
    shutil.rmtree(job, ignore_errors=True)
    shutil.copytree(base_job, job, ignore=shutil.ignore_patterns(".job.lock"))
    cmd = [*shotfield_command(), "run", "--job", str(job), "--stages", "inpaint", "--remove", str(drawn),
           "--quality", ctx.quality, "--no-progress"]
    run = _run(cmd, work / "drawn.log")
    if run.returncode != 0:
        return {"error": tail(run.log, 1)}
    ious = []
    for i in range(len(index)):
        gt = index[i] == DRAWN_OBJECT
        if gt.sum() < 20:
            continue
        m = _read_mask(job / "masks" / "object" / f"{i:05d}.png")
        ious.append(float((m & gt).sum() / (m | gt).sum()))
    stage = json.loads((job / "job.json").read_text())["stages"]["inpaint"]
    return {"min": min(ious) if ious else None, "mean": float(np.mean(ious)) if ious else None,
            "seconds": stage.get("seconds")}


INPAINT_COLUMNS = [("psnr_mask", "PSNR mask", "{:.2f}"), ("psnr_gt_mask", "PSNR GT-mask", "{:.2f}"),
                   ("ssim_mask", "SSIM mask", "{:.3f}"), ("psnr_frame", "PSNR frame", "{:.2f}"),
                   ("ssim_frame", "SSIM frame", "{:.3f}"), ("flicker", "flicker", "{:.2f}"),
                   ("flicker_clean", "clean flicker", "{:.2f}"), ("flicker_clean_mask", "clean flicker in mask", "{:.2f}"),
                   ("drawn_iou_min", "1-frame IoU min", "{:.3f}"), ("drawn_iou_mean", "1-frame IoU mean", "{:.3f}"),
                   ("drawn_other_iou_min", "other drawn frames: IoU min", "{:.3f}"),
                   ("drawn_other_iou_mean", "other drawn frames: IoU mean", "{:.3f}")]


def inpaint_summary(records: list[Record]) -> tuple[str, list]:
    """The issue's bars per shot."""
    lines, out = [], []
    by_shot: dict[str, dict[str, Record]] = {}
    for r in records:
        if r.stage == "inpaint":
            by_shot.setdefault(r.shot, {})[r.role if r.role == "shotfield" else r.method] = r
    for shot, recs in by_shot.items():
        ours, fg = recs.get("shotfield"), recs.get("flow-guided")
        if ours is None or ours.error or not ours.metrics:
            continue
        m = ours.metrics
        fg_psnr = fg.metrics.get("psnr_mask") if fg is not None and fg.metrics else None
        seconds = ours.compute_s[0] if ours.compute_s else None
        bars = [
            ("masked PSNR >= 25 dB", m["psnr_mask"], m["psnr_mask"] >= 25),
            ("masked PSNR >= flow-guided + 2 dB", m["psnr_mask"] - fg_psnr if fg_psnr is not None else None,
             fg_psnr is not None and m["psnr_mask"] >= fg_psnr + 2),
            ("flicker <= 1.5x the clean plates' (whole frame)", m.get("flicker_ratio"),
             m.get("flicker_ratio") is not None and m["flicker_ratio"] <= 1.5),
            ("flicker <= 1.5x the clean plates' (same mask)", m.get("flicker_ratio_mask"),
             m.get("flicker_ratio_mask") is not None and m["flicker_ratio_mask"] <= 1.5),
            ("one drawn frame: IoU >= 0.85 on every frame", m.get("drawn_iou_min"), (m.get("drawn_iou_min") or 0) >= 0.85),
            ("stage seconds <= 600 (40 frames 320x240, 2 cores)", seconds, seconds is not None and seconds <= 600),
        ]
        for name, value, ok in bars:
            shown = "-" if value is None else f"{value:.3f}"
            lines.append(f"inpaint/{shot}: {name}: {shown} {'PASS' if ok else 'FAIL'}")
            out.append({"shot": shot, "bar": name, "value": value, "pass": bool(ok)})
    return "\n".join(lines), out


BENCHMARK = StageBenchmark(bench_inpaint, INPAINT_COLUMNS, inpaint_summary)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Run one inpainting peer on a job (what the benchmark times).")
    p.add_argument("--peer", required=True, choices=sorted(PEERS))
    p.add_argument("--job", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    run_peer(args.peer, args.job, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
