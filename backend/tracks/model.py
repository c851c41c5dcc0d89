"""The learned part of OmniMotion: per-frame invertible maps (Real-NVP) and the canonical density + colour field.

A point of frame i's local space goes to the canonical volume as  u = R(B_i(x), z_i):  B_i is the fixed map
of geometry.py (pixel and ray sample -> camera -> world -> the normalised canonical box), R a stack of affine
coupling layers conditioned on frame i's latent code z_i. R is invertible in closed form, so frame i -> frame j
is  x_j = B_j^-1(R^-1(R(B_i(x_i), z_i), z_j)).  The last layer of every coupling network starts at zero, so
every map starts as the identity: with solved cameras the tracks start as the cameras' reprojection, without
them as "nothing moves".

A pixel is tracked (OmniMotion eq. 3) by sampling K points on its ray, mapping them all to the target frame
and alpha-compositing them with the canonical density at their canonical positions; the composite is
projected with the target camera. The same weights composite the canonical colour (photometric loss) and the
depth along the source ray (occlusion, and the depth loss that initialises the local spaces).

Checkpoint (tracks/model.pt, torch.save of a dict): {"format": "shotfield-omnimotion", "version",
"config": ModelConfig fields, "geometry": ShotGeometry.to_dict(), "state": state_dict, "info": {...}}.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .geometry import ShotGeometry

CHECKPOINT_FORMAT = "shotfield-omnimotion"
CHECKPOINT_VERSION = 1

# Which canonical coordinates condition each coupling layer; the others are transformed. Every coordinate is
# transformed by several layers and conditions several others.
SPLITS = ((0,), (1,), (2,), (0, 1), (1, 2), (0, 2))
CANON_SPAN = 1.5


@dataclass(frozen=True)
class ModelConfig:
    frames: int
    layers: int = 6
    hidden: int = 48
    latent: int = 16
    frequencies: int = 4        # positional encoding of the conditioning coordinates
    plane_resolution: int = 64
    plane_channels: int = 8
    field_hidden: int = 32
    samples: int = 16           # points per ray
    guide_band: float = 1.35    # guided rays span guide depth / band .. guide depth * band
    # per-frame planes of the 2D-conditioned coupling layers (0: none). 32 (cells of 15 px on a 320-pixel-wide
    # shot) rather than 16: default shot AJ 0.607 -> 0.610, OA 0.832 -> 0.847, OA moving 0.647 -> 0.677
    motion_grid: int = 32


def positional_encoding(x: torch.Tensor, frequencies: int) -> torch.Tensor:
    bands = 2.0 ** torch.arange(frequencies, device=x.device, dtype=x.dtype) * math.pi
    angles = x[..., None] * bands                                   # (..., d, f)
    return torch.cat([x, angles.sin().flatten(-2), angles.cos().flatten(-2)], dim=-1)


class AffineCoupling(nn.Module):
    """y_b = x_b * exp(s(x_a, z)) + t(x_a, z); y_a = x_a. Scales are bounded (tanh) to keep the map tame.

    A layer conditioned on two coordinates also adds a per-frame plane over them (bilinear, `motion_grid`
    cells a side) straight to (s, t): an explicit per-frame motion field in coupling form, still invertible
    because it reads only x_a. A small moving object needs a sharp, local displacement, which a grid learns
    in a few hundred steps where an MLP of positional encodings needs thousands (OmniMotion trains 100k+).
    """

    def __init__(self, condition: tuple[int, ...], config: ModelConfig):
        super().__init__()
        self.a = list(condition)
        self.b = [d for d in range(3) if d not in condition]
        self.frequencies = config.frequencies
        n_in = len(self.a) * (1 + 2 * config.frequencies) + config.latent
        self.net = nn.Sequential(nn.Linear(n_in, config.hidden), nn.SiLU(),
                                 nn.Linear(config.hidden, config.hidden), nn.SiLU(),
                                 nn.Linear(config.hidden, 2 * len(self.b)))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        r = config.motion_grid if len(self.a) == 2 else 0
        self.resolution = r
        # (F * r * r, 2|b|): per frame, per cell, raw (s, t); zero = no motion.
        self.grid = nn.Parameter(torch.zeros(config.frames * r * r, 2 * len(self.b))) if r else None
        self.grid_magnitude = 0.0

    def _grid(self, xa: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        g = ((xa.clamp(-1.0, 1.0) + 1.0) * 0.5 * (r - 1))                # (..., 2) in cells
        g0 = g.floor().clamp(0, r - 2)
        w = g - g0
        i0 = g0.long()
        base = frame.reshape(frame.shape + (1,) * (xa.dim() - 2)) * (r * r)
        out = 0.0
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            weight = (w[..., 0] if dx else 1 - w[..., 0]) * (w[..., 1] if dy else 1 - w[..., 1])
            index = base + (i0[..., 1] + dy) * r + (i0[..., 0] + dx)
            out = out + weight[..., None] * self.grid[index]
        return out

    def _st(self, xa: torch.Tensor, z: torch.Tensor, frame: torch.Tensor):
        h = self.net(torch.cat([positional_encoding(xa, self.frequencies), z], dim=-1))
        if self.grid is not None:
            g = self._grid(xa, frame)
            if self.training:   # the motion planes' sparsity penalty (train.py) reads this
                self.grid_magnitude = self.grid_magnitude + g.abs().mean()
            h = h + g
        s, t = h.chunk(2, dim=-1)
        return 0.5 * torch.tanh(s), t

    def forward(self, x: torch.Tensor, z: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        s, t = self._st(x[..., self.a], z, frame)
        return self._merge(x, x[..., self.b] * torch.exp(s) + t)

    def inverse(self, y: torch.Tensor, z: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        s, t = self._st(y[..., self.a], z, frame)
        return self._merge(y, (y[..., self.b] - t) * torch.exp(-s))

    def _merge(self, kept: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
        columns = list(kept.unbind(-1))
        for k, d in enumerate(self.b):
            columns[d] = changed[..., k]
        return torch.stack(columns, dim=-1)


class CanonicalField(nn.Module):
    """Density and colour in the canonical box [-1, 1]^3 from three feature planes (xy, xz, yz) and a tiny
    decoder: far cheaper than OmniMotion's 8-layer MLP, and enough for the density that orders surfaces."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        r, c = config.plane_resolution, config.plane_channels
        self.planes = nn.Parameter(0.1 * torch.randn(3, c, r, r))
        self.decoder = nn.Sequential(nn.Linear(3 * c, config.field_hidden), nn.ReLU(), nn.Linear(config.field_hidden, 4))
        with torch.no_grad():
            self.decoder[-1].bias[0] = -1.0   # a thin, even density to start with: weights spread along rays

    def forward(self, u: torch.Tensor):
        shape = u.shape[:-1]
        u = (u.reshape(1, -1, 1, 3) / 1.1).clamp(-1, 1)
        coords = torch.stack([u[..., [0, 1]], u[..., [0, 2]], u[..., [1, 2]]])[:, 0]   # (3, N, 1, 2)
        feats = nn.functional.grid_sample(self.planes, coords, align_corners=True, padding_mode="border")
        feats = feats[..., 0].permute(2, 0, 1).reshape(-1, 3 * self.planes.shape[1])   # (N, 3c)
        out = self.decoder(feats)
        sigma = nn.functional.softplus(out[:, 0])
        rgb = torch.sigmoid(out[:, 1:])
        return sigma.reshape(shape), rgb.reshape(*shape, 3)


