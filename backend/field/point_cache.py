"""Scene-flow point caches from the trained field: per frame, the visible surfaces as coloured points with
their scene-flow velocities.

Each frame is rendered at its own camera with the depth prior guiding the samples (as in training); every
`stride`-th pixel becomes a point at the rendered planar depth, coloured with the footage's pixel (so the
cloud looks like the shot), moving with the dynamic field's forward scene flow where the field's dynamic share
is above one half (DYNAMIC_SHARE) and standing still elsewhere (the static field has no motion). The flow is
averaged over where the ray meets dynamic density (render.render_rays), not over all of its weight. Points
beyond the scene box's far limit (the sky, the infinitely far) are left out.
"""
from __future__ import annotations

import numpy as np
import torch

from exporters.point_cache_usd import PointFrame

from .data import ShotData
from .model import SceneField
from .render import render_rays
from .space import image_grid, pixel_rays

DYNAMIC_SHARE = 0.5


def frame_points(model: SceneField, data: ShotData, index: int, stride: int) -> PointFrame:
    w, h = data.size
    device = data.rgb.device
    grid = image_grid(w, h, device).view(h, w, 2)[stride // 2::stride, stride // 2::stride].reshape(-1, 2)
    n = len(grid)
    origins, dirs = pixel_rays(data.K[index].expand(n, 3, 3), data.world_from_camera[index].expand(n, 4, 4), grid)
    px, py = grid[:, 0].long(), grid[:, 1].long()
    prior = data.depth[index][py, px]
    r = render_rays(model, origins, dirs, float(index), prior)
    keep = torch.isfinite(r.depth) & (r.depth > model.box.near) & (r.depth < model.box.far * 0.9)
    dynamic = r.dynamic > DYNAMIC_SHARE
    velocity = torch.where(dynamic[:, None], r.flow_fw, torch.zeros_like(r.flow_fw))
    positions = origins + r.depth[:, None] * dirs
    colours = (data.rgb[index][py, px] * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    k = keep.cpu().numpy()
    return PointFrame(index, positions.cpu().numpy()[k].astype(np.float32), colours.cpu().numpy()[k],
                      velocity.cpu().numpy()[k].astype(np.float32), dynamic.cpu().numpy()[k])


def point_width(frames: list[PointFrame], data: ShotData, stride: int) -> float:
    """A diameter that closes the gaps between neighbouring points: the footprint of `stride` pixels at the
    median distance from the cameras."""
    centres = data.world_from_camera[:, :3, 3].cpu().numpy()
    distances = [np.linalg.norm(f.positions - centres[f.index], axis=1) for f in frames if len(f.positions)]
    if not distances:
        return 0.01
    fx = float(data.K[:, 0, 0].mean())
    return float(np.median(np.concatenate(distances)) * stride / fx)
