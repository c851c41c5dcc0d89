"""Stage `tracks`: Shotfield's OmniMotion tracks against chained DIS flow, OpenCV's pyramidal Lucas-Kanade
(KLT) and Blender's own tracker, on the ground-truth query points of rendered shots (gt/tracks.npz: queries on
several frames, some on the moving objects, some passing behind others). TAP-Vid AJ, <δ_avg and OA (strided
query mode: every frame but the query's own counts) over all queries and over those on moving objects.

Shotfield: `shotfield run --stages ingest,flow,solve,tracks` (timed: the tracks stage's own seconds are the
training figure), then `shotfield track` of the GT queries (timed: the query figure) and of 1,000 random
queries (the "1,000 points in seconds" figure). Each peer runs in its own process:

    python -m scripts.benchmarks.tracks --peer NAME --frames DIR --queries Q.npy --out PRED.npz [--result R.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from backend.metrics.flow import forward_backward_consistent  # noqa: E402
from backend.metrics.tracking import tapvid_metrics  # noqa: E402
from backend.stages.flow import make_dis  # noqa: E402

from scripts.benchmarks.records import Record, StageBenchmark  # noqa: E402
from scripts.benchmarks.runs import Context, log, run_measured, shotfield_command, tail  # noqa: E402
from scripts.benchmarks.shots import Shot  # noqa: E402

STAGES = ("ingest", "flow", "solve", "tracks")
BARS = {"aj": 0.70, "aj_moving": 0.55, "oa": 0.90, "margin": 0.15, "train_s": 600.0, "query_1000_s": 10.0}
KLT_WINDOW = 15
KLT_LEVELS = 3
KLT_FB_PX = 1.0


# --- peers (each gets frames as (F, H, W, 3) uint8 RGB and queries (N, 3) [frame, x, y]) ----------------------
def chained_dis(frames: np.ndarray, queries: np.ndarray):
    """Gap-1 DIS flow (the flow stage's settings) chained forwards and backwards from each query frame;
    visible where the step's forward-backward check passes and the point is in the frame."""
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    F, H, W = len(gray), gray[0].shape[0], gray[0].shape[1]
    dis = make_dis("preview")
    fwd, bwd = [], []
    for t in range(F - 1):
        a, b = dis.calc(gray[t], gray[t + 1], None), dis.calc(gray[t + 1], gray[t], None)
        fwd.append((a, forward_backward_consistent(a, b)))
        bwd.append((b, forward_backward_consistent(b, a)))   # from t+1 to t
    n = len(queries)
    xy = np.zeros((F, n, 2), np.float32)
    visible = np.zeros((F, n), bool)
    for q in np.unique(np.round(queries[:, 0]).astype(int)):
        idx = np.flatnonzero(np.round(queries[:, 0]) == q)
        xy[q, idx], visible[q, idx] = queries[idx, 1:3], True
        for direction in (1, -1):
            p, t = queries[idx, 1:3].astype(np.float32), q
            while 0 <= t + direction < F:
                flow, ok = fwd[t] if direction == 1 else bwd[t - 1]
                # Bilinear flow at the point (OpenCV samples at pixel centres = integer coordinates).
                mx, my = (p[:, 0] - 0.5).reshape(-1, 1), (p[:, 1] - 0.5).reshape(-1, 1)
                d = cv2.remap(flow, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 2)
                ix = np.clip(p[:, 0].astype(int), 0, W - 1)
                iy = np.clip(p[:, 1].astype(int), 0, H - 1)
                step_ok = ok[iy, ix]
                p = p + d
                t += direction
                inside = (p[:, 0] >= 0) & (p[:, 0] < W) & (p[:, 1] >= 0) & (p[:, 1] < H)
                xy[t, idx] = p
                visible[t, idx] = step_ok & inside
    return xy, visible


def klt(frames: np.ndarray, queries: np.ndarray):
    """OpenCV pyramidal Lucas-Kanade frame to frame from each query frame, forwards and backwards, with a
    forward-backward check; a lost point stays lost (held at its last position, not visible)."""
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    F, H, W = len(gray), gray[0].shape[0], gray[0].shape[1]
    n = len(queries)
    xy = np.zeros((F, n, 2), np.float32)
    visible = np.zeros((F, n), bool)
    params = dict(winSize=(KLT_WINDOW, KLT_WINDOW), maxLevel=KLT_LEVELS,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    for q in np.unique(np.round(queries[:, 0]).astype(int)):
        idx = np.flatnonzero(np.round(queries[:, 0]) == q)
        start = (queries[idx, 1:3] - 0.5).astype(np.float32)     # OpenCV: pixel centres at integers
        xy[q, idx], visible[q, idx] = queries[idx, 1:3], True
        for direction in (1, -1):
            p, alive, t = start.copy(), np.ones(len(idx), bool), q
            while 0 <= t + direction < F:
                nxt, st, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[t + direction], p.reshape(-1, 1, 2), None, **params)
                back, st2, _ = cv2.calcOpticalFlowPyrLK(gray[t + direction], gray[t], nxt, None, **params)
                nxt = nxt.reshape(-1, 2)
                fb = np.linalg.norm(back.reshape(-1, 2) - p, axis=1)
                ok = (st.ravel() == 1) & (st2.ravel() == 1) & (fb < KLT_FB_PX)
                inside = (nxt[:, 0] >= -0.5) & (nxt[:, 0] < W - 0.5) & (nxt[:, 1] >= -0.5) & (nxt[:, 1] < H - 0.5)
                alive &= ok & inside
                p = np.where(alive[:, None], nxt, p)
                t += direction
                xy[t, idx] = p + 0.5
                visible[t, idx] = alive
    return xy, visible


def blender_tracker(frames_dir: Path, queries: np.ndarray):
    """Blender's own tracker (libmv, the Clip Editor's Track Markers) on the same queries: a track per query
    with a marker at the query point on its frame, tracked forwards then backwards; a frame without an
    enabled marker is not visible there (the position stays at the last tracked one)."""
    import bpy

    from scripts.benchmarks.blender_tracker import PATTERN_FRACTION, SEARCH_FRACTION, clip_editor_override

    first = sorted(frames_dir.glob("*.png"))[0]
    clip = bpy.data.movieclips.load(str(first))
    W, H = int(clip.size[0]), int(clip.size[1])
    F = int(clip.frame_duration)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = clip.frame_start, clip.frame_start + F - 1
    scene.active_clip = clip
    settings = clip.tracking.settings
    settings.default_pattern_size = max(11, int(PATTERN_FRACTION * max(W, H)) | 1)
    settings.default_search_size = max(31, int(SEARCH_FRACTION * max(W, H)) | 1)
    override = clip_editor_override(bpy, clip)
    tracks = clip.tracking.tracks
    n = len(queries)
    xy = np.zeros((F, n, 2), np.float32)
    visible = np.zeros((F, n), bool)
    made = []
    with bpy.context.temp_override(**override):
        for q in np.unique(np.round(queries[:, 0]).astype(int)):
            idx = np.flatnonzero(np.round(queries[:, 0]) == q)
            for t in tracks:
                t.select = False
            for k in idx:
                track = tracks.new(name=f"q{k:04d}", frame=int(q) + 1)
                track.markers.find_frame(int(q) + 1).co = (queries[k, 1] / W, 1.0 - queries[k, 2] / H)
                track.select = True
                made.append((k, track))
            scene.frame_set(int(q) + 1)
            bpy.ops.clip.track_markers(backwards=False, sequence=True)
            scene.frame_set(int(q) + 1)
            bpy.ops.clip.track_markers(backwards=True, sequence=True)
    for k, track in made:
        last = (queries[k, 1], queries[k, 2])
        q = int(round(queries[k, 0]))
        for t in list(range(q, F)) + list(range(q, -1, -1)):
            if t == q:
                last = (queries[k, 1], queries[k, 2])
            marker = track.markers.find_frame(t + 1, exact=True)
            if marker is not None and not marker.mute:
                last = (marker.co[0] * W, (1.0 - marker.co[1]) * H)
                visible[t, k] = True
            xy[t, k] = last
        visible[q, k] = True
    return xy, visible


PEERS = {
    "chained-dis-fb": "chained DIS flow with a forward-backward check",
    "opencv-klt": "OpenCV pyramidal Lucas-Kanade",
    "blender-tracker": "Blender's tracker (Track Markers) on the same queries",
}


def peer_main(argv=None) -> int:
    p = argparse.ArgumentParser(description="one tracking peer on a folder of frames")
    p.add_argument("--peer", choices=list(PEERS), required=True)
    p.add_argument("--frames", type=Path, required=True)
    p.add_argument("--queries", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--result", type=Path)
    args = p.parse_args(argv)
    queries = np.load(args.queries)
    start = time.perf_counter()
    if args.peer == "blender-tracker":
        xy, visible = blender_tracker(args.frames, queries)
    else:
        paths = sorted(args.frames.glob("*.png"))
        frames = np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in paths])
        xy, visible = (chained_dis if args.peer == "chained-dis-fb" else klt)(frames, queries)
    seconds = time.perf_counter() - start
    np.savez(args.out, xy=xy, visible=visible)
    if args.result:
        args.result.write_text(json.dumps({"compute_s": seconds}))
    return 0


