"""Sampling along rays and NSFF's blended compositing.

Samples are planar depths z (see space.py). Training concentrates them where the depth prior says the
surface is (a band of +-margin around it) and adds a few spread uniformly in disparity, which keep free
space empty; a render with no prior takes a coarse pass uniform in disparity and importance-samples the
coarse weights.

Blending (NSFF eq. 6-7, as densities): at each sample the static density sigma_s and the dynamic one
sigma_d mix with the static field's blend weight b as sigma = (1 - b) sigma_s + b sigma_d, and the colour is
their density-weighted mix; the usual alpha compositing follows. The dynamic share b sigma_d / sigma of a
sample is what moves: the scene flow a pixel sees is its composited share times the dynamic flow.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

LAST_DELTA = 1e10   # the last sample absorbs whatever light is left (the far background)


def stratified_band(centre: torch.Tensor, n: int, margin: float, jitter: bool) -> torch.Tensor:
    """(R,) planar depths -> (R, n) samples spread over [c (1 - margin), c (1 + margin)]."""
    steps = (torch.arange(n, device=centre.device, dtype=centre.dtype) + 0.5) / n
    if jitter:
        steps = steps + (torch.rand(centre.shape[0], n, device=centre.device) - 0.5) / n
    return centre[:, None] * (1 - margin + 2 * margin * steps)


def uniform_disparity(rays: int, n: int, near: float, far: float, device, jitter: bool) -> torch.Tensor:
    """(rays, n) planar depths, evenly spaced in 1/z between near and far."""
    steps = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n
    steps = steps.expand(rays, n)
    if jitter:
        steps = steps + (torch.rand(rays, n, device=device) - 0.5) / n
    return 1.0 / (1.0 / near + (1.0 / far - 1.0 / near) * steps)


def importance(z: torch.Tensor, weights: torch.Tensor, n: int) -> torch.Tensor:
    """(R, S) sorted coarse depths and their compositing weights -> (R, n) depths drawn from the weights
    (inverse CDF, deterministic midpoints), each within the coarse interval it falls in."""
    w = weights[:, :-1] + 1e-5
    cdf = torch.cumsum(w / w.sum(-1, keepdim=True), -1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], -1)                       # (R, S)
    u = ((torch.arange(n, device=z.device, dtype=z.dtype) + 0.5) / n).expand(z.shape[0], n).contiguous()
    idx = torch.searchsorted(cdf, u, right=True).clamp(1, z.shape[1] - 1)
    c0, c1 = cdf.gather(1, idx - 1), cdf.gather(1, idx)
    z0, z1 = z.gather(1, idx - 1), z.gather(1, idx)
    f = ((u - c0) / (c1 - c0).clamp_min(1e-8)).clamp(0, 1)
    return z0 + f * (z1 - z0)


@dataclass
class Composite:
    rgb: torch.Tensor          # (R, 3)
    depth: torch.Tensor        # (R,) planar
    weights: torch.Tensor      # (R, S)
    dynamic_share: torch.Tensor  # (R, S): b sigma_d / sigma per sample
    sigma: torch.Tensor        # (R, S) blended density


def composite(z: torch.Tensor, sigma_s: torch.Tensor, colour_s: torch.Tensor, blend: torch.Tensor,
              sigma_d: torch.Tensor, colour_d: torch.Tensor) -> Composite:
    """z (R, S) sorted; densities and blend (R, S); colours (R, S, 3)."""
    sigma_s_part, sigma_d_part = (1 - blend) * sigma_s, blend * sigma_d
    sigma = sigma_s_part + sigma_d_part
    colour = (sigma_s_part[..., None] * colour_s + sigma_d_part[..., None] * colour_d) / (sigma[..., None] + 1e-6)
    weights = alpha_weights(z, sigma)
    rgb = (weights[..., None] * colour).sum(1)
    depth = (weights * z).sum(1)
    return Composite(rgb, depth, weights, sigma_d_part / (sigma + 1e-6), sigma)


def alpha_weights(z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Compositing weights T_k alpha_k of densities (R, S) at depths z (R, S)."""
    delta = torch.cat([z[:, 1:] - z[:, :-1], torch.full_like(z[:, :1], LAST_DELTA)], 1)
    alpha = 1 - torch.exp(-sigma * delta)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1] + 1e-10], 1), 1)
    return transmittance * alpha
