"""Training OmniMotion on one shot: the losses and the optimisation loop.

Losses (OmniMotion sec. 4.3, plus one for the depth that initialises the local spaces):
- flow: L1 between where the model maps a pixel of frame i in frame j and where the (forward-backward
  consistent, possibly chained) flow puts it, in pixels scaled to a 100-pixel-wide frame;
- photometric: L1 between the colour composited along the ray from the canonical field and the pixel's;
- acceleration: ||x_{t+1} + x_{t-1} - 2 x_t|| of the ray's composited surface point, carried to frames
  t-1, t, t+1 (world/canonical units), which keeps 3D trajectories smooth;
- motion sparsity: L1 of what the per-frame motion planes add, so they move only what the flow asks to move
  (without it they pick up noise that moves the static scene);
- depth (only where depth is known: depth/*.exr, or triangulated from flow and the solved cameras): L1 of the
  log of the ray's composited depth against the log of the known one. It puts
  the density on the surfaces early, which is what orders surfaces for occlusion.
Hard-example mining: flow_data.Correspondences draws half of each batch where the flow error was large.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .flow_data import Correspondences
from .model import OmniMotion

# W_ACCEL 5 rather than 20: a point on a rolling object accelerates (its speed swings between 1 and 5 px a
# frame on the default test shot's ball), and the stronger penalty held it to a smoother, wrong path: default
# shot AJ moving 0.291 -> 0.312, <δavg moving 0.437 -> 0.462 (1: no better, 0.309).
W_FLOW, W_PHOTO, W_ACCEL, W_DEPTH = 1.0, 0.2, 5.0, 1.0
W_MOTION_SPARSITY = 0.2   # L1 on the motion planes' output: they move only what the flow asks to move
DEPTH_LOSS_FADE = 0.5       # the depth loss is full until this share of training, then fades to a tenth


@dataclass
class TrainingOptions:
    iterations: int
    batch: int = 512
    learning_rate: float = 1e-3
    grid_learning_rate: float = 2e-3
    field_learning_rate: float = 1e-2
    seed: int = 0


def train(model: OmniMotion, data: Correspondences, options: TrainingOptions, device: str,
          depth: np.ndarray | None = None, progress=None, log=None) -> dict:
    """Optimise `model` in place; returns figures for the log. `depth` (F, H, W) is the known planar depth
    (NaN where unknown) or None."""
    torch.manual_seed(options.seed)
    model.to(device).train()
    depth_t = torch.from_numpy(depth).float() if depth is not None else None
    grids = [p for n, p in model.named_parameters() if n.endswith(".grid")]
    mapping = [p for n, p in model.named_parameters() if not n.startswith("field.") and not n.endswith(".grid")]
    optimiser = torch.optim.Adam([{"params": mapping, "lr": options.learning_rate},
                                  {"params": grids, "lr": options.grid_learning_rate},
                                  {"params": model.field.parameters(), "lr": options.field_learning_rate}])
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=[options.learning_rate, options.grid_learning_rate, options.field_learning_rate],
        total_steps=max(options.iterations, 1),
        pct_start=0.05, anneal_strategy="cos", div_factor=10.0, final_div_factor=20.0)
    pixel_scale = 100.0 / max(data.W, data.H)
    started = time.monotonic()
    recent = []
    for it in range(options.iterations):
        batch = data.sample(options.batch)
        b = {k: v.to(device) for k, v in batch.items()}
        for layer in model.couplings:
            layer.grid_magnitude = 0.0
        ray = model.trace(b["src"], b["pixels"], jitter=True)
        predicted, _, _ = model.map_to(ray, b["dst"])
        error = (predicted - b["target"]).abs().sum(-1)                    # pixels, L1
        valid = b["valid"].float()
        loss_flow = (error * valid).sum() / valid.sum().clamp_min(1) * pixel_scale
        loss_photo = (ray["rgb"] - b["rgb"]).abs().mean()
        mid = b["src"].clamp(1, model.config.frames - 2)
        u = ray["u_surface"]
        x0, x1, x2 = (model.world_of(u, mid + k) / model.scale for k in (-1, 0, 1))
        loss_accel = (x0 + x2 - 2 * x1).norm(dim=-1).mean()
        loss = W_FLOW * loss_flow + W_PHOTO * loss_photo + W_ACCEL * loss_accel
        loss = loss + W_MOTION_SPARSITY * sum(layer.grid_magnitude for layer in model.couplings)
        if depth_t is not None:
            known = depth_t[batch["src"], batch["pixels"][:, 1].long(), batch["pixels"][:, 0].long()].to(device)
            ok = torch.isfinite(known)
            if ok.any():
                fade = 1.0 if it < DEPTH_LOSS_FADE * options.iterations else 0.1
                loss_depth = (ray["depth"][ok].log() - known[ok].log()).abs().mean()
                loss = loss + W_DEPTH * fade * loss_depth
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        data.record(batch, error)
        recent.append(float((error.detach() * valid).sum() / valid.sum().clamp_min(1)))
        if progress is not None and (it % 25 == 0 or it == options.iterations - 1):
            progress((it + 1) / options.iterations, f"iteration {it + 1}/{options.iterations}: "
                     f"flow error {np.mean(recent[-25:]):.2f} px")
        if log is not None and (it % 500 == 0 or it == options.iterations - 1):
            log(f"tracks: iteration {it + 1}: flow L1 {np.mean(recent[-50:]):.3f} px, photo {loss_photo.item():.4f}, "
                f"accel {loss_accel.item():.5f}")
    model.eval()
    return {"iterations": options.iterations, "seconds": round(time.monotonic() - started, 2),
            "final_flow_l1_px": round(float(np.mean(recent[-50:])), 4) if recent else None, "pairs": data.pairs,
            "gaps": data.gaps}
