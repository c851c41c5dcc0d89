"""Sampling RGBA layers at another camera and compositing them with "over", back to front (torch).

Layers are stored as sRGB colour + straight alpha (what the PNG textures hold), listed back to front (index 0 is
the farthest). Compositing happens in linear light, because that is what a renderer (Blender's Cycles and
EEVEE, any glTF viewer) does with alpha-blended textures: the reference view of the imported meshes then shows
the same pixels as the backend's own render.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    c = c.clamp(0, 1)
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    c = c.clamp(min=1e-8, max=1)  # the 1e-8 keeps the gradient of the power finite at 0
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


class Composite(NamedTuple):
    rgb: torch.Tensor        # (3, H, W) sRGB in [0, 1]
    depth: torch.Tensor      # (H, W) alpha-weighted planar depth of the rendering camera (0: nothing seen)
    coverage: torch.Tensor   # (H, W) accumulated alpha


def sample_layers(rgba: torch.Tensor, grid: torch.Tensor, border_back: bool = False) -> torch.Tensor:
    """rgba (D, 4, H, W) sampled at grid (D, h, w, 2) -> (D, 4, h, w); outside the image alpha is 0 (the
    farthest layer, with `border_back`, repeats its edge instead, as an extended backdrop)."""
    out = F.grid_sample(rgba, grid.to(rgba.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
    if border_back:
        back = F.grid_sample(rgba[:1], grid[:1].to(rgba.dtype), mode="bilinear", padding_mode="border", align_corners=False)
        out = torch.cat([back, out[1:]], 0)
    return out


def over(samples: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor, linear: bool = False) -> Composite:
    """samples (D, 4, h, w) colour + alpha, back to front (colour sRGB, or linear with `linear`); depth/valid
    (D, h, w) -> the "over" composite.

    Front-to-back weights w_d = a_d * prod_{j nearer} (1 - a_j) are the same sum as compositing back to front
    with c <- c_d a_d + c (1 - a_d), and also give the expected depth. The product is taken as exp(cumsum(log)):
    cumprod's backward pass is several times slower on the CPU.
    """
    alpha = samples[:, 3] * valid.to(samples.dtype)
    colour = samples[:, :3] if linear else srgb_to_linear(samples[:, :3])
    log_clear = torch.log((1 - alpha).clamp(min=1e-6))
    nearer = torch.cumsum(log_clear.flip(0), 0).flip(0) - log_clear       # sum over the layers in front
    weights = alpha * torch.exp(nearer)                                  # (D, h, w), back to front
    rgb = linear_to_srgb((weights[:, None] * colour).sum(0))
    coverage = weights.sum(0)
    expected = (weights * depth).sum(0) / coverage.clamp(min=1e-6)
    return Composite(rgb, torch.where(coverage > 1e-3, expected, torch.zeros_like(expected)), coverage)
