"""Gradient descent of the layer stack's RGBA against the frames (DeepView, Flynn et al. 2019, with plain
gradient steps instead of the learned update, which the paper reports also works).

Each step renders the stack at the reference frame and at a few neighbouring frames (homography warp of every
layer + "over" compositing, composite.py) and lowers the L1 difference to the frames, on static pixels only:
the motion masks keep the moving objects of the other frames out, while the reference frame is fitted
everywhere (so what moves is kept where it was at the reference time). Alpha is kept smooth (total variation)
and sparse (an L1 pull towards transparent), as the layers' regulariser Phi of the paper.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from . import geometry
from .composite import linear_to_srgb, over, sample_layers, srgb_to_linear
from .stack import LayerStack, View, crop_from_canvas, pad_to_canvas
from .sweep import nearest_layer

CLEAR_ALPHA = 0.03


@dataclass(frozen=True)
class Schedule:
    steps: int
    sources_per_step: int = 2
    colour_rate: float = 0.005       # gentle: faster rates sharpen colours against the resampling blur (measured: -1 to -2 dB held out)
    alpha_rate: float = 0.002       # slow: Adam's normalised steps would otherwise smear opacity everywhere
    reference_weight: float = 2.0
    alpha_tv: float = 0.01
    alpha_l1: float = 0.03
    seed: int = 0


@dataclass
class _Target:
    view: View
    grid: torch.Tensor      # (D, H, W, 2)
    depth: torch.Tensor     # (D, H, W)
    valid: torch.Tensor     # (D, H, W)
    fit: torch.Tensor       # (H, W) float: pixels that count


def _target(stack: LayerStack, view: View) -> _Target:
    """The fixed part of rendering the stack at `view`: where each layer lands (float32: ample at these sizes,
    and the CPU's elementwise work halves)."""
    _, height, width = view.image.shape
    pose = geometry.relative_pose(stack.reference.world_from_camera.cpu(), view.world_from_camera.cpu())
    rays = geometry.target_rays(view.K, pose.to(view.K.device), height, width)
    rays = geometry.TargetRays(rays.origin.float(), rays.rays.float())
    h = geometry.hits(stack.kind, rays, stack.distances[:, None, None].float(), stack.K.float(), stack.size)
    seen = h.valid[0] & (h.grid[0].abs() <= 1).all(-1)      # the backdrop is there: the layers cover the pixel
    dtype = stack.colour.dtype
    return _Target(view, h.grid.to(dtype), h.depth.to(dtype), h.valid, (seen & view.static).to(dtype))


def render(stack_rgba: torch.Tensor, target: _Target):
    """stack_rgba: linear colour + alpha."""
    return over(sample_layers(stack_rgba, target.grid), target.depth, target.valid, linear=True)


def refine(stack: LayerStack, sources: list[View], schedule: Schedule,
           progress: Callable[[float], None] = lambda f: None) -> LayerStack:
    """Optimise `stack` in place of a copy; returns the refined stack."""
    reference = _target(stack, stack.reference)
    targets = [_target(stack, v) for v in sources]
    colour = srgb_to_linear(stack.colour).requires_grad_(True)   # linear: no conversion per rendered view
    alpha = stack.alpha[1:].clone().requires_grad_(True)       # the backdrop stays opaque
    opaque = stack.alpha[:1]
    # The surfaces the initialisation placed from depth (the reference frame's own, the hidden ones and those
    # around the frame the neighbours saw) are kept as placed: the descent renders flat planes, while the
    # meshes put those texels at their exact distance, so fitting their colours to the planes' misregistered
    # view of the frames only blurs them (measured on the test shots with ground-truth depth: -0.4 to -0.6 dB
    # held out after 60 steps). The descent works on everything else: where the depth said nothing, or
    # where the frames ask for a surface it missed.
    placed = torch.cat([torch.zeros_like(stack.alpha[:1]), stack.alpha[1:]], 0) >= 1
    placed_colour = colour.detach().clone()
    optimiser = torch.optim.Adam([{"params": [colour], "lr": schedule.colour_rate},
                                  {"params": [alpha], "lr": schedule.alpha_rate}])
    generator = torch.Generator().manual_seed(schedule.seed)
    for step in range(schedule.steps):
        optimiser.zero_grad(set_to_none=True)
        rgba = torch.cat([colour, torch.cat([opaque, alpha], 0)], 1)
        chosen = torch.randperm(len(targets), generator=generator)[:schedule.sources_per_step].tolist()
        loss = schedule.reference_weight * _photometric(render(rgba, reference), reference)
        for k in chosen:
            loss = loss + _photometric(render(rgba, targets[k]), targets[k]) / max(len(chosen), 1)
        tv = (alpha[..., 1:, :] - alpha[..., :-1, :]).abs().mean() + (alpha[..., 1:] - alpha[..., :-1]).abs().mean()
        loss = loss + schedule.alpha_tv * tv + schedule.alpha_l1 * alpha.mean()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            colour.clamp_(0, 1)
            alpha.clamp_(0, 1)
            colour.copy_(torch.where(placed, placed_colour, colour))
            alpha.copy_(torch.where(placed[1:], torch.ones_like(alpha), alpha))
        progress((step + 1) / schedule.steps)
    with torch.no_grad():
        # Opacity the frames did not ask for (Adam's small steps on weak gradients) is cleared away.
        alpha = torch.cat([opaque, torch.where(alpha < CLEAR_ALPHA, torch.zeros_like(alpha), alpha)], 0)
        colour = colour.detach().clone()
        centre = crop_from_canvas(colour, stack.margin)
        centre.copy_(match_reference(centre, crop_from_canvas(alpha, stack.margin), srgb_to_linear(stack.reference.image)))
        refined = LayerStack(stack.kind, stack.distances, linear_to_srgb(colour), alpha, stack.reference,
                             stack.margin, stack.surface, stack.hidden)
        return pin_surface(refined)


def pin_surface(stack: LayerStack) -> LayerStack:
    """Where the surface the canvas shows is known (the depth stage's inside the frame, the neighbours' around
    it), the layer nearest to it is opaque with its colour and every layer in front of it is empty, as is
    every layer between it and the hidden surface behind it where the neighbours saw one.

    The descent spreads some opacity over neighbouring layers (a slanted floor between two planes) and leaves
    faint floaters in front; seen from a moved camera, each is a copy of the surface at the wrong distance.
    The depth says where the first surface is, so only what lies behind it is left to the descent."""
    if stack.surface is None:
        return stack
    index = nearest_layer(stack.distances, stack.surface)
    known = index >= 0
    d = torch.arange(len(stack.distances), device=index.device)[:, None, None]
    front = ((d > index[None]) & known[None])
    if stack.hidden is not None:
        # Between the hidden surface the neighbours saw and the surface in front of it they saw nothing.
        behind = nearest_layer(stack.distances, stack.hidden)
        front |= (d > behind[None]) & (d < index[None]) & (behind >= 0)[None]
    front = front[:, None]
    at = ((d == index[None]) & known[None])[:, None]
    alpha = torch.where(front, torch.zeros_like(stack.alpha), torch.where(at, torch.ones_like(stack.alpha), stack.alpha))
    inside = torch.zeros_like(known)                      # the frame's part of the canvas: its own colours
    crop_from_canvas(inside, stack.margin).fill_(True)
    reference = pad_to_canvas(stack.reference.image, stack.margin)
    colour = torch.where(at & inside[None, None], reference[None], stack.colour)
    return LayerStack(stack.kind, stack.distances, colour, alpha, stack.reference, stack.margin, stack.surface,
                      stack.hidden)


def match_reference(colour: torch.Tensor, alpha: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Colours (D, 3, H, W, linear) moved so that the stack composites to the reference frame (3, H, W, linear)
    at the reference view: each pixel's residual goes into the layer that shows the most of it.

    The fit to several frames leaves the reference view a few dB short of the frame itself (bilinear
    resampling blurs what the other frames see, and the colours sharpen to compensate). The layers of
    Zhou et al. 2018 take their colours from the reference image for the same reason: the reference view
    must be exact, and the other frames decide what lies behind. Only the dominant layer is changed (by
    residual / its weight, exact unless clipped to [0, 1]): faint layers in front keep their fitted colours,
    so a small misplacement of them (a mesh is not the dense stack) does not show a correction meant for
    another surface."""
    a = alpha[:, 0]
    log_clear = torch.log((1 - a).clamp(min=1e-6))
    weights = a * torch.exp(torch.cumsum(log_clear.flip(0), 0).flip(0) - log_clear)
    residual = reference - (weights[:, None] * colour).sum(0)
    top = weights.max(0)
    dominant = (torch.arange(len(a), device=a.device)[:, None, None] == top.indices[None])[:, None]
    step = residual / top.values.clamp(min=0.05)
    return torch.where(dominant, colour + step, colour).clamp(0, 1)


def _photometric(composite, target: _Target) -> torch.Tensor:
    difference = (composite.rgb - target.view.image).abs().mean(0)
    return (difference * target.fit).sum() / target.fit.sum().clamp(min=1)
