"""NSFF's losses on one batch of rays (Li et al. 2021, sec. 3-4), with the weights the schedule gives them.

For rays of frame i, with samples x_k along each ray:
- photometric: the blended render against the frame;
- warped photometric: for j = i +- 1, the dynamic field of time j queried at x_k + f_{i->j}(x_k), blended
  with the static field at x_k, composited along the same ray, compared with frame i, weighted by the
  rendered disocclusion weight W_{i->j}, plus beta |1 - W| so that weights do not simply go to zero;
- cycle consistency: f_{i->j}(x) + f_{j->i}(x + f_{i->j}(x)) = 0, weighted by the disocclusion weights;
- induced flow (prior, decayed): the expected surface point moved by its composited scene flow and projected
  into camera j lands where the optical flow says (where the flow passed its forward-backward check);
- depth (prior, decayed): rendered planar depth against the depth stage's, relative L1;
- free space: compositing weight in front of the prior's surface (minus a margin) is penalised;
- scene flow (prior, decayed): on the motion-masked rays, the dynamic field's forward and backward scene flow
  at the surface samples against the 3D motion lifted from the optical flow and the depth prior
  (scene_flow_prior.py), where the flow passed its forward-backward check and both depths are known, each
  pixel weighted by the flow's confidence (its forward-backward residual, its distance from the mask's edge);
  where the pixel's rigid part has a motion (scene_flow_prior.rigid_scene_flow) that motion is the target;
- motion masks (prior, decayed): the composited dynamic share against the solve's motion masks;
- regularisers: small scene flow (sparsity), constant velocity (f_fw + f_bw = 0, temporal smoothness),
  a small dynamic share (static regions stay static: NSFF's reported failure mode).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .data import RayBatch, ShotData
from .model import SceneField
from .scene_flow_prior import flow_confidence, lifted_scene_flow
from .space import pixel_rays, project
from .volume import composite, stratified_band, uniform_disparity


@dataclass
class LossWeights:
    photometric: float = 1.0
    warped: float = 0.5
    disocclusion: float = 0.02     # beta: |1 - W|
    cycle: float = 0.5
    flow: float = 0.05             # per pixel of error, image-size normalised below
    scene_flow: float = 0.5        # per flow_scale of L1 error of the lifted scene flow (0.1 and 1 measured worse)
    scene_flow_fb_px: float = 0.25  # the lifted flow's weight falls as exp(-(r / this)^2), r the flow's forward-backward residual (px)
    scene_flow_edge_px: float = 3.0  # ... and as min(1, d / this), d how far inside its motion mask the pixel is (px); 0 = off
    depth: float = 0.1
    free_space: float = 0.05
    mask: float = 0.1
    flow_sparsity: float = 0.0005
    flow_smoothness: float = 0.01
    dynamic_share: float = 0.003
    prior_decay: float = 0.1       # the priors' weights fall to this fraction by the end (log-linearly)


@dataclass
class Sampling:
    band: int = 8                  # samples in the band around the prior's depth
    uniform: int = 4               # samples spread in disparity over [near, far]
    margin: float = 0.08           # half-width of the band, relative to depth
    free_margin: float = 0.15      # in front of (1 - this) x prior depth the ray should be empty


def sample_depths(prior: torch.Tensor, near: float, far: float, s: Sampling, jitter: bool) -> torch.Tensor:
    """(R,) prior planar depth (0 = unknown) -> (R, band + uniform) sorted planar depths."""
    rays = prior.shape[0]
    uniform = uniform_disparity(rays, s.uniform, near, far, prior.device, jitter)
    fallback = uniform_disparity(rays, s.band, near, far, prior.device, jitter)
    band = stratified_band(prior.clamp_min(near), s.band, s.margin, jitter)
    band = torch.where((prior > 0)[:, None], band, fallback)
    return torch.sort(torch.cat([band, uniform], 1), 1).values


def batch_losses(model: SceneField, data: ShotData, batch: RayBatch, w: LossWeights, s: Sampling,
                 progress: float, warp_rays: int | None = None) -> dict[str, torch.Tensor]:
    """The weighted losses of one batch (their sum is what is minimised)."""
    rays = batch.frame.shape[0]
    origins, dirs = pixel_rays(data.K[batch.frame], data.world_from_camera[batch.frame], batch.xy)
    z = sample_depths(batch.depth, model.box.near, model.box.far, s, jitter=True)
    S = z.shape[1]
    x = (origins[:, None] + z[..., None] * dirs[:, None]).reshape(-1, 3)
    t = batch.frame.float()[:, None].expand(rays, S).reshape(-1)
    sigma_s, colour_s, blend = model.query_static(x)
    dyn = model.query_dynamic(x, t)
    shape = (rays, S)
    sigma_s, blend = sigma_s.view(shape), blend.view(shape)
    colour_s = colour_s.view(rays, S, 3)
    comp = composite(z, sigma_s, colour_s, blend, dyn.density.view(shape), dyn.colour.view(rays, S, 3))
    decay = w.prior_decay ** progress
    losses = {"photometric": w.photometric * F.mse_loss(comp.rgb, batch.rgb)}

    # The warps only matter where something may move: the first `warp_rays` rays of the batch (the sampler
    # puts the motion-masked rays first, then uniform ones, so static regions still get some).
    n = rays if warp_rays is None else min(rays, max(1, warp_rays))
    zw, xw, tw = z[:n], x.view(rays, S, 3)[:n].reshape(-1, 3), batch.frame[:n]
    sh = (n, S)
    ss, cs, bs = sigma_s[:n], colour_s[:n], blend[:n]
    weights_all = comp.weights[:n]
    weights = weights_all.detach()
    share = comp.dynamic_share[:n]
    flows = {"fw": dyn.flow_fw.view(rays, S, 3)[:n].reshape(-1, 3), "bw": dyn.flow_bw.view(rays, S, 3)[:n].reshape(-1, 3)}
    occls = {"fw": dyn.weight_fw.view(rays, S)[:n], "bw": dyn.weight_bw.view(rays, S)[:n]}
    target, xy = batch.rgb[:n], batch.xy[:n]
    wh = torch.tensor(data.size, device=z.device, dtype=z.dtype)
    warped = cycle = flow = torch.zeros((), device=z.device)
    for step, key, back_attr, observed, valid in ((1, "fw", "flow_bw", batch.flow_fw[:n], batch.valid_fw[:n]),
                                                  (-1, "bw", "flow_fw", batch.flow_bw[:n], batch.valid_bw[:n])):
        other = tw + step
        inside = (other >= 0) & (other < data.frames)
        if not bool(inside.any()):
            continue
        other_c = other.clamp(0, data.frames - 1)
        flow_k = flows[key]
        dyn_j = model.query_dynamic(xw + flow_k, other_c.float()[:, None].expand(sh).reshape(-1))
        comp_j = composite(zw, ss, cs, bs, dyn_j.density.view(sh), dyn_j.colour.view(n, S, 3))
        occl = occls[key]
        W = (weights * occl).sum(1)
        m = inside.float()
        per_ray = ((comp_j.rgb - target) ** 2).sum(1)
        warped = warped + w.warped * (m * W * per_ray).sum() / m.sum().clamp_min(1) \
            + w.disocclusion * (m * (1 - W).abs()).sum() / m.sum().clamp_min(1)
        back = getattr(dyn_j, back_attr)
        cyc = ((flow_k + back).abs().sum(-1).view(sh) * occl.detach() * (weights + 0.05)).sum(1)
        cycle = cycle + w.cycle * (m * cyc).sum() / m.sum().clamp_min(1) / model.cfg.flow_scale
        # the expected surface point, moved by its composited scene flow, seen from camera j; where the motion
        # masks say the pixel moves, the dynamic flow counts in full (the blend may not have learned it yet)
        moves = torch.where(batch.moving[:n, None], torch.ones_like(share), share)
        moved_surface = (weights_all[..., None] * (xw.view(n, S, 3) + moves[..., None] * flow_k.view(n, S, 3))).sum(1)
        pixels, depth_j = project(moved_surface, data.K[other_c], data.world_from_camera[other_c])
        vf = (valid & inside & (depth_j > 0)).float()
        err = ((pixels - (xy + observed)) / wh).abs().sum(-1) * wh.max()
        flow = flow + w.flow * decay * (vf * err.clamp(max=20)).sum() / vf.sum().clamp_min(1)
    losses.update(warped=warped, cycle=cycle, flow=flow)
    losses["scene_flow"] = scene_flow_prior(data, batch, dyn.flow_fw.view(rays, S, 3), dyn.flow_bw.view(rays, S, 3),
                                            comp.weights.detach(), model.cfg.flow_scale, w.scene_flow * decay,
                                            w.scene_flow_fb_px, w.scene_flow_edge_px)

    known = (batch.depth > 0).float()
    rel = (comp.depth - batch.depth).abs() / batch.depth.clamp_min(1e-3)
    losses["depth"] = w.depth * decay * (known * rel.clamp(max=1)).sum() / known.sum().clamp_min(1)
    in_front = (z < (batch.depth * (1 - s.free_margin))[:, None]).float() * known[:, None]
    losses["free_space"] = w.free_space * (comp.weights * in_front).sum(1).mean()
    ray_share = (comp.weights * comp.dynamic_share).sum(1).clamp(1e-4, 1 - 1e-4)
    losses["mask"] = w.mask * decay * F.binary_cross_entropy(ray_share, batch.moving.float())
    scale = model.cfg.flow_scale
    # on the surface samples only (weights), so that empty space does not pull every flow to zero
    surface = comp.weights.detach().view(-1, 1)
    losses["flow_sparsity"] = w.flow_sparsity * (surface * (dyn.flow_fw.abs() + dyn.flow_bw.abs())).sum() / rays / scale
    losses["flow_smoothness"] = w.flow_smoothness * (surface * (dyn.flow_fw + dyn.flow_bw).abs()).sum() / rays / scale
    losses["dynamic_share"] = w.dynamic_share * ray_share.mean()
    return losses


def scene_flow_prior(data: ShotData, batch: RayBatch, flow_fw: torch.Tensor, flow_bw: torch.Tensor,
                     weights: torch.Tensor, scale: float, weight: float, fb_px: float = 0.0,
                     edge_px: float = 0.0) -> torch.Tensor:
    """The dynamic field's scene flow (R, S, 3) at each sample, weighted by its (detached) compositing weight,
    against the flow lifted from optical flow and depth (scene_flow_prior.py), L1 in units of flow_scale.

    Only on the motion-masked rays. Inside the masks the lifted flow is the object's motion and this is the
    one term that tells each frame's dynamic planes its length directly. Outside them the scene is static
    and its lifted flow would only carry the depth prior's error times the camera's parallax; the zero flow
    there is already asked for by the sparsity regulariser, gently, which leaves room for a mover the masks
    missed (a strong zero target would fight its warps). The weights are detached so that the prior moves
    flow, not geometry: where the surface is comes from the photometric and depth terms.

    Each ray counts with the confidence of its optical flow (scene_flow_prior.flow_confidence: the forward-
    backward residual, exp(-(r / fb_px)^2), and the distance from the motion mask's edge, min(1, d / edge_px);
    0 turns either off), and the loss is the confidence-weighted mean, so the prior's overall strength stays.
    On the default test shot's moving pixels this cut the lifted targets' own error (weighted mean) from 9.5 %
    of the motion to 5.8 %, keeping 79 % of their weight (the residual alone: 6.8 %, 83 %).

    Where the batch carries rigid-part targets (ShotData.rigid_*, set by train.rigid_targets) they replace the
    lifted ones on the pixels that have one, weighted by the edge ramp alone (not the pixel's own flow's
    residual, which they do not depend on)."""
    total = torch.zeros((), device=weights.device)
    if weight <= 0 or not bool(batch.moving.any()):
        return total
    for step, field_flow, observed, valid, reverse, rigid, rigid_ok in (
            (1, flow_fw, batch.flow_fw, batch.valid_fw, data.flow_bw, batch.rigid_fw, batch.rigid_ok_fw),
            (-1, flow_bw, batch.flow_bw, batch.valid_bw, data.flow_fw, batch.rigid_bw, batch.rigid_ok_bw)):
        target, ok = lifted_scene_flow(data.depth, data.K, data.world_from_camera, batch.frame, batch.xy,
                                       batch.depth, observed, valid, step)
        use = (ok & batch.moving).float() * flow_confidence(reverse, batch.frame, batch.xy, observed, step, fb_px,
                                                             batch.inside_px, edge_px)
        if rigid is not None:
            # where the pixel's rigid part has a motion, that is the target; it does not depend on the pixel's own
            # flow, so the residual does not weigh it, but the edge ramp still does: at full weight on the outline
            # the rigid targets cost the movers 1.4 dB in new views (docs/field.md, Session 11)
            ramp = (batch.inside_px / edge_px).clamp(max=1) if edge_px > 0 and batch.inside_px is not None \
                else torch.ones_like(use)
            target = torch.where(rigid_ok[:, None], rigid, target)
            use = torch.where(rigid_ok & batch.moving, ramp, use)
        err = (field_flow - target[:, None]).abs().sum(-1) / scale            # (R, S)
        total = total + weight * (use * (weights * err).sum(1)).sum() / use.sum().clamp_min(1)
    return total
