"""A direct scene-flow prior lifted from the optical flow and the depth prior.

The warp and induced-flow losses reach the dynamic field's scene flow only through image-space errors, and
each frame's dynamic planes only through that frame's rays, so the flow's *length* learns slowly (the field
reached 54 % end-point error on the moving objects after 1,500 steps). Depth and optical flow together say
it directly: pixel p of frame t lies at X_t(p) = o_t + d_t(p) v_t(p); the optical flow carries it to
q = p + u_{t->t+s}(p) in frame t + s, where it lies at X_{t+s}(q) = o_{t+s} + d_{t+s}(q) v_{t+s}(q). Their
difference is the 3D motion of that surface point, exact wherever depth and flow are.

It is only trusted where it can be right:
- the optical flow passed the flow stage's forward-backward check (not occluded or disoccluded in t + s);
- both depths are known, and the depth at q (between pixel centres, read bilinearly) is not read across a
  depth edge: the four pixels around q must agree within EDGE_TOLERANCE, else a bilinear mix of a
  foreground object and the background behind it would invent a point in mid-air, and a flow that lands
  one pixel off an object's silhouette would take the background's depth;
- the point does not jump in depth: seen from camera t + s, its depth there and the depth the point had at
  time t differ by MAX_DEPTH_STEP at most. A flow that lands a pixel or two off a mover, wholly on the
  background behind it (which the edge test cannot see), passes the forward-backward check often enough on
  small low-texture movers, and would make a "motion" of the whole gap to the background: on the quick test
  shot such targets made the prior's mean error 65 % of the motion where its median is 10 %.

Where it is trusted, it is weighted by how sure the optical flow is there (`flow_confidence`): the passed
forward-backward check is a yes/no at a threshold, but the residual under it still says much. On the default
test shot's moving pixels the lifted targets were off by 5.8 % of the motion where the residual was under
0.1 px, 25 % at 0.25-0.5 px and 36 % at 0.5-1 px; and by 47 % within 1.5 px of the motion mask's edge (the
flow smears a mover's motion onto its outline) against 3.4 % more than 8 px inside.
"""
from __future__ import annotations

import torch

from .space import pixel_rays, project

#: The four depths around the flow's landing point may differ by this fraction at most (a continuous surface
#: seen at 160-960 px changes far less from one pixel to the next; an occlusion edge changes far more).
EDGE_TOLERANCE = 0.05
#: Largest change of a point's depth from one frame to the next, relative (an object approaching the camera
#: at a tenth of its distance per frame is faster than anything a shot of a few seconds holds for long).
MAX_DEPTH_STEP = 0.1


def depth_at(depth: torch.Tensor, frame: torch.Tensor, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """depth (F, H, W) planar, 0 = unknown; frame (B,) long; xy (B, 2) pixel coordinates (centres at i + 0.5).
    Returns the bilinearly read depth (B,) and whether it is usable (B,) bool: inside the image, the four
    neighbours known and agreeing within EDGE_TOLERANCE."""
    _, h, w = depth.shape
    x0, y0 = torch.floor(xy[:, 0] - 0.5), torch.floor(xy[:, 1] - 0.5)
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + 1 <= w - 1) & (y0 + 1 <= h - 1)
    corners, weights = _corners(depth, frame, xy[:, 0] - 0.5, xy[:, 1] - 0.5)       # (B, 4) each
    lo, hi = corners.amin(1), corners.amax(1)
    ok = inside & (lo > 0) & (hi <= lo * (1 + EDGE_TOLERANCE))
    return (weights * corners).sum(1), ok


