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

On the outline the lifted targets are not only noisy but short (the optical flow there is a median 0.62 of
the true motion on the quick test shot's movers), and the field learned that shortening whatever their
weight. `rigid_scene_flow` gives every masked pixel the motion of its rigid part instead: each frame's masks
are split into parts that move rigidly (sequential RANSAC of rotation + translation on the confident lifted
targets at least 4 px inside the mask), and a part's motion, applied to the pixel's own prior point, reaches
the pixels near the targets that agree with it and at about their depth. On the quick test shot the targets
were off by 11 % of the motion (22 % for the lifted ones, on fewer pixels), 15 % within 1.5 px of the edge
(60 %); on the default shot 4.2 % (9.5 %), 6.6 % at the edge (47 %).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..metrics.camera import Sim3, umeyama_sim3
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


#: Rigid parts (`rigid_scene_flow`): a part's motion is fitted to its lifted targets this far inside the motion
#: mask (px) only, where the optical flow is not smeared onto the background ...
RIGID_INSIDE_PX = 4.0
#: ... with at least this confidence (flow_confidence) ...
RIGID_MIN_CONFIDENCE = 0.05
#: ... and a target is an inlier of a motion within this share of the targets' median length
RIGID_TOLERANCE = 0.3
#: smallest part (inlier targets) worth a rigid fit, and the parts looked for in one mask component
RIGID_MIN_TARGETS = 12
RIGID_PARTS = 3
RIGID_SAMPLES = 64
#: a part's motion is given to the pixels this near (px) a confident target that agrees with it (`_agrees`)
RIGID_REACH_PX = 4.0
#: a target agrees with a motion when it is the motion times s, RIGID_SHORTEST <= s <= RIGID_LONGEST, off it
#: sideways by at most RIGID_TOLERANCE of the motion's length (the outline's flow is short, not askew)
RIGID_SHORTEST, RIGID_LONGEST = 0.4, 1.3


def _rigid_parts(points: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> list[tuple[Sim3, np.ndarray]]:
    """Sequential RANSAC: the rigid motions (Sim3 with scale 1, taking a point to where it moves) that explain
    the targets (N, 3) of points (N, 3), biggest first, each with its inliers (bool, N)."""
    out = []
    left = np.arange(len(points))
    for _ in range(RIGID_PARTS):
        if len(left) < RIGID_MIN_TARGETS:
            break
        P, Q = points[left], points[left] + targets[left]
        tol = RIGID_TOLERANCE * float(np.median(np.linalg.norm(targets[left], axis=1))) + 1e-9
        best = None
        for _ in range(RIGID_SAMPLES):
            pick = rng.choice(len(left), 3, replace=False)
            try:
                motion = umeyama_sim3(P[pick], Q[pick], with_scale=False)
            except ValueError:
                continue
            inliers = np.linalg.norm(motion.apply(P) - Q, axis=1) < tol
            if best is None or inliers.sum() > best.sum():
                best = inliers
        if best is None or best.sum() < RIGID_MIN_TARGETS:
            break
        for _ in range(2):   # refit on the inliers, which may then take in a few more
            motion = umeyama_sim3(P[best], Q[best], with_scale=False)
            best = np.linalg.norm(motion.apply(P) - Q, axis=1) < tol
            if best.sum() < RIGID_MIN_TARGETS:
                break
        if best.sum() < RIGID_MIN_TARGETS:
            break
        mask = np.zeros(len(points), bool)
        mask[left[best]] = True
        out.append((motion, mask))
        left = left[~best]
    return out


def _agrees(motion: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N,) bool: the targets (N, 3) are the motions (N, 3), shortened or lengthened a little (see RIGID_SHORTEST)."""
    length2 = np.maximum((motion ** 2).sum(1), 1e-18)
    s = (targets * motion).sum(1) / length2
    aside = np.linalg.norm(targets - s[:, None] * motion, axis=1)
    return (s >= RIGID_SHORTEST) & (s <= RIGID_LONGEST) & (aside <= RIGID_TOLERANCE * np.sqrt(length2))


def rigid_scene_flow(depth: torch.Tensor, K: torch.Tensor, world_from_camera: torch.Tensor, moving: torch.Tensor,
                     inside_px: torch.Tensor, flow: torch.Tensor, flow_valid: torch.Tensor, reverse_flow: torch.Tensor,
                     step: int, fb_px: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The scene flow of every motion-masked pixel to frame + step (step = +1 or -1) from the rigid motion of
    its part, (F, H, W, 3) world units, and where there is one (F, H, W) bool.

    Each frame's mask components are split into rigid parts (sequential RANSAC, `_rigid_parts`) on the lifted
    targets of their inner pixels (at least RIGID_INSIDE_PX inside the mask, confident flow): two objects that
    touch in the image make one component but two motions. A part's motion, applied to a pixel's own prior
    point, is that pixel's target where the nearest confident target that agrees with the part (`_agrees`) lies
    within RIGID_REACH_PX and at about the pixel's depth (MAX_DEPTH_STEP), the nearest part's where two reach;
    a pixel whose own confident target agrees with no part gets none (the lifted one stays). On the mask's outline the
    optical flow mixes a mover's motion with the background's (the lifted targets there are short: 0.76 of the
    motion within 1.5 px of the edge on the quick test shot), which the inner pixels' motion does not.
    depth (F, H, W), K (F, 3, 3), world_from_camera (F, 4, 4), moving and inside_px (F, H, W) as ShotData's;
    flow (F, H, W, 2), flow_valid (F, H, W) the flow to frame + step and reverse_flow the flow back."""
    frames, h, w = depth.shape
    device = depth.device
    target = torch.zeros(frames, h, w, 3, device=device)
    ok = torch.zeros(frames, h, w, dtype=torch.bool, device=device)
    rng = np.random.default_rng(seed)
    for t in range(frames):
        if not 0 <= t + step < frames or not bool(moving[t].any()):
            continue
        ys, xs = torch.nonzero(moving[t] & (depth[t] > 0), as_tuple=True)
        if len(ys) < RIGID_MIN_TARGETS:
            continue
        frame = torch.full_like(ys, t)
        xy = torch.stack([xs, ys], 1).float() + 0.5
        lifted, trusted = lifted_scene_flow(depth, K, world_from_camera, frame, xy, depth[t, ys, xs], flow[t, ys, xs],
                                            flow_valid[t, ys, xs], step)
        confidence = flow_confidence(reverse_flow, frame, xy, flow[t, ys, xs], step, fb_px)
        o, v = pixel_rays(K[frame], world_from_camera[frame], xy)
        points = (o + depth[t, ys, xs, None] * v).double().cpu().numpy()
        lifted = lifted.double().cpu().numpy()
        source = (trusted & (confidence >= RIGID_MIN_CONFIDENCE) & (inside_px[t, ys, xs] >= RIGID_INSIDE_PX)).cpu().numpy()
        yn, xn = ys.cpu().numpy(), xs.cpu().numpy()
        count, labels = cv2.connectedComponents(moving[t].cpu().numpy().astype(np.uint8), connectivity=8)
        label = labels[yn, xn]
        confident = (trusted & (confidence >= RIGID_MIN_CONFIDENCE)).cpu().numpy()
        depth_t = depth[t].cpu().numpy()
        moved = np.full(points.shape, np.nan)
        for c in range(1, count):
            here = label == c
            fit = np.flatnonzero(here & source)
            parts = _rigid_parts(points[fit], lifted[fit], rng) if len(fit) >= RIGID_MIN_TARGETS else []
            if not parts:
                continue
            idx = np.flatnonzero(here)
            checked = np.flatnonzero(here & confident)
            # a part's motion reaches the pixels near the confident targets it agrees with (a target on the
            # outline agrees when it is the part's motion shortened, as the flow's smear makes it); a pixel whose
            # own confident target agrees with no part keeps the lifted target alone
            distances = []
            agrees_any = np.zeros(len(checked), bool)
            for motion, _ in parts:
                agree = _agrees(motion.apply(points[checked]) - points[checked], lifted[checked])
                agrees_any |= agree
                if not agree.any():
                    distances.append(np.full(len(idx), np.inf))
                    continue
                seeds = np.ones((h, w), np.uint8)
                seeds[yn[checked[agree]], xn[checked[agree]]] = 0
                distance, nearest_seed = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 3,
                                                                         labelType=cv2.DIST_LABEL_PIXEL)
                # ... and only to pixels at about the depth of that target: an object behind another one in the
                # image, whose flow the front one hides, is no part of it
                zero_y, zero_x = np.nonzero(seeds == 0)
                lookup = np.zeros(len(zero_y) + 1, np.int64)
                lookup[nearest_seed[zero_y, zero_x]] = zero_y * w + zero_x
                seed_depth = depth_t.reshape(-1)[lookup[nearest_seed[yn[idx], xn[idx]]]]
                own_depth = depth_t[yn[idx], xn[idx]]
                d = distance[yn[idx], xn[idx]]
                d[np.abs(own_depth - seed_depth) > MAX_DEPTH_STEP * seed_depth] = np.inf
                distances.append(d)
            distances = np.stack(distances)
            nearest = np.argmin(distances, 0)
            reached = distances.min(0) <= RIGID_REACH_PX
            own = np.ones(len(points), bool)
            own[checked] = agrees_any
            for k, (motion, _) in enumerate(parts):
                sel = idx[(nearest == k) & reached]
                sel = sel[own[sel]]
                if len(sel):
                    moved[sel] = motion.apply(points[sel]) - points[sel]
        has = np.isfinite(moved[:, 0])
        target[t, ys[has], xs[has]] = torch.as_tensor(moved[has], dtype=torch.float32, device=device)
        ok[t, ys[has], xs[has]] = True
    return target, ok
