"""Rendering the trained field at any camera and any time (`shotfield render --source field`), and the
per-ray quantities the point caches need.

    render_views(job_dir, cameras, times, device) -> iterator of (rgb (H, W, 3) uint8, depth (H, W) float32)
    render_rays(model, origins, dirs, time, prior=None) -> RayRender      (blended static + dynamic)
    render_static(model, origins, dirs, prior=None) -> RayRender         (the static field alone)

Times between frames (NSFF sec. 3.4): the scene at time i + d is the dynamic field at frame i moved forward
by d of its forward scene flow, blended (1 - d : d) with the field at frame i + 1 moved back by (1 - d) of its
backward flow. NSFF splats the moved samples forward into the new view; here the moves are applied
backward (the density at x at time i + d is that of frame i at x - d f_fw(x)), which needs no scatter or
z-buffer and agrees where the flow is smooth over the length of one frame's motion.

Without a depth prior (new cameras) a ray takes COARSE samples evenly in disparity and IMPORTANCE more
drawn from the coarse weights; the training cameras can pass the depth prior instead (as in training).

The static part stays separable for the clean-plate stage: `render_static` composites the static field's
own density and colour, ignoring the blend weight, so rays through a removed moving object see what the
static field learned behind it (where any view saw it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..errors import ShotfieldError
from .losses import Sampling, sample_depths
from .model import DynamicSample, SceneField, load_checkpoint
from .space import image_grid, pixel_rays
from .volume import alpha_weights, composite, importance, uniform_disparity

COARSE, IMPORTANCE = 64, 32
CHUNK = 4096   # rays per forward pass: bounded memory on any device


@dataclass
class RayRender:
    rgb: torch.Tensor            # (R, 3) 0..1
    depth: torch.Tensor          # (R,) planar
    dynamic: torch.Tensor        # (R,) composited dynamic share, 0..1
    flow_fw: torch.Tensor        # (R, 3) the dynamic field's scene flow t -> t+1 where the ray meets dynamic density, world units per frame


def load_field(job_dir: Path, device: str) -> tuple[SceneField, dict]:
    folder = Path(job_dir) / "field"
    if not (folder / "field.json").is_file() or not (folder / "field.pt").is_file():
        raise ShotfieldError(f"{folder}: no trained field; run the 'field' stage first")
    try:
        return load_checkpoint(folder, device)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ShotfieldError(f"{folder}: unreadable field checkpoint ({exc}); run the 'field' stage again") from None


def dynamic_at(model: SceneField, x: torch.Tensor, time: float) -> DynamicSample:
    """The dynamic field at world points x (N, 3) at a possibly fractional frame time."""
    frames = model.cfg.frames
    time = float(np.clip(time, 0, frames - 1))
    i = int(np.floor(time))
    d = time - i
    if d < 1e-4 or i >= frames - 1:
        return model.query_dynamic(x, torch.full((len(x),), float(round(time)), device=x.device))
    ti, tj = torch.full((len(x),), float(i), device=x.device), torch.full((len(x),), float(i + 1), device=x.device)
    a = model.query_dynamic(x - d * model.query_dynamic(x, ti).flow_fw, ti)
    b = model.query_dynamic(x - (1 - d) * model.query_dynamic(x, tj).flow_bw, tj)
    sa, sb = (1 - d) * a.density, d * b.density
    sigma = sa + sb
    colour = (sa[:, None] * a.colour + sb[:, None] * b.colour) / (sigma[:, None] + 1e-6)
    flow = (sa[:, None] * a.flow_fw - sb[:, None] * b.flow_bw) / (sigma[:, None] + 1e-6)
    return DynamicSample(sigma, colour, flow, -flow, a.weight_fw, b.weight_bw)


def _blended(model: SceneField, x: torch.Tensor, time: float):
    sigma_s, colour_s, blend = model.query_static(x)
    return sigma_s, colour_s, blend, dynamic_at(model, x, time)


def _depths(model: SceneField, origins, dirs, prior, density_of) -> torch.Tensor:
    """Sample depths for rays: around the prior when given, else coarse + importance on `density_of`."""
    box = model.box
    if prior is not None:
        return sample_depths(prior, box.near, box.far, Sampling(band=16, uniform=8), jitter=False)
    z = uniform_disparity(len(origins), COARSE, box.near, box.far, origins.device, jitter=False)
    x = origins[:, None] + z[..., None] * dirs[:, None]
    weights = alpha_weights(z, density_of(x.reshape(-1, 3)).view(z.shape))
    return torch.sort(torch.cat([z, importance(z, weights, IMPORTANCE)], 1), 1).values


@torch.no_grad()
def render_rays(model: SceneField, origins: torch.Tensor, dirs: torch.Tensor, time: float,
                prior: torch.Tensor | None = None) -> RayRender:
    """origins, dirs (R, 3) (dirs with camera z = 1); prior (R,) planar depth or None; blended field at `time`."""
    out = []
    for k in range(0, len(origins), CHUNK):
        o, d = origins[k:k + CHUNK], dirs[k:k + CHUNK]
        p = prior[k:k + CHUNK] if prior is not None else None

        def density_of(x):
            sigma_s, _, blend, dyn = _blended(model, x, time)
            return (1 - blend) * sigma_s + blend * dyn.density

        z = _depths(model, o, d, p, density_of)
        rays, S = z.shape
        x = (o[:, None] + z[..., None] * d[:, None]).reshape(-1, 3)
        sigma_s, colour_s, blend, dyn = _blended(model, x, time)
        comp = composite(z, sigma_s.view(rays, S), colour_s.view(rays, S, 3), blend.view(rays, S),
                         dyn.density.view(rays, S), dyn.colour.view(rays, S, 3))
        # the surface's flow if it moves: the dynamic field's flow averaged over where the ray meets dynamic
        # density (weights times the dynamic share), not over all of its weight. Not scaled down by the share
        # (a point half-way through the blend is a moving point whose motion is the dynamic field's), and not
        # mixed with what the dynamic decoder says at static samples, where it has no density and its flow no
        # meaning: on a mover's outline a ray ends partly on the background, and the plain weighted sum took
        # that junk in (default test shot: scene-flow EPE 10.75 -> 10.20 % from the same trained field)
        dynamic_weights = comp.weights * comp.dynamic_share
        flow = (dynamic_weights[..., None] * dyn.flow_fw.view(rays, S, 3)).sum(1) \
            / dynamic_weights.sum(1, keepdim=True).clamp_min(1e-6)
        out.append(RayRender(comp.rgb, comp.depth, (comp.weights * comp.dynamic_share).sum(1), flow))
    return RayRender(*(torch.cat([getattr(r, f) for r in out]) for f in ("rgb", "depth", "dynamic", "flow_fw")))


@torch.no_grad()
def render_static(model: SceneField, origins: torch.Tensor, dirs: torch.Tensor,
                  prior: torch.Tensor | None = None) -> RayRender:
    """The static field alone (density and colour of the static model, blend ignored): what stays when
    everything that moves is taken away. `dynamic` and `flow_fw` come back as zeros."""
    out = []
    for k in range(0, len(origins), CHUNK):
        o, d = origins[k:k + CHUNK], dirs[k:k + CHUNK]
        p = prior[k:k + CHUNK] if prior is not None else None
        z = _depths(model, o, d, p, lambda x: model.query_static(x)[0])
        rays, S = z.shape
        x = (o[:, None] + z[..., None] * d[:, None]).reshape(-1, 3)
        sigma_s, colour_s, _ = model.query_static(x)
        weights = alpha_weights(z, sigma_s.view(rays, S))
        out.append(((weights[..., None] * colour_s.view(rays, S, 3)).sum(1), (weights * z).sum(1)))
    rgb, depth = torch.cat([r[0] for r in out]), torch.cat([r[1] for r in out])
    return RayRender(rgb, depth, torch.zeros_like(depth), torch.zeros_like(rgb))


def camera_rays(K: np.ndarray, world_from_camera: np.ndarray, width: int, height: int, device: str):
    """Rays through every pixel centre of one camera, row-major: origins, dirs (H*W, 3)."""
    xy = image_grid(width, height, device)
    n = len(xy)
    Kt = torch.as_tensor(K, dtype=torch.float32, device=device).expand(n, 3, 3)
    Tt = torch.as_tensor(world_from_camera, dtype=torch.float32, device=device).expand(n, 4, 4)
    return pixel_rays(Kt, Tt, xy)


def to_image(render: RayRender, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = (render.rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).view(height, width, 3).cpu().numpy()
    return rgb, render.depth.view(height, width).float().cpu().numpy()


def render_views(job_dir: Path, cameras, times: np.ndarray, device: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each camera of `cameras` (exporters.cameras_json.Cameras) at its time: (rgb uint8, planar depth float32)."""
    model, _ = load_field(job_dir, device)
    for frame, time in zip(cameras.frames, times):
        origins, dirs = camera_rays(frame.K, frame.world_from_camera, cameras.width, cameras.height, device)
        yield to_image(render_rays(model, origins, dirs, float(time)), cameras.width, cameras.height)
