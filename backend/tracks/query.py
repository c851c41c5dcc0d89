"""Tracking query points [frame, x, y] with a trained model, forwards and backwards through the whole shot.

For each query the ray of its pixel is traced once (canonical points and compositing weights), then mapped
into every frame: the 2D position there is the projection of the composited point. Visibility there:
- out of frame: the position leaves the image;
- occluded: the mapped point lies behind the surface that frame sees at that pixel, by more than
  OCCLUSION_TOLERANCE of that surface's depth. The surface is the model's own: the composited depth along
  that frame's ray there (OmniMotion's rule). Its density was fitted to the depth maps where the job has
  them, and comparing the model with itself keeps its small depth errors from counting as occlusions
  (measured on the test shot: fewer wrong occlusions than testing against depth/*.exr directly).
World positions: the composited point in the target camera taken to the world with the solved camera
(NaN when the model was trained without a solve: its depth axis is not metric).
"""
from __future__ import annotations

import numpy as np
import torch

from .model import OmniMotion

OCCLUSION_TOLERANCE = 0.08
CHUNK = 1024  # queries per batch


def default_grid(frames: int, width: int, height: int, columns: int = 20) -> np.ndarray:
    """(N, 3) [frame, x, y] queries: a grid of pixel centres on the first frame, `columns` across."""
    step = width / columns
    rows = max(1, int(round(height / step)))
    xs = (np.floor((np.arange(columns) + 0.5) * width / columns) + 0.5)
    ys = (np.floor((np.arange(rows) + 0.5) * height / rows) + 0.5)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([np.zeros(gx.size), gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


@torch.no_grad()
def track(model: OmniMotion, queries: np.ndarray, device: str):
    """queries (N, 3) [frame, x, y] -> xy (F, N, 2) float32, visible (F, N) bool, world (F, N, 3) float32."""
    model = model.to(device).eval()
    F, W, H = model.config.frames, model.geometry.width, model.geometry.height
    n = len(queries)
    xy = np.zeros((F, n, 2), np.float32)
    visible = np.zeros((F, n), bool)
    world = np.full((F, n, 3), np.nan, np.float32)
    pose = model.pose
    for start in range(0, n, CHUNK):
        q = torch.as_tensor(queries[start:start + CHUNK], dtype=torch.float32, device=device)
        m = len(q)
        frame = q[:, 0].round().long().clamp(0, F - 1)
        ray = model.trace(frame, q[:, 1:3])
        for j in range(F):
            target = torch.full((m,), j, dtype=torch.long, device=device)
            pixels, z, point = model.map_to(ray, target)
            inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < W) & (pixels[:, 1] >= 0) & (pixels[:, 1] < H) & (z > 0)
            surface = _surface_depth(model, j, pixels)
            behind = z > surface * (1.0 + OCCLUSION_TOLERANCE)
            vis = inside & ~behind
            at_query = frame == j
            pixels = torch.where(at_query[:, None], q[:, 1:3], pixels)
            vis = vis | at_query
            xy[j, start:start + m] = pixels.cpu().numpy()
            visible[j, start:start + m] = vis.cpu().numpy()
            if model.geometry.solved:
                w = point @ pose[j, :3, :3].T + pose[j, :3, 3]
                world[j, start:start + m] = w.cpu().numpy()
    return xy, visible, world


def _surface_depth(model: OmniMotion, j: int, pixels: torch.Tensor) -> torch.Tensor:
    """Planar depth of what frame j sees at `pixels` (M, 2): the composited depth along its ray there."""
    W, H = model.geometry.width, model.geometry.height
    clamped = torch.stack([pixels[:, 0].clamp(0.5, W - 0.5), pixels[:, 1].clamp(0.5, H - 0.5)], dim=1)
    frame = torch.full((len(pixels),), j, dtype=torch.long, device=pixels.device)
    return model.trace(frame, clamped)["depth"]
