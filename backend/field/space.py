"""Where the field lives: the scene box, the contraction of what lies beyond it, and camera rays.

The field's planes cover [-1, 1]^3 of a *contracted* space (mip-NeRF 360's contraction with the L-inf
norm): world points are first normalised into the scene box (centre and half-extent fitted to the depth
prior's points), which maps to [-0.5, 0.5]^3, and everything outside is squeezed into the shell up to
[-1, 1]^3 as 1 - 1/(2|x|). So a distant background still gets cells (fewer, as it deserves) and a
hand-held shot's far wall or sky needs no NDC, which would assume forward-facing cameras.

The dynamic field needs none of that: only the moving objects are dynamic, and they occupy a small part of
the scene (on the test shots a fifth to a third of the scene box along each axis). Its planes cover the
*dynamic region* instead, the box of the motion-masked prior points over the whole shot, linearly and with
nothing outside (fit_dynamic_region): the same cells are then 5-8 times finer on the movers. Those fine cells
fit anything faster than the static field's coarser ones, so at each time the dynamic density is also gated
to the cells near the masked points of that frame and its neighbours (motion_occupancy): without the gate,
at a short training the dynamic field took over the static floor along the movers' whole paths.

Rays are parameterised by *planar* depth z (the direction has camera-space z = 1), so the depth the
renderer composites is planar depth, the job folder's convention, with no conversion.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class SceneBox:
    centre: np.ndarray      # (3,) world
    half: np.ndarray        # (3,) world half-extent of the box that maps linearly
    near: float             # nearest planar depth worth sampling
    far: float              # farthest
    dynamic_centre: np.ndarray | None = None
    """(3,) world: centre of the region the dynamic field covers (None: the whole contracted space)."""
    dynamic_half: np.ndarray | None = None

    def to_json(self) -> dict:
        d = {"centre": self.centre.tolist(), "half": self.half.tolist(), "near": self.near, "far": self.far}
        if self.dynamic_centre is not None:
            d.update(dynamic_centre=self.dynamic_centre.tolist(), dynamic_half=self.dynamic_half.tolist())
        return d

    @staticmethod
    def from_json(d: dict) -> "SceneBox":
        dynamic = [np.asarray(d[k], np.float64) if d.get(k) is not None else None for k in ("dynamic_centre", "dynamic_half")]
        return SceneBox(np.asarray(d["centre"], np.float64), np.asarray(d["half"], np.float64), float(d["near"]),
                        float(d["far"]), *dynamic)


def fit_scene_box(points: np.ndarray, depths: np.ndarray) -> SceneBox:
    """points: (N, 3) world points of the depth prior; depths: (N,) their planar depths. The box holds the
    central 96% of the points (padded 10%); near/far bracket the depths with a margin."""
    lo, hi = np.percentile(points, [2, 98], axis=0)
    centre = (lo + hi) / 2
    half = np.maximum((hi - lo) / 2 * 1.1, 1e-3 * max(float(np.max(hi - lo)), 1e-3))
    d_lo, d_hi = np.percentile(depths, [0.5, 99.5])
    return SceneBox(centre, half, float(max(d_lo * 0.5, 1e-3)), float(d_hi * 2.0))


def fit_dynamic_region(points: np.ndarray, box: SceneBox, pad: float = 0.15) -> tuple[np.ndarray, np.ndarray] | None:
    """The box the dynamic field's planes cover: the motion-masked prior points of all frames (so the movers'
    whole paths), padded by `pad` of its size on each side (a mask that is a little tight, the scene flow's
    warps landing just outside). None (cover the whole contracted space, as the static field does) when
    there are too few points or the region would be no smaller than the scene box: then nothing is gained."""
    if len(points) < 16:
        return None
    lo, hi = np.percentile(points, [0.5, 99.5], axis=0)
    half = (hi - lo) / 2 * (1 + 2 * pad) + 1e-3 * float(np.max(box.half))
    if np.prod(half) >= np.prod(box.half):
        return None
    return (lo + hi) / 2, half


#: Cells per axis of the per-frame motion occupancy over the dynamic region.
OCCUPANCY_CELLS = 32


def motion_occupancy(points: list[np.ndarray], centre: np.ndarray, half: np.ndarray, reach: int = 1,
                     dilate: int = 3) -> np.ndarray:
    """points: per frame, the motion-masked prior points (M_t, 3). Returns (F, C, C, C) bool over the dynamic
    region: the cells holding a masked point of frames t - reach .. t + reach (a warp to a neighbour frame
    lands inside), grown by `dilate` cells (the prior sees only the movers' front surfaces: their backs and
    sides, seen from a held-out camera, lie behind)."""
    cells = OCCUPANCY_CELLS
    frames = len(points)
    seen = np.zeros((frames, cells, cells, cells), bool)
    for t, p in enumerate(points):
        if len(p):
            idx = np.clip(((p - (centre - half)) / (2 * half) * cells).astype(int), 0, cells - 1)
            seen[t, idx[:, 0], idx[:, 1], idx[:, 2]] = True
    near = np.zeros_like(seen)
    for t in range(frames):
        near[t] = seen[max(0, t - reach):t + reach + 1].any(0)
    grown = torch.nn.functional.max_pool3d(torch.from_numpy(near).float()[:, None], 2 * dilate + 1, 1, dilate)
    return grown[:, 0].numpy() > 0


def contract(x: torch.Tensor, centre: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """(..., 3) world -> (..., 3) in [-1, 1]: linear (to +-0.5) inside the box, 1 - 1/(2|x|_inf) beyond."""
    u = (x - centre) / half
    norm = u.abs().amax(dim=-1, keepdim=True).clamp_min(1e-6)
    outside = norm > 1
    squeezed = (1 - 0.5 / norm) * (u / norm)
    return torch.where(outside, squeezed, u * 0.5)


def pixel_rays(K: torch.Tensor, world_from_camera: torch.Tensor, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """K: (N, 3, 3), world_from_camera: (N, 4, 4), xy: (N, 2) pixel coordinates (centres at i + 0.5).
    Returns origins (N, 3) and directions (N, 3) with camera-space z = 1 (so o + z d is at planar depth z)."""
    x = (xy[:, 0] - K[:, 0, 2]) / K[:, 0, 0]
    y = (xy[:, 1] - K[:, 1, 2]) / K[:, 1, 1]
    cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    R, t = world_from_camera[:, :3, :3], world_from_camera[:, :3, 3]
    return t, torch.einsum("nij,nj->ni", R, cam)


def project(points: torch.Tensor, K: torch.Tensor, world_from_camera: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """points: (N, 3) world; K (N, 3, 3); world_from_camera (N, 4, 4) -> pixels (N, 2), planar depth (N,)."""
    R, t = world_from_camera[:, :3, :3], world_from_camera[:, :3, 3]
    cam = torch.einsum("nji,nj->ni", R, points - t)
    z = cam[:, 2]
    zs = torch.where(z.abs() < 1e-6, torch.full_like(z, 1e-6), z)
    u = K[:, 0, 0] * cam[:, 0] / zs + K[:, 0, 2]
    v = K[:, 1, 1] * cam[:, 1] / zs + K[:, 1, 2]
    return torch.stack([u, v], dim=-1), z


def image_grid(width: int, height: int, device) -> torch.Tensor:
    """(H*W, 2) pixel centres, row-major."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32) + 0.5,
                            torch.arange(width, device=device, dtype=torch.float32) + 0.5, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)
