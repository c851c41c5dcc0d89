"""Stage `tracks`: OmniMotion trained on the shot's flow; tracks for a default grid and the job's queries.

    tracks/model.pt     the trained model (backend/tracks/model.py's checkpoint), so that `shotfield track`
                        answers new queries later without training again
    tracks/tracks.npz   exporters/tracks_npz.py's format: a 20-column grid of points on the first frame, then
                        the rows of settings.track_queries (a JSON list or .npy of [frame, x, y]) if given
    tracks/tracks.json  what was trained on (solved cameras or not, where depth came from), figures

Needs only the flow. The solved cameras and depth are read where the job has them (camera/cameras.json;
depth/*.exr, else depth triangulated from the flow and the cameras): they initialise each frame's local 3D
space, so the learned maps only add what the cameras do not explain. Where the solve failed the model tracks
from the flow alone, with a shared virtual camera (world positions are then NaN).
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from exporters.atomic import write_json
from exporters.tracks_npz import Tracks, TracksFileError, read_queries, write_tracks

from ..errors import ShotfieldError
from ..flow_store import FlowStore
from ..frames import load_frames
from ..tracks import geometry, query
from ..tracks.flow_data import Correspondences
from ..tracks.model import ModelConfig, OmniMotion, save_checkpoint
from ..tracks.train import TrainingOptions, train
from . import Stage

TRACK_GAPS = (1, 2, 4, 8, 16)
# preview 2,000 (session 8; was 1,000): default shot AJ 0.621 -> 0.654, AJ moving 0.312 -> 0.352 in-process,
# 381 s of training at a load of 2.7 on 2 cores (bar 600 s)
ITERATIONS = {"preview": 2000, "final": 4000}
SAMPLES = {"preview": 16, "final": 32}
BATCH = {"preview": 512, "final": 2048}


def local_depth(job: Path, store: FlowStore, frames: int, width: int, height: int):
    """(depth (F, H, W) NaN unknown or None, where it came from)."""
    solved = geometry.read_solved_cameras(job, frames, width, height)
    if solved is None:   # depth in world units means nothing to the virtual camera's local spaces
        return None, "none (no usable solve)"
    depth = geometry.read_depth_maps(job, frames, width, height)
    if depth is not None:
        return depth, "depth stage (depth/*.exr)"
    moving = geometry.read_motion_masks(job, frames)
    gaps = [g for g in store.gaps if g >= 2] or list(store.gaps)
    return geometry.triangulated_depth(store, solved[0], solved[1], moving, gaps), "triangulated from flow and cameras"


def run(ctx) -> dict[str, str]:
    started = time.monotonic()
    settings = ctx.settings
    ctx.progress(0.0, "reading frames and flow")
    rgb = load_frames(ctx.path)
    frames, height, width = rgb.shape[:3]
    if frames < 2:
        raise ShotfieldError("tracking needs at least two frames")
    extra_queries = None
    if settings.track_queries:
        try:
            extra_queries = read_queries(settings.track_queries, frames, width, height)
        except TracksFileError as exc:
            raise ShotfieldError(f"--track-queries: {exc}") from exc
    store = FlowStore(ctx.path)
    depth, depth_source = local_depth(ctx.path, store, frames, width, height)
    geo = geometry.shot_geometry(ctx.path, frames, width, height, depth)
    ctx.job.log(f"tracks: local spaces: solved cameras {geo.solved}, depth from {depth_source}, "
                f"near {geo.near:.3g}, far {geo.far:.3g}")
    ctx.progress(0.03, "gathering flow correspondences")
    data = Correspondences(store, rgb, moving=geometry.read_motion_masks(ctx.path, frames))
    config = ModelConfig(frames=frames, samples=SAMPLES[settings.quality])
    model = OmniMotion(config, geo)
    model.set_guide(geometry.guide_depth(depth))
    iterations = max(50, int(round(ITERATIONS[settings.quality] * settings.effort)))
    options = TrainingOptions(iterations=iterations, batch=BATCH[settings.quality])
    figures = train(model, data, options, ctx.device, depth=depth,
                    progress=lambda f, m: ctx.progress(0.05 + 0.85 * f, m), log=ctx.job.log)
    del data

    ctx.progress(0.92, "tracking the grid and the queries")
    queries = query.default_grid(frames, width, height)
    if extra_queries is not None:
        queries = np.concatenate([queries, extra_queries])
    model.job_dir = ctx.path          # its gap-1 flow refines the tracks, as `shotfield track` does later
    flow = query.job_flow(model)
    xy, visible, world = query.track(model, queries, ctx.device, flow)
    info = {"solved_cameras": geo.solved, "depth": depth_source, "training": figures,
            "refined_with_flow": flow is not None,
            "grid_points": int(len(queries) - (0 if extra_queries is None else len(extra_queries))),
            "query_points": 0 if extra_queries is None else int(len(extra_queries))}
    out = ctx.path / "tracks"
    save_checkpoint(out / "model.pt", model, info)
    write_tracks(out / "tracks.npz", Tracks(queries, xy, visible, world))
    info["seconds"] = round(time.monotonic() - started, 2)
    write_json(out / "tracks.json", info)
    ctx.progress(1.0, "done")
    return {"tracks": "tracks/tracks.npz", "tracks_model": "tracks/model.pt"}


def fingerprint(ctx) -> dict:
    """What the stage reads besides the flow, read opportunistically: the cameras and depth (their sizes
    and times, so a later solve or depth run retrains) and the query file's contents."""
    def stamp(path: Path):
        return [path.stat().st_size, path.stat().st_mtime_ns] if path.is_file() else None

    depth_dir = ctx.path / "depth"
    depth = sorted(depth_dir.glob("*.exr")) if depth_dir.is_dir() else []
    queries = None
    if ctx.settings.track_queries and Path(ctx.settings.track_queries).is_file():
        queries = hashlib.sha256(Path(ctx.settings.track_queries).read_bytes()).hexdigest()[:16]
    return {"cameras": stamp(ctx.path / "camera" / "cameras.json"), "depth": [len(depth)] + (stamp(depth[-1]) if depth else []),
            "queries": queries}


STAGE = Stage(
    name="tracks",
    run=run,
    requires=("flow",),
    settings_fields=("quality", "effort", "track_queries"),
    outputs=("tracks/tracks.npz", "tracks/model.pt"),
    # 2: long-gap flow checked against chained flow, the depth guide's fill, cycle visibility (docs/tracks.md);
    # 3: gap-2 flow checked against the gap-1 chain on the motion masks too (training data changed), motion
    # planes 32 cells a side, acceleration weight 5, 2,000 preview iterations (docs/tracks.md, session 8);
    # 4: tracks refined with the gap-1 flow where it agrees with the model (query.refine_with_flow, session 9),
    # with a depth-guide fill for the moving objects that 5 takes out again (no gain on the default shot);
    # 6: on the motion masks, points the flow followed without a break since the query count as visible;
    # 7: queries on the moving objects carried by their object's rigid 3D motion (rigid.py, session 10)
    # 8: rigid motion: slow objects found by the gap-4 flow too (object_pixels); 9: a rigid track is hidden
    # where the flow at the point does not move with it (another moving object in front)
    # 10: rigid tracks placed by photometric poses (photometric.py); queries on the motion masks without a rigid
    # track visible where the flow followed them unbroken (not the model's cycle test)
    # 11: static queries placed and their visibility tested by the solved cameras and the depth guide
    # 12: static queries hidden where the checked flow at their place moves unlike them (a moving object in front)
    version=12,
    uses_torch=True,
    flow_gaps=TRACK_GAPS,
    fingerprint=fingerprint,
)