class OmniMotion(nn.Module):
    def __init__(self, config: ModelConfig, geometry: ShotGeometry):
        super().__init__()
        self.config = config
        self.geometry = geometry
        self.couplings = nn.ModuleList(AffineCoupling(SPLITS[k % len(SPLITS)], config) for k in range(config.layers))
        # Latent codes start as Fourier features of time, so neighbouring frames start alike.
        t = torch.linspace(0, 1, config.frames)[:, None]
        freqs = torch.arange(1, config.latent // 2 + 1)[None].float() * math.pi
        self.latents = nn.Parameter(torch.cat([torch.sin(t * freqs), torch.cos(t * freqs)], dim=1)[:, :config.latent])
        self.field = CanonicalField(config)
        g = geometry
        self.register_buffer("K", torch.as_tensor(g.K, dtype=torch.float32))
        self.register_buffer("pose", torch.as_tensor(g.world_from_camera, dtype=torch.float32))
        self.scale = float(g.scale)
        self.inv_near, self.inv_far = 1.0 / g.near, 1.0 / g.far
        # The canonical box is the middle frame's view in inverse depth (NDC-like): x, y its normalised image
        # coordinates (the view spans +-1/CANON_SPAN), z its inverse depth (+-1 from far to near). The grids
        # of the field and of the motion planes then have cells of a few pixels, wherever the scene lies.
        ref = g.frames // 2
        self.register_buffer("ref_pose", torch.as_tensor(g.world_from_camera[ref], dtype=torch.float32))
        k = g.K[ref]
        self.ref_k = (float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]))
        self.size = (float(g.width), float(g.height))
        # Depth-guided ray sampling: where a frame's depth is known (depth stage, or triangulated from the
        # flow and the solved cameras, holes filled), its rays are sampled in a band around it, so a few
        # samples resolve the surface finely; an all-zero guide means "unguided" (the whole near..far range).
        self.register_buffer("guide", torch.zeros(config.frames, g.height, g.width))
        # The job folder the model belongs to (not saved: set by the stage and by load_checkpoint from where the
        # checkpoint lies), whose gap-1 flow refines the tracks (query.refine_with_flow).
        self.job_dir = None

    def set_guide(self, depth) -> None:
        """(F, H, W) planar depth without holes (numpy or torch), or None for unguided rays."""
        if depth is None:
            self.guide.zero_()
        else:
            self.guide.copy_(torch.as_tensor(depth, dtype=torch.float32))

    @property
    def guided(self) -> bool:
        return bool(self.guide.abs().sum() > 0)

    # --- the fixed maps (geometry.py's, in torch) ---------------------------------------------------------
    def depth_of(self, s: torch.Tensor) -> torch.Tensor:
        """Ray parameter s in [0, 1] -> planar depth, linear in inverse depth from near to far."""
        return 1.0 / (self.inv_near + s * (self.inv_far - self.inv_near))

    def camera_points(self, frame: torch.Tensor, pixels: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """(B, K, 3) camera-space points of pixels (B, 2) at depths (B, K)."""
        K = self.K[frame]
        x = (pixels[:, 0:1] - K[:, 0, 2:3]) / K[:, 0, 0:1]
        y = (pixels[:, 1:2] - K[:, 1, 2:3]) / K[:, 1, 1:2]
        return torch.stack([x * depth, y * depth, depth], dim=-1)

    def to_canonical_base(self, frame: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
        pose = self.pose[frame]                                     # (B, 4, 4)
        world = torch.einsum("bij,bkj->bki", pose[:, :3, :3], cam) + pose[:, None, :3, 3]
        return self.world_to_canonical(world)

    def from_canonical_base(self, frame: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """(B, K, 3) canonical base points -> camera space of `frame` (B,)."""
        pose = self.pose[frame]
        world = self.canonical_to_world(base)
        return torch.einsum("bji,bkj->bki", pose[:, :3, :3], world - pose[:, None, :3, 3])

    def project(self, frame: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
        """(B, ..., 3) camera points -> (B, ..., 2) pixels."""
        K = self.K[frame]
        shape = (-1,) + (1,) * (cam.dim() - 2)
        z = cam[..., 2].clamp_min(1e-6)
        x = K[:, 0, 0].view(shape) * cam[..., 0] / z + K[:, 0, 2].view(shape)
        y = K[:, 1, 1].view(shape) * cam[..., 1] / z + K[:, 1, 2].view(shape)
        return torch.stack([x, y], dim=-1)

    def world_to_canonical(self, world: torch.Tensor) -> torch.Tensor:
        r = self.ref_pose
        p = (world - r[:3, 3]) @ r[:3, :3]                    # reference camera coordinates
        z = p[..., 2].clamp_min(0.05 / self.inv_near)           # (points behind it do not occur in a shot)
        fx, fy, cx, cy = self.ref_k
        w, h = self.size
        a = ((fx * p[..., 0] / z + cx) / w * 2 - 1) / CANON_SPAN
        b = ((fy * p[..., 1] / z + cy) / h * 2 - 1) / CANON_SPAN
        mid, half = (self.inv_near + self.inv_far) / 2, (self.inv_near - self.inv_far) / 2
        return torch.stack([a, b, (1.0 / z - mid) / half], dim=-1)

    def canonical_to_world(self, u: torch.Tensor) -> torch.Tensor:
        fx, fy, cx, cy = self.ref_k
        w, h = self.size
        mid, half = (self.inv_near + self.inv_far) / 2, (self.inv_near - self.inv_far) / 2
        z = 1.0 / (u[..., 2] * half + mid).clamp_min(1e-3 * self.inv_far)
        x = ((u[..., 0] * CANON_SPAN + 1) / 2 * w - cx) / fx * z
        y = ((u[..., 1] * CANON_SPAN + 1) / 2 * h - cy) / fy * z
        r = self.ref_pose
        return torch.stack([x, y, z], dim=-1) @ r[:3, :3].T + r[:3, 3]

    # --- the learned maps ----------------------------------------------------------------------------------
    def to_canonical(self, base: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        z = self.latents[frame][:, None].expand(*base.shape[:-1], -1)
        for layer in self.couplings:
            base = layer(base, z, frame)
        return base

    def from_canonical(self, u: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        z = self.latents[frame][:, None].expand(*u.shape[:-1], -1)
        for layer in reversed(self.couplings):
            u = layer.inverse(u, z, frame)
        return u

    # --- rays ------------------------------------------------------------------------------------------------
    def ray_samples(self, n: int, device, jitter: bool) -> torch.Tensor:
        k = self.config.samples
        s = (torch.arange(k, device=device, dtype=torch.float32) + 0.5) / k
        s = s.expand(n, k)
        if jitter:
            s = s + (torch.rand(n, k, device=device) - 0.5) / k
        return s

    def ray_depths(self, frame: torch.Tensor, pixels: torch.Tensor, jitter: bool) -> torch.Tensor:
        """(B, K) planar depths of the samples along the rays, near to far."""
        s = self.ray_samples(len(frame), pixels.device, jitter)
        if not self.guided:
            return self.depth_of(s)
        H, W = self.guide.shape[1:]
        x = pixels[:, 0].long().clamp(0, W - 1)
        y = pixels[:, 1].long().clamp(0, H - 1)
        centre = self.guide[frame, y, x]
        return centre[:, None] * torch.exp(math.log(self.config.guide_band) * (2.0 * s - 1.0))

    def trace(self, frame: torch.Tensor, pixels: torch.Tensor, jitter: bool = False) -> dict:
        """Sample the rays of pixels (B, 2) of frames (B,): canonical points, weights, colour, depth."""
        depth = self.ray_depths(frame, pixels, jitter)
        cam = self.camera_points(frame, pixels, depth)
        u = self.to_canonical(self.to_canonical_base(frame, cam), frame)
        sigma, rgb = self.field(u)
        weights = composite_weights(sigma, self.config.samples)
        return {"u": u, "weights": weights, "rgb": (weights[..., None] * rgb).sum(1),
                "depth": (weights * depth).sum(1),   # as the points are composited: where the ray's point lies
                "u_surface": (weights[..., None] * u).sum(1)}

    def map_to(self, ray: dict, target: torch.Tensor):
        """Where traced rays land in frames `target` (B,): pixels (B, 2) and planar depth (B,) there."""
        cam = self.from_canonical_base(target, self.from_canonical(ray["u"], target))
        point = (ray["weights"][..., None] * cam).sum(1)                # (B, 3) composited in target space
        return self.project(target, point), point[:, 2], point

    def world_of(self, u: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """(B, 3) canonical points -> world positions in frames (B,) (the acceleration loss's trajectories)."""
        return self.canonical_to_world(self.from_canonical(u[:, None], frame)[:, 0])


def composite_weights(sigma: torch.Tensor, samples: int) -> torch.Tensor:
    """Alpha-compositing weights (B, K); the last sample is opaque so every ray's weights sum to 1."""
    alpha = 1.0 - torch.exp(-sigma / samples * 8.0)
    alpha = torch.cat([alpha[:, :-1], torch.ones_like(alpha[:, -1:])], dim=1)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha[:, :-1]], dim=1), dim=1)
    return alpha * transmittance


def save_checkpoint(path, model: OmniMotion, info: dict) -> None:
    from exporters.atomic import atomic_path

    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": asdict(model.config),
               "geometry": model.geometry.to_dict(), "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "info": info}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path, device: str = "cpu") -> tuple[OmniMotion, dict]:
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload.get("format") != CHECKPOINT_FORMAT or payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: not a Shotfield OmniMotion checkpoint of version {CHECKPOINT_VERSION}")
    model = OmniMotion(ModelConfig(**payload["config"]), ShotGeometry.from_dict(payload["geometry"]))
    model.load_state_dict(payload["state"])
    model.job_dir = Path(path).resolve().parent.parent     # JOB/tracks/model.pt
    return model.to(device).eval(), payload.get("info", {})
