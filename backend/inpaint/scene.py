"""The static scene: one coloured point set fused from every source frame's unmasked pixels, rendered at any
camera with a soft z-buffer.

Each source pixel that is not removed (outside the dilated removal mask), has a finite depth and is not on a
depth edge becomes a world point with its colour. Rendering a camera projects all points, keeps those that
land in the requested region, and splats each bilinearly onto its four neighbouring pixels. The z-buffer
is soft: a pixel's front depth comes from the points nearest to its centre (the largest bilinear weight), and
every point within `Z_TOLERANCE` of it contributes with its bilinear weight times a weight that falls with
the time between its source frame and the rendered one (`TIME_SCALE`), so the colour of a surface is the
average of the frames that saw it, the nearest counting most. Nearby frames see the surface from nearly the
same viewpoint, where a warp through estimated depth is sharpest: on the 160x120 test shot a frame warped onto
one 1 frame away matches it at 33 dB, 8 frames away at 24.5 dB (with ground-truth geometry as well). The
weights change smoothly from frame to frame, so the plates still agree across frames (no more flicker:
3.41 / 3.42 before on the default shot's real chain, +0.3 dB inside the mask). Points merge (`merge`) only
with points from the same run of `MERGE_FRAMES` source frames, so that they keep a time.

This is the part a radiance field (backend/field/, NSFF-style, trained with the masked rays left out) can
replace later: anything that renders RGB + planar depth + a coverage weight at a camera for a region.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .geometry import project, unproject

# Relative depth band of the soft z-buffer: points this close to the front one blend. 3 % is right for exact
# depth; the depth stage's is off by more (its edges by pixels, its surfaces by a few %), and then points of
# one surface lifted from different frames fall outside a 3 % band in some views and not in others, so the
# front set changes from frame to frame. 10 %: on the default shot's real chain +0.6 dB inside the mask and
# 10 % less flicker (3.81 -> 3.41); with ground-truth depth -0.08 dB and the same flicker.
Z_TOLERANCE = 0.1
COVERED_WEIGHT = 0.3    # a pixel whose summed splat weight is below this counts as not seen
MERGE_CELL = 0.75       # merged points: one per three quarters of a pixel's footprint
TIME_SCALE = 3.0        # frames: a point's colour weight falls by e per this many frames from its source
                        # (1000 = no weighting: default shot 26.31 dB in the mask, quick 23.00; 3: 26.65 / 23.15;
                        # 2 or 5: within 0.05 dB of 3)
MERGE_FRAMES = 4        # points merge only with points of source frames in the same run of this many
SUPPORT_CELL = 4.0      # px of footprint: the cells in which `drop_transient` counts the source frames
SUPPORT_FRAMES = 3      # ... a point is kept when at least this many source frames put a point in its cell
CHUNK = 1 << 21         # points projected per batch (bounded memory on any shot size)


@dataclass
class Render:
    rgb: np.ndarray      # (H, W, 3) float32 0..255
    depth: np.ndarray    # (H, W) float32 planar depth, inf where not covered
    covered: np.ndarray  # (H, W) bool


class StaticScene:
    def __init__(self, width: int, height: int, device):
        self.width, self.height, self.device = width, height, device
        self.points = torch.zeros((0, 3), dtype=torch.float32, device=device)
        self.origin = torch.zeros(3, dtype=torch.float32, device=device)  # a camera centre (merge's depth)
        self.colours = torch.zeros((0, 3), dtype=torch.float32, device=device)
        self.times = torch.zeros(0, dtype=torch.float32, device=device)  # the source frame of each point

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def add_pixels(self, rgb: np.ndarray, depth: np.ndarray, keep: np.ndarray, K: np.ndarray,
                   world_from_camera: np.ndarray, frame: int) -> int:
        """Lift the pixels of frame `frame` where `keep` (bool (H, W)) into the point set; returns how many."""
        v, u = np.nonzero(keep & np.isfinite(depth) & (depth > 0))
        if len(v) == 0:
            return 0
        dev = self.device
        vt, ut = torch.as_tensor(v, device=dev), torch.as_tensor(u, device=dev)
        d = torch.as_tensor(depth[v, u], dtype=torch.float32, device=dev)
        points = unproject(K, world_from_camera, vt, ut, d)
        colours = torch.as_tensor(rgb[v, u], dtype=torch.float32, device=dev)
        self.points = torch.cat([self.points, points])
        self.colours = torch.cat([self.colours, colours])
        self.times = torch.cat([self.times, torch.full((len(v),), float(frame), device=dev)])
        return len(v)

    def _cells(self, fx: float, cell: float, *extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cell index of each point, points per cell): cubes of `cell` pixels' footprint (a pixel spans
        depth / fx world units at a depth, depth measured from `origin`) on a grid per depth octave quarter,
        so near and far surfaces get cells of their own pixel size; `extra` (N,) integer-valued columns split
        the cells further (merge's runs of source frames)."""
        depth = torch.linalg.norm(self.points - self.origin, dim=1).clamp(min=1e-6)
        level = torch.round(torch.log2(depth * cell / fx) * 4)
        size = torch.exp2(level / 4)[:, None]
        key = torch.cat([level[:, None], *(e[:, None] for e in extra), torch.floor(self.points / size)], dim=1)
        _, inverse, counts = torch.unique(_one_key(key.to(torch.int64)), return_inverse=True, return_counts=True)
        return inverse, counts

    def drop_transient(self, fx: float, frames: int = SUPPORT_FRAMES, cell: float = SUPPORT_CELL) -> int:
        """Drop the points that fewer than `frames` source frames put in their cell (cubes of `cell` pixels'
        footprint, on a grid per depth octave quarter, as in `merge`); returns how many were dropped.

        Why: a static surface is lifted to the same place by every frame that sees it; a moving object that
        the removal and motion masks missed is lifted to a different place by each frame (it moved), so its
        points stand alone. Left in, they are nearer than the background, win the z-buffer and ghost into
        other frames' fills. On the 160x120 test shot's real chain the motion masks miss 40-60 % of a slow
        green cube passing a green box on five frames: the plates inside the mask went 23.15 -> 24.61 dB
        (default shot 26.65 -> 27.19). Cells of 4 px: depth errors of a few % scatter one surface's points
        from different frames over more than the 0.75 px merge cells; 1.1 px cells or 5 frames dropped real
        background (quick shot 22.70 and 21.64 dB); 2.5-8 px with 3-4 frames are within 0.4 dB."""
        if len(self) == 0 or frames <= 1:
            return 0
        cells, _ = self._cells(fx, cell)
        frame = torch.round(self.times).to(torch.int64)
        # (cell, frame) pairs as one integer: 1-D unique is several times faster than unique over rows.
        seen = torch.unique(cells * (int(frame.max()) + 1) + frame) // (int(frame.max()) + 1)
        support = torch.bincount(seen, minlength=int(cells.max()) + 1)
        keep = support[cells] >= frames
        dropped = int((~keep).sum())
        self.points, self.colours, self.times = self.points[keep], self.colours[keep], self.times[keep]
        return dropped

    def merge(self, fx: float, cell: float = MERGE_CELL) -> int:
        """Fuse points closer than `cell` pixels' footprint (a pixel spans depth / fx world units at a
        depth) into one, with the mean colour and source time: a surface seen by many frames holds many
        near-identical points, and rendering costs grow with their number. Cells are cubes on a grid per depth
        octave quarter (so near and far surfaces get cells of their own pixel size) and per run of
        `MERGE_FRAMES` source frames (so that `render` can still weight points by time). Returns the points
        left."""
        if len(self) == 0:
            return 0
        dev = self.device
        inverse, counts = self._cells(fx, cell, torch.floor(self.times / MERGE_FRAMES))
        n = int(counts.numel())
        points = torch.zeros((n, 3), device=dev).index_add_(0, inverse, self.points)
        colours = torch.zeros((n, 3), device=dev).index_add_(0, inverse, self.colours)
        times = torch.zeros(n, device=dev).index_add_(0, inverse, self.times)
        self.points = points / counts[:, None].float()
        self.colours = colours / counts[:, None].float()
        self.times = times / counts.float()
        return n

    def render(self, K: np.ndarray, world_from_camera: np.ndarray, region: np.ndarray, frame: float,
               first: int = 0) -> Render:
        """RGB, depth and coverage at the camera of frame `frame`, computed inside `region` (bool (H, W)) only,
        from the points added since the first `first` (0: all of them)."""
        h, w, dev = self.height, self.width, self.device
        region_t = torch.as_tensor(region, device=dev).reshape(-1)
        n = h * w
        zfront = torch.full((n,), float("inf"), device=dev)
        kept = []
        rows, cols = np.nonzero(region)
        if len(rows) == 0:
            return Render(np.zeros((h, w, 3), np.float32), np.full((h, w), np.inf, np.float32), np.zeros((h, w), bool))
        # The region's bounding box (one pixel larger) rejects most points with four comparisons; only the
        # few left go through the per-pixel tests.
        x_lo, x_hi, y_lo, y_hi = cols.min() - 1.0, cols.max() + 1.0, rows.min() - 1.0, rows.max() + 1.0
        for start in range(first, len(self), CHUNK):
            xy, z = project(K, world_from_camera, self.points[start:start + CHUNK])
            # Pixel index coordinates: centre of pixel i at i (xy has centres at i + 0.5).
            px, py = xy[:, 0] - 0.5, xy[:, 1] - 0.5
            idx = torch.nonzero((z > 1e-6) & (px >= x_lo) & (px <= x_hi) & (py >= y_lo) & (py <= y_hi)).squeeze(1)
            if idx.numel() == 0:
                continue
            px, py, z = px[idx], py[idx], z[idx]
            x0, y0 = torch.floor(px), torch.floor(py)
            ok = (x0 >= -1) & (x0 < w) & (y0 >= -1) & (y0 < h)
            nearest = (torch.round(px).clamp(0, w - 1) + w * torch.round(py).clamp(0, h - 1)).long()
            ok &= region_t[nearest] | region_t[(x0.clamp(0, w - 1) + w * y0.clamp(0, h - 1)).long()]
            keep = torch.nonzero(ok).squeeze(1)
            if keep.numel() == 0:
                continue
            idx, px, py, z = idx[keep], px[keep], py[keep], z[keep]
            rx, ry = torch.round(px), torch.round(py)
            inb = (rx >= 0) & (rx < w) & (ry >= 0) & (ry < h)
            near_idx = (rx + w * ry).long()
            zfront.scatter_reduce_(0, near_idx[inb], z[inb], reduce="amin")
            kept.append((idx + start, px, py, z))
        colour = torch.zeros((n, 3), device=dev)
        depth = torch.zeros(n, device=dev)
        weight = torch.zeros(n, device=dev)
        coverage = torch.zeros(n, device=dev)
        for idx, px, py, z in kept:
            x0, y0 = torch.floor(px), torch.floor(py)
            fx, fy = px - x0, py - y0
            rgb = self.colours[idx]
            recency = torch.exp(-torch.abs(self.times[idx] - frame) / TIME_SCALE)
            for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
                xi, yi = x0 + dx, y0 + dy
                inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
                pix = (xi.clamp(0, w - 1) + w * yi.clamp(0, h - 1)).long()
                front = zfront[pix]
                accept = inside & region_t[pix] & (~torch.isfinite(front) | (z <= front * (1 + Z_TOLERANCE)))
                wa = torch.where(accept, wgt, torch.zeros_like(wgt))
                coverage.index_add_(0, pix, wa)
                # (Weighting colours by the squared bilinear weight is sharper by 0.1 dB but flickers 15 %
                # more from frame to frame: the plain bilinear average is kept.)
                wa = wa * recency
                weight.index_add_(0, pix, wa)
                depth.index_add_(0, pix, wa * z)
                colour.index_add_(0, pix, wa[:, None] * rgb)
        covered = coverage >= COVERED_WEIGHT
        safe = weight.clamp(min=1e-6)
        out_rgb = (colour / safe[:, None]).reshape(h, w, 3)
        out_depth = torch.where(covered, depth / safe, torch.full_like(depth, float("inf"))).reshape(h, w)
        return Render(out_rgb.cpu().numpy().astype(np.float32), out_depth.cpu().numpy().astype(np.float32),
                      covered.reshape(h, w).cpu().numpy() & region)


def _one_key(rows: torch.Tensor) -> torch.Tensor:
    """(N, C) int64 -> (N,) int64 with equal values exactly for equal rows (mixed radix over each column's
    range), so that grouping is a 1-D unique. Falls back to ranks per column when the ranges overflow."""
    rows = rows - rows.min(0).values
    spans = rows.max(0).values + 1
    if float(torch.prod(spans.double())) >= 2 ** 62:
        rows = torch.stack([torch.unique(c, return_inverse=True)[1] for c in rows.T], 1)
        spans = rows.max(0).values + 1
    key = torch.zeros(len(rows), dtype=torch.int64, device=rows.device)
    for c in range(rows.shape[1]):
        key = key * spans[c] + rows[:, c]
    return key


def source_frames(frames: int, effort: float) -> list[int]:
    """The frames whose pixels build the scene: all of them up to 64 x effort, else evenly spaced (first and
    last always in: they see what the shot's ends see)."""
    count = int(np.clip(np.ceil(64 * effort), min(6, frames), frames))
    return sorted(set(np.round(np.linspace(0, frames - 1, count)).astype(int).tolist()))
