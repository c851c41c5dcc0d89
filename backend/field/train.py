"""The training loop: scene box from the depth prior, Adam on planes and decoders, the priors decayed.

Steps scale with `effort` (RunSettings.effort) and quality; the device is whatever the stage was given
(same code on CPU and CUDA). Preview keeps planes and batches small enough for a 2-core CPU; final is
sized for a GPU.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .data import RaySampler, ShotData
from .losses import LossWeights, Sampling, batch_losses
from .model import FieldConfig, SceneField
from .scene_flow_prior import rigid_scene_flow
from .space import SceneBox, fit_dynamic_region, fit_scene_box, image_grid, motion_occupancy, pixel_rays


@dataclass
class TrainSettings:
    steps: int = 1200
    rays: int = 2048
    moving_share: float = 0.3
    warp_share: float = 0.45
    """Rays of a batch that get the warp, cycle and flow losses: the motion-masked ones and some more."""
    plane_lr: float = 0.03
    decoder_lr: float = 0.005
    final_lr_fraction: float = 0.1
    config: FieldConfig = field(default_factory=FieldConfig)
    weights: LossWeights = field(default_factory=LossWeights)
    sampling: Sampling = field(default_factory=Sampling)
    seed: int = 0
    rigid_parts: bool = True
    """Scene-flow prior targets from the masked pixels' rigid parts where they have one (rigid_targets)."""


#: Per quality: what fits a 2-core CPU in minutes (preview) and what a GPU affords (final), at effort 1.
PRESETS = {
    "preview": dict(steps=1500, rays=2048, config=dict(static_resolutions=(48, 96, 192), dynamic_resolutions=(32, 96), channels=12, hidden=64)),
    "final": dict(steps=6000, rays=8192, config=dict(static_resolutions=(64, 192, 384), dynamic_resolutions=(48, 160), channels=16, hidden=64)),
}


def train_settings(quality: str, effort: float, frames: int, width: int, height: int) -> TrainSettings:
    preset = PRESETS[quality]
    # finer planes for bigger images: the preset is sized for 320 px across. The static planes are made at most
    # a quarter coarser for smaller images (the dynamic ones down to half): they hold the whole scene, seen
    # from new cameras, and at half the cells the quick test shot (160x120) lost 1.2 dB in its held-out views
    # (27.78 against 29.02 dB at 3/4, 29.06 at the full size; docs/field.md, Session 9), for no time saved (a
    # step's cost is per ray, and these planes are small). At the full size a short training (the tests'
    # 150 steps) left the held-out depth worse (median error 5.7 %, against 5 % allowed); at 3/4 it passes
    scale = max(width, height) / 320
    cfg = dict(preset["config"])
    cfg["static_resolutions"] = tuple(max(16, int(round(r * min(max(scale, 0.75), 3.0)))) for r in cfg["static_resolutions"])
    cfg["dynamic_resolutions"] = tuple(max(16, int(round(r * min(max(scale, 0.5), 3.0)))) for r in cfg["dynamic_resolutions"])
    return TrainSettings(steps=max(2, int(round(preset["steps"] * effort))), rays=preset["rays"],
                         config=FieldConfig(frames=frames, **cfg))


def scene_box(data: ShotData, stride: int = 4, masked: list[np.ndarray] | None = None) -> SceneBox:
    """Fit the box to the depth prior's points (every `stride`-th pixel of every frame), and the dynamic
    region to those of them inside the motion masks (every pixel: movers are small; `masked_points(data)`,
    computed here unless the caller has them)."""
    w, h = data.size
    grid = image_grid(w, h, data.rgb.device).view(h, w, 2)[::stride, ::stride].reshape(-1, 2)
    points, depths = [], []
    for i in range(data.frames):
        d = data.depth[i][::stride, ::stride].reshape(-1)
        keep = d > 0
        n = int(keep.sum())
        if n == 0:
            continue
        o, v = pixel_rays(data.K[i].expand(n, 3, 3), data.world_from_camera[i].expand(n, 4, 4), grid[keep])
        points.append((o + d[keep, None] * v).cpu().numpy())
        depths.append(d[keep].cpu().numpy())
    if not points:  # no prior at all: a box around the cameras, a few camera spans deep
        centres = data.world_from_camera[:, :3, 3].cpu().numpy()
        span = float(np.ptp(centres, axis=0).max() or 1.0)
        return SceneBox(centres.mean(0), np.full(3, 5 * span), 0.05 * span, 100 * span)
    box = fit_scene_box(np.concatenate(points), np.concatenate(depths))
    region = fit_dynamic_region(np.concatenate(masked if masked is not None else masked_points(data)), box)
    if region is not None:
        box.dynamic_centre, box.dynamic_half = region
    return box