# --- scoring --------------------------------------------------------------------------------------------------
def score(gt: dict, xy: np.ndarray, visible: np.ndarray, width: int, height: int) -> dict:
    q = gt["queries"]
    out = {}
    m = tapvid_metrics(q, gt["xy"], gt["visible"], xy, visible, width, height)
    out.update(aj=m.aj, delta_avg=m.delta_avg, oa=m.oa)
    moving = gt["query_object"] > 0
    if moving.any():
        mm = tapvid_metrics(q[moving], gt["xy"][:, moving], gt["visible"][:, moving], xy[:, moving],
                            visible[:, moving], width, height)
        out.update(aj_moving=mm.aj, delta_avg_moving=mm.delta_avg, oa_moving=mm.oa)
    out["queries"] = int(len(q))
    return out


def _load_gt(shot: Shot) -> dict:
    with np.load(shot.gt / "tracks.npz") as data:
        return {k: data[k] for k in data.files}


def bench_tracks(ctx: Context, shot: Shot) -> list[Record]:
    if shot.gt is None or not (shot.gt / "tracks.npz").is_file():
        log(f"  tracks/{shot.name}: no ground-truth tracks; skipped")
        return []
    work = ctx.work / "tracks" / shot.slug
    work.mkdir(parents=True, exist_ok=True)
    gt = _load_gt(shot)
    width, height = shot.size
    queries_npy = work / "queries.npy"
    np.save(queries_npy, gt["queries"].astype(np.float32))
    queries_json = work / "queries.json"
    queries_json.write_text(json.dumps(gt["queries"].astype(float).tolist()))
    rng = np.random.default_rng(0)
    thousand = np.stack([rng.integers(0, len(gt["xy"]), 1000), rng.uniform(0, width, 1000), rng.uniform(0, height, 1000)], 1)
    thousand_json = work / "queries_1000.json"
    thousand_json.write_text(json.dumps(thousand.tolist()))

    ours = Record("tracks", shot.name, f"shotfield ({ctx.quality})", "shotfield")
    peers = {name: Record("tracks", shot.name, name, "peer") for name in PEERS}
    for rep in range(ctx.repeats):
        job = work / "shotfield"
        shutil.rmtree(job, ignore_errors=True)
        cmd = [*shotfield_command(), "run", str(shot.footage), "--job", str(job), "--stages", ",".join(STAGES),
               "--quality", ctx.quality, "--long-side", str(shot.long_side), "--no-progress"]
        if ctx.device:
            cmd += ["--device", ctx.device]
        run = run_measured(cmd, work / "shotfield.log", timeout_s=ctx.peer_timeout_s)
        if run.returncode != 0:
            ours.error = f"exit {run.returncode}: {tail(run.log, 1)}"
            log(f"  shotfield failed: {tail(run.log)}")
        else:
            stages = json.loads((job / "job.json").read_text())["stages"]
            out = work / "shotfield_tracks.npz"
            q_run = run_measured([*shotfield_command(), "track", str(job), "--queries", str(queries_json), "--out", str(out)],
                                 work / "shotfield_track.log")
            k_run = run_measured([*shotfield_command(), "track", str(job), "--queries", str(thousand_json),
                                  "--out", str(work / "shotfield_1000.npz")], work / "shotfield_track_1000.log")
            if q_run.returncode != 0:
                ours.error = f"shotfield track: exit {q_run.returncode}: {tail(q_run.log, 1)}"
            else:
                ours.wall_s.append(run.wall_s)
                ours.peak_mb.append(max(run.peak_mb, q_run.peak_mb))
                ours.compute_s.append(stages["tracks"].get("seconds"))
                with np.load(out) as pred:
                    ours.metrics = score(gt, pred["xy"], pred["visible"], width, height)
                ours.metrics["train_s"] = stages["tracks"].get("seconds")
                ours.metrics["query_gt_wall_s"] = q_run.wall_s
                ours.metrics["query_1000_wall_s"] = k_run.wall_s if k_run.returncode == 0 else math.nan
                ours.details = {"command": cmd, "stage_seconds": {k: v.get("seconds") for k, v in stages.items()},
                                "tracks_json": json.loads((job / "tracks" / "tracks.json").read_text())}
        for name, rec in peers.items():
            pred_path, result = work / f"{name}.npz", work / f"{name}.json"
            cmd = [sys.executable, "-m", "scripts.benchmarks.tracks", "--peer", name, "--frames", str(shot.frames),
                   "--queries", str(queries_npy), "--out", str(pred_path), "--result", str(result)]
            env = dict(os.environ, BLENDER_USER_RESOURCES=str(work / "blender-user"))
            run = run_measured(cmd, work / f"{name}.log", env=env, timeout_s=ctx.peer_timeout_s)
            if run.returncode != 0:
                rec.error = f"exit {run.returncode}: {tail(run.log, 1)}"
                continue
            rec.wall_s.append(run.wall_s)
            rec.peak_mb.append(run.peak_mb)
            rec.compute_s.append(json.loads(result.read_text())["compute_s"])
            with np.load(pred_path) as pred:
                rec.metrics = score(gt, pred["xy"], pred["visible"], width, height)
            rec.details = {"command": cmd}
        log(f"  tracks/{shot.name}: repeat {rep + 1}/{ctx.repeats} done")
    return [ours, *peers.values()]


