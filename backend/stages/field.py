"""Stage `field`: the dynamic scene field (NSFF-style, backend/field/) and the scene-flow point caches.

    field/field.pt        the trained field's state dict (torch)
    field/field.json      {"format": "shotfield-field", "version", "config" (FieldConfig), "box" (SceneBox),
                           "steps", "train_seconds", "history", "points": {...}} (backend/field/model.py)
    points/points.usdc    UsdGeom.Points, time-sampled positions, velocities, widths, displayColor and the
                          "dynamic" flag (exporters/point_cache_usd.py)
    points/dynamic.usdc   the same with only the points on moving objects
    points/00000.ply      one PLY per frame with velocities (exporters/point_cache_ply.py)

Reads frames, camera/cameras.json, depth/ (the prior), masks/motion/ and the gap-1 flow. Renders come from
`shotfield render` (backend/field/render.py). docs/field.md describes the method and the figures.
"""
from __future__ import annotations

import shutil
import time

import torch

from exporters.atomic import swap_in_folder
from exporters.point_cache_ply import write_point_sequence
from exporters.point_cache_usd import write_point_cache_usd

from ..field import point_cache
from ..field.data import load_shot
from ..field.model import save_checkpoint
from ..field.train import train_field, train_settings
from . import Stage

#: Every `stride`-th pixel of a frame becomes a point (preview 80x60 points a frame at 160x120 ... ).
POINT_STRIDE = {"preview": 2, "final": 1}


def run(ctx) -> dict[str, str]:
    started = time.monotonic()
    quality = ctx.settings.quality
    ctx.progress(0.0, "loading frames, cameras, depth, masks and flow")
    data = load_shot(ctx.path, ctx.device)
    settings = train_settings(quality, ctx.settings.effort, data.frames, *data.size)
    ctx.job.log(f"field: {settings.steps} steps of {settings.rays} rays, {settings.config}")
    model, info = train_field(data, settings, ctx.device, lambda f, m: ctx.progress(0.02 + 0.83 * f, m))

    ctx.progress(0.86, "point caches")
    stride = POINT_STRIDE[quality]
    frames = []
    for i in range(data.frames):
        frames.append(point_cache.frame_points(model, data, i, stride))
    width = point_cache.point_width(frames, data, stride)
    fps = float(ctx.job.manifest.get("fps") or 24.0)
    partial = ctx.path / ".points.partial"
    shutil.rmtree(partial, ignore_errors=True)   # left by a cancelled run
    write_point_cache_usd(partial / "points.usdc", frames, fps, width)
    write_point_cache_usd(partial / "dynamic.usdc", frames, fps, width, dynamic_only=True)
    write_point_sequence(partial, frames)
    swap_in_folder(partial, ctx.path / "points")
    info["points"] = {"stride": stride, "width": width, "counts": [len(f.positions) for f in frames],
                      "dynamic_counts": [int(f.dynamic.sum()) for f in frames]}
    info["device"] = ctx.device
    if ctx.device.startswith("cuda"):
        info["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    info["seconds"] = round(time.monotonic() - started, 2)
    save_checkpoint(model, ctx.path / "field", info)   # field.json last: its presence means complete
    ctx.progress(1.0, "done")
    return {"field": "field/field.json", "point_cache": "points/points.usdc", "point_cache_dynamic": "points/dynamic.usdc",
            "point_sequence": "points"}


STAGE = Stage(
    name="field",
    run=run,
    requires=("flow", "solve", "depth"),
    settings_fields=("quality", "effort"),
    outputs=("field/field.pt", "field/field.json", "points/points.usdc"),
    # 2: the lifted scene-flow prior and the dynamic field on the movers' box (backend/field/, docs/field.md)
    # 3: fused Adam, the scene-flow prior weighted by the optical flow's forward-backward residual, and the point
    #    caches' velocities taken over the dynamic weight only: training and outputs changed, old jobs train again
    # 4: the static planes at least 3/4 of the 320-px preset's on smaller images (quick shot +1.2 dB held out)
    # 5: scene-flow prior targets from each frame's rigid parts of the masks where they have one (the outline's
    #    motion no longer the optical flow's short one; docs/field.md, Session 11)
    version=5,
    uses_torch=True,
    flow_gaps=(1,),
)
