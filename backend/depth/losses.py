"""The losses of Li et al. 2020 (weights in `WEIGHTS`, the paper's) plus the two geometric terms a shot
with flow and cameras affords (flow consistency, depth reprojection consistency).

photometric: L1 on RGB + SSIM (kornia) between frame t and frame s warped into t, where the warp lands
inside s; depth smoothness: edge-aware on mean-normalised disparity; motion smoothness: L1 of the residual
field's gradients (normalised by its mean magnitude, as the paper does); sparsity: the paper's L1/2 form
sqrt(1 + |T|/mean|T|) per channel, weighted by the mean; cycle: the residual translation of t -> s and of
s -> t at the matched pixel cancel.
"""
from __future__ import annotations

import torch
from kornia.losses import ssim_loss

#: The paper's weights (rgb 1, ssim 3, depth smoothing 1e-3, rot/trans cycle 1e-3/5e-2, motion smoothing 1,
#: motion sparsity 0.2) and the two geometric terms added here.
WEIGHTS = {"rgb": 1.0, "ssim": 3.0, "depth_smooth": 1e-3, "rot_cycle": 1e-3, "trans_cycle": 5e-2,
           "motion_smooth": 1.0, "motion_sparsity": 0.2, "flow": 0.2, "depth_consistency": 0.5, "prior": 0.5,
           "object_prior": 0.5}


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def photometric(target: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """target, warped (B, 3, H, W); mask (B, H, W) -> (L1, SSIM) losses over the mask."""
    l1 = masked_mean((target - warped).abs().mean(1), mask)
    m = mask[:, None].to(target.dtype)
    # SSIM on masked images: outside the mask both are the target, so they add no dissimilarity
    ssim = ssim_loss(target, warped * m + target * (1 - m), window_size=5, reduction="none").mean(1)
    return l1, masked_mean(ssim, mask)


def edge_aware_smoothness(log_depth: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
    """log_depth (B, H, W), rgb (B, 3, H, W): |grad disparity| e^{-|grad I|} on mean-normalised disparity."""
    disp = torch.exp(-log_depth)
    disp = disp / disp.mean((1, 2), keepdim=True)
    dx = (disp[:, :, 1:] - disp[:, :, :-1]).abs()
    dy = (disp[:, 1:] - disp[:, :-1]).abs()
    ix = (rgb[..., 1:] - rgb[..., :-1]).abs().mean(1)
    iy = (rgb[..., 1:, :] - rgb[..., :-1, :]).abs().mean(1)
    return (dx * torch.exp(-10 * ix)).mean() + (dy * torch.exp(-10 * iy)).mean()


def motion_smoothness(field: torch.Tensor, floor: float = 1e-2) -> torch.Tensor:
    """field (B, H, W, 3) in median-depth units: L1 of spatial gradients, normalised by the field's mean
    magnitude as in the paper, but never by less than `floor`: on one shot the field starts near zero, and
    a normalisation by its tiny mean would make this term's gradient explode and flatten the field to a
    constant (measured: the "lazy" outcome on the test shot)."""
    norm = field.abs().mean((1, 2), keepdim=True).detach().clamp(min=floor)
    f = field / norm
    return (f[:, :, 1:] - f[:, :, :-1]).abs().mean() + (f[:, 1:] - f[:, :-1]).abs().mean()


def motion_sparsity(field: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's L1/2-like sparsity: 2 mean|T| sqrt(1 + |T| / mean|T|) per channel; weight (B, H, W)
    multiplies it pixel by pixel (here: heavier outside the solve's motion masks)."""
    mean_abs = field.abs().mean((1, 2), keepdim=True).detach() + 1e-6
    per = 2 * mean_abs * torch.sqrt(1 + field.abs() / mean_abs)
    per = per.sum(-1)
    if weight is not None:
        per = per * weight
    return per.mean()