TRACKS_COLUMNS = [("aj", "AJ", "{:.3f}"), ("delta_avg", "<δavg", "{:.3f}"), ("oa", "OA", "{:.3f}"),
                  ("aj_moving", "AJ mov", "{:.3f}"), ("delta_avg_moving", "<δavg mov", "{:.3f}"),
                  ("oa_moving", "OA mov", "{:.3f}"), ("train_s", "train s", "{:.1f}"),
                  ("query_1000_wall_s", "1000 q s", "{:.1f}")]


def summary(records: list[Record]) -> tuple[str, list]:
    """The issue's bars, per shot."""
    checks = []
    shots = dict.fromkeys(r.shot for r in records if r.stage == "tracks")
    for shot in shots:
        ours = next((r for r in records if r.stage == "tracks" and r.shot == shot and r.role == "shotfield"), None)
        if ours is None or ours.error is not None:
            checks.append({"shot": shot, "bar": "shotfield ran", "passed": False, "value": None})
            continue
        m = ours.metrics
        best_peer = max((r.metrics.get("aj", -1) for r in records
                         if r.stage == "tracks" and r.shot == shot and r.role == "peer" and r.error is None), default=None)

        def check(bar, value, passed):
            checks.append({"shot": shot, "bar": bar, "value": value, "passed": bool(passed)})

        check(f"AJ >= {BARS['aj']}", m.get("aj"), m.get("aj", 0) >= BARS["aj"])
        if "aj_moving" in m:
            check(f"AJ moving >= {BARS['aj_moving']}", m["aj_moving"], m["aj_moving"] >= BARS["aj_moving"])
        check(f"OA >= {BARS['oa']}", m.get("oa"), m.get("oa", 0) >= BARS["oa"])
        if best_peer is not None:
            check(f"AJ >= best peer + {BARS['margin']}", m["aj"] - best_peer, m["aj"] - best_peer >= BARS["margin"])
        if shot == "default":
            check(f"trains in <= {BARS['train_s']:.0f} s", m.get("train_s"), (m.get("train_s") or 1e9) <= BARS["train_s"])
        q = m.get("query_1000_wall_s")
        check(f"1,000 queries in <= {BARS['query_1000_s']:.0f} s (whole process)", q,
              q is not None and math.isfinite(q) and q <= BARS["query_1000_s"])
    lines = ["tracks bars:"] + [f"  {c['shot']}: {c['bar']}: {'PASS' if c['passed'] else 'FAIL'}"
                                + (f" ({c['value']:.3f})" if isinstance(c["value"], float) else "") for c in checks]
    return "\n".join(lines), checks


BENCHMARK = StageBenchmark(bench_tracks, TRACKS_COLUMNS, summary)


if __name__ == "__main__":
    sys.exit(peer_main())
