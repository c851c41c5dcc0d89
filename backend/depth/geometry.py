"""Pinhole geometry in torch, batched: OpenCV camera axes (x right, y down, z forward), pixel centres at
(i + 0.5, j + 0.5), planar depth (along the optical axis). Works on any device and float dtype.

Names say their frames: `s_from_t` maps points in camera t to camera s (4x4 or R, t).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(H, W, 2) pixel centres (x, y)."""
    ys = torch.arange(height, device=device, dtype=dtype) + 0.5
    xs = torch.arange(width, device=device, dtype=dtype) + 0.5
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x, y], -1)


def unproject(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """depth (B, H, W) planar, K (B, 3, 3) -> camera points (B, H, W, 3)."""
    b, h, w = depth.shape
    p = pixel_grid(h, w, depth.device, depth.dtype)
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    x = (p[..., 0] - cx.view(b, 1, 1)) / fx.view(b, 1, 1)
    y = (p[..., 1] - cy.view(b, 1, 1)) / fy.view(b, 1, 1)
    return torch.stack([x * depth, y * depth, depth], -1)


def project(points: torch.Tensor, K: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """camera points (B, H, W, 3) -> (pixels (B, H, W, 2), planar depth (B, H, W))."""
    b = points.shape[0]
    z = points[..., 2]
    zc = z.clamp(min=eps)
    fx, fy, cx, cy = (K[:, i, j].view(b, 1, 1) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    return torch.stack([fx * points[..., 0] / zc + cx, fy * points[..., 1] / zc + cy], -1), z


def transform(R: torch.Tensor, t: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """R (B, 3, 3), t (B, 3), points (B, H, W, 3) -> R @ p + t."""
    return torch.einsum("bij,bhwj->bhwi", R, points) + t[:, None, None, :]


def sample(image: torch.Tensor, pixels: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """image (B, C, H, W) at pixel positions (B, H', W', 2) -> (B, C, H', W'); zeros outside."""
    h, w = image.shape[-2:]
    grid = torch.stack([pixels[..., 0] / w * 2 - 1, pixels[..., 1] / h * 2 - 1], -1)
    return F.grid_sample(image, grid, mode=mode, padding_mode="zeros", align_corners=False)


def inside(pixels: torch.Tensor, height: int, width: int, margin: float = 0.5) -> torch.Tensor:
    """(B, H, W) bool: the pixel position lies inside the image (with `margin` px to spare)."""
    x, y = pixels[..., 0], pixels[..., 1]
    return (x >= margin) & (x <= width - margin) & (y >= margin) & (y <= height - margin)


def axis_angle_to_matrix(w: torch.Tensor) -> torch.Tensor:
    """(B, 3) radians -> (B, 3, 3) (Rodrigues; smooth at 0)."""
    theta2 = (w * w).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2 + 1e-12)
    k = torch.zeros(w.shape[0], 3, 3, device=w.device, dtype=w.dtype)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -w[:, 2], w[:, 1], -w[:, 0]
    k = k - k.transpose(1, 2)
    a = (torch.sin(theta) / theta)[..., None]
    b = ((1 - torch.cos(theta)) / (theta2 + 1e-12))[..., None]
    eye = torch.eye(3, device=w.device, dtype=w.dtype).expand_as(k)
    return eye + a * k + b * (k @ k)


def intrinsics_matrix(fx, fy, cx, cy) -> torch.Tensor:
    """(B,) each -> (B, 3, 3)."""
    z, o = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack([torch.stack([fx, z, cx], -1), torch.stack([z, fy, cy], -1), torch.stack([z, z, o], -1)], -2)
