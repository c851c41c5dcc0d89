"""Stage `solve`: the camera of every frame, the sparse coloured points, and the per-frame motion masks.

    camera/cameras.json   DESIGN.md's schema plus "model" ("pinhole"), "tripod", "method", "registered",
                          "reprojection_error_px", "parallax" (the model selection's evidence), "world"
                          (how up, ground, origin and scale were chosen; see solve/world_align.py)
    camera/points.ply     static scene points with colours, in the same world frame
    masks/motion/00000.png  uint8, 255 = moves independently of the camera (later stages reuse them)

Pipeline (backend/solve/ has one module per step): refuse footage no solver can handle (checks) ->
motion masks from the flow (pass 1) -> static flow correspondences -> camera model and first solve
(initial.py: tripod test, pycolmap SfM on keyframes + PnP, dense bundle adjustment, model selection,
the learned ego-motion hook where SfM fails) -> motion masks from the solved cameras (pass 2) -> dense
bundle adjustment again on correspondences that avoid them, with a tighter robust loss (REFINE_CAUCHY_PX)
-> world alignment -> write.
"""
from __future__ import annotations

import time
from dataclasses import replace

import cv2
import numpy as np

from exporters import ply
from exporters.camera_formats.export import export_cameras
from exporters.cameras_json import write_cameras

from ..flow_store import FlowStore
from ..frames import load_frames
from ..solve import checks, correspondences, dense_ba, initial, motion_masks, outputs, world_align
from . import Stage

#: Flow gaps the solve reads: short ones keep correspondences dense, long ones give the baseline that
#: pins depth and focal length (and show parallax to the tripod test).
SOLVE_GAPS = (1, 2, 4, 8, 16)
POINTS_PER_FRAME = {"preview": 250, "final": 1000}
BA_ITERATIONS = {"preview": 25, "final": 40}
PP_ITERATIONS = 8
PP_MAX_STD_PX = 1.0        # at 320 px: a principal point known worse than this is not worth moving
PP_SIGNIFICANCE = 4.0      # ... nor one that moved less than this many standard deviations
#: Cauchy scale (px at 320 px) of the second-pass bundle adjustment. The first pass keeps dense_ba's 1 px
#: (it starts from SfM and must not drop inliers that are still off); once converged, a tighter loss lets the
#: leftover outliers (flow errors on weak texture, motion the masks missed) pull less on the focal length.
#: Measured, refining the benchmark's solves from the 1 px solution (focal error, 1 px -> 0.25 px):
#: low-texture -1.08 % -> -0.57 %, default -0.11 -> -0.06 %, large-object +0.22 -> +0.17 %, tripod +0.03 ->
#: +0.03 %; 0.5 px gave -0.66 % on low-texture. The whole solve benchmark (2026-11-22, 1 px -> 0.25 px):
#: focal error low-texture 1.37 -> 0.51 %, default 0.11 -> 0.06 %, large-object 0.23 -> 0.13 %, tripod 0.03 ->
#: 0.03 %; ATE % of path 0.182 -> 0.086, 0.010 -> 0.009, 0.026 -> 0.016.
REFINE_CAUCHY_PX = 0.25


class _Steps:
    """Progress, plus the seconds of each step in the job's log (where a slow shot can be diagnosed)."""

    def __init__(self, ctx):
        self.ctx, self.last, self.name = ctx, time.monotonic(), None

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if self.name:
            self.ctx.job.log(f"solve: {self.name}: {now - self.last:.2f} s")
        self.ctx.progress(fraction, message)
        self.last, self.name = now, message


