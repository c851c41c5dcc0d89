"""Where the layers are: surfaces of constant distance around the reference camera, and where a ray of another
camera meets them (torch; runs on the CPU and on CUDA alike).

Two kinds of surface share one description, a *distance* s per layer texel:

    mpi  fronto-parallel planes of the reference camera: a texel's point is s * K^-1 [u, v, 1] (s = planar depth)
    msi  spheres around the reference camera's centre: a texel's point is s * K^-1 [u, v, 1] / |K^-1 [u, v, 1]|
         (s = radius; Broxton et al. 2020 use them for wide fields of view, where planes seen at a slant stretch)

A texel (i, j) of a layer image sits on the reference pixel centre (j + 0.5, i + 0.5) (DESIGN.md's pixel
convention); `grid_sample(..., align_corners=False)` uses the same convention once pixel coordinates are divided
by the image size. All poses are OpenCV `world_from_camera`; `ref_from_target = inv(world_from_ref) @
world_from_target` maps the rendering camera's coordinates into the reference camera's.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

KINDS = ("mpi", "msi")


def pixel_rays(K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W, 3) camera-space rays K^-1 [x, y, 1] through the pixel centres (z = 1)."""
    dtype, device = K.dtype, K.device
    ys = torch.arange(height, dtype=dtype, device=device) + 0.5
    xs = torch.arange(width, dtype=dtype, device=device) + 0.5
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    pixels = torch.stack([x, y, torch.ones_like(x)], -1)
    return pixels @ torch.linalg.inv(K).T


def texel_directions(kind: str, K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W, 3): a texel's point at distance s is s * direction (see the module docstring)."""
    rays = pixel_rays(K, height, width)
    return rays if kind == "mpi" else rays / rays.norm(dim=-1, keepdim=True)


def distance_of(kind: str, points: torch.Tensor) -> torch.Tensor:
    """The layer distance of reference-camera points (..., 3): z for planes, |p| for spheres."""
    return points[..., 2] if kind == "mpi" else points.norm(dim=-1)


def intersect(kind: str, origin: torch.Tensor, rays: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """Ray parameter t where origin + t * rays (reference-camera coordinates) meets the surface at `distance`
    (broadcast against rays[..., 0]); NaN where it misses or lies behind the ray's camera.

    origin: (3,) the rendering camera's centre; rays: (..., 3). For spheres the far root is taken: the cameras
    that see the layers stand inside the innermost sphere.
    """
    if kind == "mpi":
        t = (distance - origin[2]) / rays[..., 2]
    else:
        a = (rays * rays).sum(-1)
        b = (rays * origin).sum(-1)
        c = (origin * origin).sum() - distance * distance
        disc = b * b - a * c
        t = (-b + torch.sqrt(disc.clamp(min=0))) / a
        t = torch.where(disc >= 0, t, torch.full_like(t, float("nan")))
    return torch.where(t > 1e-6, t, torch.full_like(t, float("nan")))


class Hits(NamedTuple):
    grid: torch.Tensor    # (..., H, W, 2) grid_sample coordinates in the reference image (NaN-free; off = 2)
    depth: torch.Tensor   # (..., H, W) planar depth in the rendering camera (0 where missed)
    valid: torch.Tensor   # (..., H, W) bool: the ray meets the surface in front of both cameras


class TargetRays(NamedTuple):
    origin: torch.Tensor  # (3,) rendering camera centre in reference-camera coordinates
    rays: torch.Tensor    # (H, W, 3) its pixel rays (z = 1 in its own frame), rotated into the reference frame


def target_rays(K_target: torch.Tensor, ref_from_target: torch.Tensor, height: int, width: int) -> TargetRays:
    rays = pixel_rays(K_target, height, width) @ ref_from_target[:3, :3].T
    return TargetRays(ref_from_target[:3, 3], rays)


def hits(kind: str, target: TargetRays, distance: torch.Tensor, K_ref: torch.Tensor, ref_size: tuple[int, int]) -> Hits:
    """Where the rendering camera's pixels meet surfaces at `distance` ((D, 1, 1) per layer or (D, H, W) per
    pixel) and which reference texel they land on."""
    t = intersect(kind, target.origin, target.rays, distance)
    points = target.origin + t[..., None] * target.rays
    return project_to_reference(points, t, K_ref, ref_size)


def project_to_reference(points: torch.Tensor, t: torch.Tensor, K_ref: torch.Tensor, ref_size: tuple[int, int]) -> Hits:
    """Reference-camera points (..., 3) with their ray parameters t (the rendering camera's planar depth, since
    its rays have z = 1) -> grid_sample coordinates in the reference image."""
    width, height = ref_size
    valid = torch.isfinite(t) & (points[..., 2] > 1e-6)
    z = torch.where(valid, points[..., 2], torch.ones_like(t))
    projected = points @ K_ref.T
    x = projected[..., 0] / z / width * 2 - 1
    y = projected[..., 1] / z / height * 2 - 1
    grid = torch.stack([x, y], -1)
    grid = torch.where(valid[..., None] & torch.isfinite(grid), grid, torch.full_like(grid, 2.0))
    return Hits(grid, torch.where(valid, t, torch.zeros_like(t)), valid)


def disparity_spaced(near: float, far: float, count: int) -> torch.Tensor:
    """(count,) distances from far (index 0) to near, evenly spaced in 1/distance (Zhou et al. 2018)."""
    inverse = torch.linspace(1.0 / far, 1.0 / near, count, dtype=torch.float64)
    return 1.0 / inverse


def relative_pose(world_from_ref, world_from_target) -> torch.Tensor:
    """ref_from_target (4, 4) float64."""
    a = torch.as_tensor(world_from_ref, dtype=torch.float64)
    b = torch.as_tensor(world_from_target, dtype=torch.float64)
    return torch.linalg.inv(a) @ b
