"""The field itself: factorised planes with tiny decoders (K-Planes / HexPlane style), in place of NSFF's two
8x256 MLPs.

- Static field: three planes (xy, xz, yz) per scale over the contracted space; the features of a point are
  the product of its three bilinear plane samples, concatenated over scales, and a 64-wide decoder gives
  density, colour and the blend weight b (NSFF's static model predicts the blend weight too).
- Dynamic field: three *space-time volumes* (xy-t, xz-t, yz-t) per scale over the dynamic region (the box of
  the motion-masked points, space.fit_dynamic_region, gated per frame by space.motion_occupancy; the
  contracted space when there is none): a plane per frame, trilinear in
  (plane, time) with frames on the grid nodes, multiplied the same way. The decoder gives density, colour,
  forward and backward scene flow (world units per frame) and the two disocclusion weights.

Why space-time volumes rather than HexPlane's six planes: a moving textured object needs its texture at a
different place at every time; a product of a spatial plane and a (x, t) plane can only gate one texture on
and off, a per-time plane holds it directly. Its memory is frames x resolution^2 x channels per plane,
which is small at these resolutions (3 x 12 x 40 x 96^2 floats = 18 MB at 40 frames).

A checkpoint is `field/field.pt` (the state dict) plus `field/field.json` (FieldConfig, the scene box,
frame count and training figures) in plain JSON, enough to rebuild the model without the job's settings.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from exporters.atomic import atomic_path, write_json

from .space import OCCUPANCY_CELLS, SceneBox, contract


@dataclass
class FieldConfig:
    static_resolutions: tuple[int, ...] = (48, 96, 192)
    """Plane sizes of the static field's scales (cells across the contracted cube)."""
    dynamic_resolutions: tuple[int, ...] = (32, 96)
    """Plane sizes of the dynamic field's space-time volumes."""
    channels: int = 12
    """Features per plane and scale."""
    hidden: int = 64
    """Width of the decoders' one hidden layer."""
    frames: int = 2
    """Frames of the shot (time nodes of the dynamic field)."""
    flow_scale: float = 0.05
    """World units per frame that a unit decoder output means."""

    def to_json(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @staticmethod
    def from_json(d: dict) -> "FieldConfig":
        return FieldConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _decoder(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, outputs))


class StaticField(nn.Module):
    """(N, 3) contracted points -> density (N,), colour (N, 3) in 0..1, blend weight (N,) in 0..1."""

    def __init__(self, cfg: FieldConfig):
        super().__init__()
        self.planes = nn.ParameterList(
            [nn.Parameter(torch.empty(3, cfg.channels, r, r).uniform_(0.1, 0.5)) for r in cfg.static_resolutions])
        self.decoder = _decoder(cfg.channels * len(cfg.static_resolutions), cfg.hidden, 5)
        with torch.no_grad():
            self.decoder[-1].bias[4] = -2.0  # start static: blend weight about 0.12

    def forward(self, u: torch.Tensor):
        # xy, xz, yz coordinates of each point, as a batch of three planes
        grid = torch.stack([u[:, [0, 1]], u[:, [0, 2]], u[:, [1, 2]]])[:, :, None, :]   # (3, N, 1, 2)
        feats = []
        for plane in self.planes:
            s = F.grid_sample(plane, grid, mode="bilinear", padding_mode="border", align_corners=True)  # (3, C, N, 1)
            feats.append((s[0] * s[1] * s[2])[..., 0].t())
        raw = self.decoder(torch.cat(feats, dim=-1))
        return density(raw[:, 0]), torch.sigmoid(raw[:, 1:4]), torch.sigmoid(raw[:, 4])