def run(ctx) -> dict[str, str]:
    started = time.monotonic()
    step = _Steps(ctx)
    rgb = load_frames(ctx.path)
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])
    store = FlowStore(ctx.path)
    quality = ctx.settings.quality
    per_frame = POINTS_PER_FRAME[quality]
    gaps = [g for g in SOLVE_GAPS if g in store.gaps]
    step(0.02, "checking the footage")
    checks.check_texture(gray)
    checks.check_camera_motion(gray, store)

    step(0.05, "motion masks from the flow")
    moving = motion_masks.epipolar_masks(store)
    checks.check_camera_motion(gray, store, moving)
    step(0.1, "following static points through the flow")
    corr = correspondences.gather(store, gray, rgb, moving, gaps, per_frame)
    first = initial.initial_solve(rgb, moving, store, corr, BA_ITERATIONS[quality], ctx.device, ctx.path, step)

    step(0.65, "motion masks from the solved cameras")
    moving = motion_masks.geometric_masks(store, first.result.track, gaps=gaps, rotation_only=first.tripod)
    step(0.7, "dense bundle adjustment on the new masks")
    corr = correspondences.gather(store, gray, rgb, moving, gaps, per_frame, seed=1)
    size_scale = max(rgb.shape[1], rgb.shape[2]) / 320
    options = replace(first.options, cauchy_px=REFINE_CAUCHY_PX * size_scale)
    result = dense_ba.bundle_adjust(first.result.track, corr, options=options, device=ctx.device)
    step(0.85, "principal point: is it pinned by the data?")
    result, principal_point = _principal_point(result, corr, options, ctx.device)

    step(0.9, "aligning the world")
    points, colours = outputs.scene_points(result, corr)
    alignment = world_align.align_world(result.track, points, rotation_only=first.tripod)
    track = result.track.transformed(alignment.scale, alignment.rotation, alignment.translation)
    p = first.parallax
    extra = {
        "model": "pinhole",
        "tripod": bool(first.tripod),
        "method": first.method,
        "registered": int(track.registered.sum()),
        "reprojection_error_px": {"median": round(result.median_px, 4), "rms_inliers": round(result.rms_inlier_px, 4),
                                  "observations": int(corr.observations), "points": int(corr.points)},
        "parallax": {"flat_pair_share": _round(p.flat_share), "homography_inlier_ratio": _round(p.inlier_ratio),
                     "pairs": p.pairs, "gap": p.gap, "rotation_only_median_px": _round(first.rotation_median_px),
                     "full_median_px": _round(first.full_median_px)},
        "principal_point": principal_point,
        "world": alignment.describe(),
        **first.info,
        "seconds": round(time.monotonic() - started, 2),
    }
    step(0.97, "writing")
    cameras = track.to_cameras(extra)
    world_points = alignment.apply(points)
    write_cameras(ctx.path / "camera" / "cameras.json", cameras)
    ply.write_points(ctx.path / "camera" / "points.ply", world_points, colours, comment="shotfield solve: static scene points")
    outputs.write_masks(ctx.path / "masks" / "motion", moving)
    # The same camera for the other packages of a pipeline: COLMAP, nerfstudio, Nuke .chan, USD, JSON/CSV.
    export_cameras(cameras, ctx.path / "camera" / "exports", points=world_points, points_rgb=colours,
                   fps=ctx.job.manifest.get("fps") or 24.0, frames_dir=ctx.path / "frames")
    step(1.0, "done")
    return {"cameras": "camera/cameras.json", "points": "camera/points.ply", "motion_masks": "masks/motion",
            "camera_exports": "camera/exports"}


def _principal_point(result: dense_ba.BAResult, corr, options: dense_ba.BAOptions, device: str):
    """Free the principal point only where the data pins it: a few more iterations with it free, kept when
    its marginal standard deviation is small (PP_MAX_STD_PX) and it moved significantly (PP_SIGNIFICANCE
    sigmas) from the image centre; otherwise the centre stays (most footage is not cropped off-centre, and a
    free principal point trades off against rotation and focal length). Returns (result, description)."""
    trial = dense_ba.bundle_adjust(result.track, corr, inverse_depth=result.inverse_depth, device=device,
                                   options=replace(options, refine_principal_point=True, iterations=PP_ITERATIONS))
    before, after = result.track.intrinsics, trial.track.intrinsics
    offset = float(np.hypot(after.cx - before.cx, after.cy - before.cy))
    std = trial.principal_point_std_px
    scale = max(result.track.width, result.track.height) / 320
    facts = f"offset {offset:.2f} px, std {std:.2f} px" if std is not None else "no estimate"
    if std is not None and std < PP_MAX_STD_PX * scale and offset > PP_SIGNIFICANCE * std:
        return trial, f"refined ({facts})"
    return result, f"image centre (refining it: {facts}, not significant)"


def _round(x: float | None, digits: int = 4) -> float | None:
    """JSON-safe rounding: NaN and None become null."""
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


STAGE = Stage(
    name="solve",
    run=run,
    requires=("ingest", "flow"),
    settings_fields=("quality",),
    outputs=("camera/cameras.json", "camera/points.ply", "masks/motion"),
    uses_torch=True,
    flow_gaps=SOLVE_GAPS,
    version=3,  # 2: second-pass BA with the tighter robust loss (REFINE_CAUCHY_PX); 3: repeatable SfM (sfm.COLMAP_THREADS)
)