def _corners(image: torch.Tensor, frame: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The four pixels of image (F, H, W, ...) around positions x, y (B,) in pixel-index coordinates (centres
    at integers), (B, 4, ...), and their bilinear weights (B, 4); positions beyond the outer pixel centres
    take the border cell's corners."""
    _, h, w = image.shape[:3]
    x0, y0 = torch.floor(x).clamp(0, w - 2), torch.floor(y).clamp(0, h - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    xi, yi = x0.long(), y0.long()
    corners = torch.stack([image[frame, yi, xi], image[frame, yi, xi + 1],
                           image[frame, yi + 1, xi], image[frame, yi + 1, xi + 1]], 1)
    return corners, torch.cat([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)


def lifted_scene_flow(depth: torch.Tensor, K: torch.Tensor, world_from_camera: torch.Tensor, frame: torch.Tensor,
                      xy: torch.Tensor, depth_here: torch.Tensor, flow: torch.Tensor, flow_valid: torch.Tensor,
                      step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The scene flow of pixels xy (B, 2) of frames `frame` (B,) to frame + step (step = +1 or -1), in world
    units: X_{t+step}(xy + flow) - X_t(xy). depth (F, H, W), K (F, 3, 3), world_from_camera (F, 4, 4) are the
    shot's; depth_here (B,) the pixels' own prior depth (0 = unknown); flow (B, 2) the optical flow to
    frame + step in pixels and flow_valid (B,) its forward-backward check.
    Returns target (B, 3) and ok (B,) bool (where the target is to be trusted; the target is 0 elsewhere)."""
    frames = depth.shape[0]
    other = frame + step
    inside = (other >= 0) & (other < frames)
    other = other.clamp(0, frames - 1)
    o, v = pixel_rays(K[frame], world_from_camera[frame], xy)
    here = o + depth_here[:, None] * v
    landing = xy + flow
    depth_there, known = depth_at(depth, other, landing)
    o2, v2 = pixel_rays(K[other], world_from_camera[other], landing)
    there = o2 + depth_there[:, None] * v2
    _, depth_moved = project(here, K[other], world_from_camera[other])     # where the point was, seen from t + step
    steady = (depth_there - depth_moved).abs() <= MAX_DEPTH_STEP * depth_moved.abs()
    ok = inside & flow_valid & (depth_here > 0) & known & steady
    target = torch.where(ok[:, None], there - here, torch.zeros_like(here))
    return target, ok


def bilinear(image: torch.Tensor, frame: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """image (F, H, W, C), frame (B,) long, xy (B, 2) pixel coordinates (centres at i + 0.5) -> (B, C), read
    bilinearly with the border repeated."""
    _, h, w, _ = image.shape
    corners, weights = _corners(image, frame, (xy[:, 0] - 0.5).clamp(0, w - 1), (xy[:, 1] - 0.5).clamp(0, h - 1))
    return (weights[..., None] * corners).sum(1)


def flow_confidence(reverse_flow: torch.Tensor, frame: torch.Tensor, xy: torch.Tensor, flow: torch.Tensor, step: int,
                    sigma_px: float, inside_px: torch.Tensor | None = None, edge_px: float = 0.0) -> torch.Tensor:
    """How far to trust the optical flow `flow` (B, 2) of pixels xy (B, 2) of frames `frame` (B,) to
    frame + step, 0..1: exp(-(r / sigma_px)^2) of the forward-backward residual r = |u(p) + u'(p + u(p))|,
    u' the flow of frame + step back (`reverse_flow`, (F, H, W, 2): the backward flow for step +1, the
    forward one for -1); times min(1, d / edge_px) with d = `inside_px` (B,), how far the pixel lies inside
    its motion mask, when edge_px > 0. sigma_px <= 0 leaves the residual out."""
    frames = reverse_flow.shape[0]
    weight = torch.ones_like(flow[:, 0])
    if sigma_px > 0:
        other = (frame + step).clamp(0, frames - 1)
        back = bilinear(reverse_flow, other, xy + flow)
        residual = (flow + back).norm(dim=1)
        weight = torch.exp(-(residual / sigma_px) ** 2)
    if edge_px > 0 and inside_px is not None:
        weight = weight * (inside_px / edge_px).clamp(max=1)
    return weight