class DynamicField(nn.Module):
    """(N, 3) contracted points and (N,) frame numbers -> DynamicSample.

    Each space-time volume is stored as an atlas: the planes of all frames stacked along the image's rows
    (3, C, frames * R, R), sampled with 2D `grid_sample` at the frame's block. That is the trilinear lookup
    of a (frames, R, R) volume at integer times, at a quarter of the cost of 3D `grid_sample` on the CPU
    (measured: its backward pass dominates a step); fractional times lerp two lookups."""

    def __init__(self, cfg: FieldConfig):
        super().__init__()
        self.flow_scale, self.frames = cfg.flow_scale, cfg.frames
        self.resolutions = tuple(cfg.dynamic_resolutions)
        self.volumes = nn.ParameterList(
            [nn.Parameter(torch.empty(3, cfg.channels, cfg.frames * r, r).uniform_(0.1, 0.5)) for r in cfg.dynamic_resolutions])
        self.decoder = _decoder(cfg.channels * len(cfg.dynamic_resolutions), cfg.hidden, 12)
        with torch.no_grad():
            self.decoder[-1].bias[4:10] = 0.0     # no scene flow on average at first
            self.decoder[-1].bias[10:12] = 2.0     # and trusting the warps (weights about 0.88)

    def _lookup(self, u: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """u (N, 3) contracted, frame (N,) integer-valued float -> (N, C * scales) features."""
        pairs = torch.stack([u[:, [0, 1]], u[:, [0, 2]], u[:, [1, 2]]]).clamp(-1, 1)   # (3, N, 2)
        feats = []
        for r, volume in zip(self.resolutions, self.volumes):
            rows = self.frames * r
            y = frame[None, :] * r + (pairs[..., 1] + 1) * 0.5 * (r - 1)      # atlas row, in cells
            grid = torch.stack([pairs[..., 0], 2 * y / max(rows - 1, 1) - 1], -1)[:, :, None, :]
            s = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
            feats.append((s[0] * s[1] * s[2])[..., 0].t())
        return torch.cat(feats, dim=-1)

    def forward(self, u: torch.Tensor, times: torch.Tensor) -> "DynamicSample":
        t = times.clamp(0, self.frames - 1)
        t0 = torch.floor(t)
        a = (t - t0)[:, None]
        feats = self._lookup(u, t0)
        if bool((a > 0).any()):
            feats = feats * (1 - a) + self._lookup(u, (t0 + 1).clamp(max=self.frames - 1)) * a
        raw = self.decoder(feats)
        return DynamicSample(density(raw[:, 0]), torch.sigmoid(raw[:, 1:4]), raw[:, 4:7] * self.flow_scale,
                             raw[:, 7:10] * self.flow_scale, torch.sigmoid(raw[:, 10]), torch.sigmoid(raw[:, 11]))


@dataclass
class DynamicSample:
    density: torch.Tensor       # (N,)
    colour: torch.Tensor        # (N, 3)
    flow_fw: torch.Tensor       # (N, 3) world units, t -> t+1
    flow_bw: torch.Tensor       # (N, 3) world units, t -> t-1
    weight_fw: torch.Tensor     # (N,) disocclusion weight of the forward warp, 0..1
    weight_bw: torch.Tensor     # (N,)


def density(raw: torch.Tensor) -> torch.Tensor:
    """Softplus with a shift: empty space is cheap to reach and gradients never vanish as in ReLU."""
    return F.softplus(raw - 1.0) * 10.0


class SceneField(nn.Module):
    """Static + dynamic field over world points; `times` are job frame numbers (floats)."""

    def __init__(self, cfg: FieldConfig, box: SceneBox):
        super().__init__()
        self.cfg, self.box = cfg, box
        self.static = StaticField(cfg)
        self.dynamic = DynamicField(cfg)
        self.register_buffer("centre", torch.tensor(box.centre, dtype=torch.float32))
        self.register_buffer("half_extent", torch.tensor(box.half, dtype=torch.float32))
        # the dynamic region (space.fit_dynamic_region) comes from field.json's box, not the state dict, so
        # checkpoints without one still load (they cover the contracted space, as before)
        self.has_dynamic_region = box.dynamic_centre is not None
        if self.has_dynamic_region:
            self.register_buffer("dynamic_centre", torch.tensor(box.dynamic_centre, dtype=torch.float32), persistent=False)
            self.register_buffer("dynamic_half", torch.tensor(box.dynamic_half, dtype=torch.float32), persistent=False)
            # where the masks put movers at each frame (space.motion_occupancy; all True until training sets it):
            # in the state dict, which every checkpoint with a region has
            cells = OCCUPANCY_CELLS
            self.register_buffer("occupancy", torch.ones(cfg.frames, cells, cells, cells, dtype=torch.bool))

    def contract(self, x: torch.Tensor) -> torch.Tensor:
        return contract(x, self.centre, self.half_extent)

    def query_static(self, x: torch.Tensor):
        return self.static(self.contract(x))

    def query_dynamic(self, x: torch.Tensor, times: torch.Tensor) -> DynamicSample:
        if not self.has_dynamic_region:
            return self.dynamic(self.contract(x), times)
        # the dynamic region maps linearly onto the planes' whole [-1, 1]; outside it nothing is dynamic (no
        # density: the static field holds everything there, and the blend cannot pick a border cell's smear)
        u = (x - self.dynamic_centre) / self.dynamic_half
        inside = (u.abs() <= 1).all(-1)
        u = u.clamp(-1, 1)
        # ... and at each time only near where the masks saw a mover then (else the fine dynamic cells, finer
        # than the static field's, claim static surfaces along the movers' whole paths)
        cell = ((u + 1) * 0.5 * OCCUPANCY_CELLS).long().clamp(0, OCCUPANCY_CELLS - 1)
        frame = times.round().long().clamp(0, self.cfg.frames - 1)
        inside = inside & self.occupancy[frame, cell[:, 0], cell[:, 1], cell[:, 2]]
        sample = self.dynamic(u, times)
        sample.density = sample.density * inside
        return sample


def save_checkpoint(model: SceneField, folder: Path, info: dict) -> None:
    """field.pt then field.json, each written atomically; field.json (written last) marks it complete."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "field.pt") as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    write_json(folder / "field.json", {"format": "shotfield-field", "version": 1, "config": model.cfg.to_json(),
                                       "box": model.box.to_json(), **info})


def load_checkpoint(folder: Path, device: str) -> tuple[SceneField, dict]:
    info = json.loads((folder / "field.json").read_text())
    model = SceneField(FieldConfig.from_json(info["config"]), SceneBox.from_json(info["box"]))
    model.load_state_dict(torch.load(folder / "field.pt", map_location="cpu", weights_only=True))
    return model.to(device).eval(), info
