"""Pixels <-> world points with OpenCV cameras (pixel centres at i + 0.5) and planar depth, in torch.

Everything takes and returns tensors on the caller's device, so the same code runs on CPU and CUDA.
"""
from __future__ import annotations

import numpy as np
import torch


def pixel_grid(height: int, width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(v, u) integer pixel indices, each (H, W) int64."""
    v, u = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return v, u


def unproject(K: np.ndarray, world_from_camera: np.ndarray, v: torch.Tensor, u: torch.Tensor,
              depth: torch.Tensor) -> torch.Tensor:
    """World points (N, 3) float32 of pixels (v, u) (int tensors (N,)) with planar depth (N,)."""
    dev = depth.device
    Kinv = torch.as_tensor(np.linalg.inv(K), dtype=torch.float32, device=dev)
    M = torch.as_tensor(world_from_camera, dtype=torch.float32, device=dev)
    pix = torch.stack([u.float() + 0.5, v.float() + 0.5, torch.ones_like(depth)], dim=-1)
    cam = (pix @ Kinv.T) * depth[:, None]
    return cam @ M[:3, :3].T + M[:3, 3]


def project(K: np.ndarray, world_from_camera: np.ndarray, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous pixel coordinates (N, 2) (x, y with pixel centres at i + 0.5) and planar depth (N,)."""
    dev = points.device
    camera_from_world = np.linalg.inv(world_from_camera)
    M = torch.as_tensor(camera_from_world, dtype=torch.float32, device=dev)
    Kt = torch.as_tensor(K, dtype=torch.float32, device=dev)
    cam = points @ M[:3, :3].T + M[:3, 3]
    z = cam[:, 2]
    pix = cam @ Kt.T
    xy = pix[:, :2] / z.clamp(min=1e-9)[:, None]
    return xy, z


def reliable_depth(depth: np.ndarray, jump: float = 0.03) -> np.ndarray:
    """(H, W) bool: finite positive depth away from depth edges, where a pixel mixes two surfaces and its
    3D point would float between them ("flying pixels"). On a plane, inverse depth is an affine function of
    the pixel position, so its second difference vanishes even at grazing angles (the ground towards the
    horizon); across an occlusion edge it jumps. A pixel is kept when the second differences of inverse
    depth along rows and columns stay under `jump` times its own inverse depth."""
    finite = np.isfinite(depth) & (depth > 0)
    inv = np.where(finite, 1.0 / np.where(finite, depth, 1.0), 0.0).astype(np.float32)
    pad = np.pad(inv, 1, mode="edge")
    centre = pad[1:-1, 1:-1]
    dx = np.abs(2 * centre - pad[1:-1, :-2] - pad[1:-1, 2:])
    dy = np.abs(2 * centre - pad[:-2, 1:-1] - pad[2:, 1:-1])
    fpad = np.pad(finite, 1, mode="edge")
    neighbours = fpad[1:-1, :-2] & fpad[1:-1, 2:] & fpad[:-2, 1:-1] & fpad[2:, 1:-1]
    return finite & neighbours & (np.maximum(dx, dy) <= jump * centre)