def masked_points(data: ShotData) -> list[np.ndarray]:
    """Per frame, the depth prior's 3D points inside the motion masks (M_t, 3)."""
    w, h = data.size
    grid = image_grid(w, h, data.rgb.device)
    out = []
    for i in range(data.frames):
        mask = (data.moving[i] & (data.depth[i] > 0)).reshape(-1)
        m = int(mask.sum())
        o, v = pixel_rays(data.K[i].expand(m, 3, 3), data.world_from_camera[i].expand(m, 4, 4), grid[mask])
        out.append((o + data.depth[i].reshape(-1)[mask, None] * v).cpu().numpy())
    return out


def rigid_targets(data: ShotData, fb_px: float, seed: int = 0) -> None:
    """Set data.rigid_* (scene_flow_prior.rigid_scene_flow, both directions)."""
    common = (data.depth, data.K, data.world_from_camera, data.moving, data.inside_px)
    data.rigid_fw, data.rigid_ok_fw = rigid_scene_flow(*common, data.flow_fw, data.valid_fw, data.flow_bw, 1, fb_px, seed)
    data.rigid_bw, data.rigid_ok_bw = rigid_scene_flow(*common, data.flow_bw, data.valid_bw, data.flow_fw, -1, fb_px, seed)


def train_field(data: ShotData, settings: TrainSettings, device: str,
                progress: Callable[[float, str], None] = lambda f, m: None) -> tuple[SceneField, dict]:
    torch.manual_seed(settings.seed)
    if settings.rigid_parts and data.inside_px is not None:
        rigid_targets(data, settings.weights.scene_flow_fb_px, settings.seed)
    masked = masked_points(data)  # the dynamic region and its per-frame occupancy both come from them
    box = scene_box(data, masked=masked)
    cfg = settings.config
    cfg.flow_scale = float(0.02 * np.max(box.half))
    model = SceneField(cfg, box).to(device)
    if model.has_dynamic_region:
        occupancy = motion_occupancy(masked, box.dynamic_centre, box.dynamic_half)
        model.occupancy.copy_(torch.from_numpy(occupancy))
    planes = [p for n, p in model.named_parameters() if "planes" in n or "volumes" in n]
    decoders = [p for n, p in model.named_parameters() if not ("planes" in n or "volumes" in n)]
    # fused: the same Adam in one kernel per parameter group. The planes hold almost all of the parameters
    # (16 M on the default 40-frame 320x240 shot, 15 M of them the dynamic volumes), and the default
    # (foreach) update walks them in several passes: 0.138 s a step on one CPU thread against 0.025 s fused,
    # a third of a step (forward 0.07 s, backward 0.24 s). Fused Adam runs on CPU and CUDA, the stage's devices.
    optimiser = torch.optim.Adam([{"params": planes, "lr": settings.plane_lr},
                                  {"params": decoders, "lr": settings.decoder_lr}], eps=1e-12, fused=True)
    gamma = settings.final_lr_fraction ** (1 / max(settings.steps, 1))
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma)
    sampler = RaySampler(data, settings.moving_share, settings.seed)
    started = time.monotonic()
    history = []
    for step in range(settings.steps):
        fraction = step / max(settings.steps - 1, 1)
        batch = sampler.sample(settings.rays)
        losses = batch_losses(model, data, batch, settings.weights, settings.sampling, fraction,
                              warp_rays=int(settings.rays * max(settings.warp_share, sampler.moving_share)))
        total = sum(losses.values())
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        optimiser.step()
        schedule.step()
        if step % 50 == 0 or step == settings.steps - 1:
            psnr = float(-10 * torch.log10(losses["photometric"].detach().clamp_min(1e-10) / settings.weights.photometric))
            history.append({"step": step, "psnr": round(psnr, 2), **{k: round(float(v.detach()), 5) for k, v in losses.items()}})
            progress(fraction, f"step {step + 1}/{settings.steps}, batch PSNR {psnr:.1f} dB")
    info = {"steps": settings.steps, "rays_per_step": settings.rays, "train_seconds": round(time.monotonic() - started, 2),
            "final_batch_psnr": history[-1]["psnr"] if history else None, "history": history}
    return model.eval(), info
