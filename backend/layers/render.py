"""The layered meshes at any camera, without Blender: `shotfield render JOB --source layers` (backend/rendering.py).

Each layer mesh is a height field over the reference camera's image: its vertex grid stores a distance per
grid point (planar depth or radius, geometry.py) and the surface in between is that grid interpolated
bilinearly (the mesh's two triangles per quad differ from it by less than the quad's own bend). A rendering
camera's ray is intersected with that surface by fixed-point iteration (distance -> point on the ray ->
reference texel -> the surface's distance there -> ...), which converges for the smooth, bounded layers
reduce.py makes; the layer's RGBA texture is read where the ray lands, and the layers are composited back to
front with "over" in linear light (composite.py), the farthest one extended past the frame edge as a backdrop.

With several reference frames a camera is rendered from the one nearest in time (then in position).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from exporters.cameras_json import Cameras
from exporters.layers_json import LayersFileError, LayerReference, read_layer_mesh, read_layers_json

from ..errors import ShotfieldError
from . import geometry
from .composite import Composite, over

ITERATIONS = 8
LAYERS_FILE = "layers/layers.json"


@dataclass
class LayerSurfaces:
    """One reference frame's layers, ready to render: back to front."""

    kind: str
    K: torch.Tensor                 # (3, 3) float64: the texture's intrinsics (the reference camera's, moved
                                    # by the canvas margin: layers_json.LayerReference.texture_K)
    world_from_camera: torch.Tensor  # (4, 4) float64
    rgba: torch.Tensor              # (L, 4, H, W) float32, sRGB + straight alpha
    distance_grid: torch.Tensor     # (L, 1, rows, cols) float32: vertex distances; grid corners = image corners
    typical: torch.Tensor           # (L,) float64, the layers' typical distances (start of the iteration)
    frame: int

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgba.shape[-1]), int(self.rgba.shape[-2])


def surfaces_from_arrays(kind: str, K, world_from_camera, rgba: list[np.ndarray], meshes: list[dict],
                         typical: list[float], frame: int, device: str = "cpu") -> LayerSurfaces:
    """rgba: (H, W, 4) uint8 per layer; meshes: mesh.py's arrays (vertices, grid)."""
    grids = []
    for mesh in meshes:
        rows, cols = (int(v) for v in mesh["grid"])
        v = torch.as_tensor(np.asarray(mesh["vertices"], np.float32).reshape(rows, cols, 3))
        grids.append(geometry.distance_of(kind, v)[None])
    return LayerSurfaces(
        kind, torch.as_tensor(np.asarray(K), dtype=torch.float64, device=device),
        torch.as_tensor(np.asarray(world_from_camera), dtype=torch.float64, device=device),
        torch.as_tensor(np.stack(rgba)).permute(0, 3, 1, 2).float().div(255).to(device),
        torch.stack(grids).to(device), torch.tensor(typical, dtype=torch.float64, device=device), frame)


def load_reference(folder: Path, kind: str, ref: LayerReference, device: str) -> LayerSurfaces:
    rgba, meshes = [], []
    for entry in ref.layers:
        try:
            rgba.append(np.asarray(Image.open(folder / entry.image).convert("RGBA")))
            meshes.append(read_layer_mesh(folder / entry.mesh))
        except (OSError, LayersFileError) as exc:
            raise ShotfieldError(f"{folder}: layer files unreadable ({exc}); run the 'layers' stage again") from None
    return surfaces_from_arrays(kind, ref.texture_K, ref.world_from_camera, rgba, meshes,
                                [e.distance for e in ref.layers], ref.frame, device)


def render_surfaces(layers: LayerSurfaces, K: np.ndarray, world_from_camera: np.ndarray,
                    width: int, height: int) -> Composite:
    """The layers seen by an OpenCV camera (K, world_from_camera) at width x height."""
    device = layers.rgba.device
    ref_from_target = geometry.relative_pose(layers.world_from_camera.cpu(), world_from_camera).to(device)
    rays = geometry.target_rays(torch.as_tensor(np.asarray(K), dtype=torch.float64, device=device),
                                ref_from_target, height, width)
    count = layers.rgba.shape[0]
    s = layers.typical[:, None, None].expand(count, height, width).clone()
    for _ in range(ITERATIONS):
        h = geometry.hits(layers.kind, rays, s, layers.K, layers.size)
        on_surface = _surface_distance(layers, h.grid)
        s = torch.where(h.valid, on_surface, s)
    h = geometry.hits(layers.kind, rays, s, layers.K, layers.size)
    samples = F.grid_sample(layers.rgba, h.grid.float(), mode="bilinear", padding_mode="zeros", align_corners=False)
    back = F.grid_sample(layers.rgba[:1], h.grid[:1].float(), mode="bilinear", padding_mode="border", align_corners=False)
    samples = torch.cat([back, samples[1:]], 0)
    return over(samples, h.depth.float(), h.valid)


def _surface_distance(layers: LayerSurfaces, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear distance of each layer's vertex grid at reference-image coordinates `grid` (L, h, w, 2).
    The grid's corner vertices sit on the image corners, hence align_corners=True."""
    out = F.grid_sample(layers.distance_grid, grid.float(), mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, 0].to(torch.float64)


def read_job_layers(job_dir: Path, device: str) -> list[LayerSurfaces]:
    try:
        doc = read_layers_json(Path(job_dir) / LAYERS_FILE)
    except LayersFileError as exc:
        raise ShotfieldError(str(exc)) from None
    return [load_reference(doc.folder, doc.kind, ref, device) for ref in doc.references]


def nearest_reference(references: list[LayerSurfaces], time: float, world_from_camera: np.ndarray) -> LayerSurfaces:
    centre = np.asarray(world_from_camera)[:3, 3]
    return min(references, key=lambda r: (round(abs(r.frame - time), 6),
                                          float(np.linalg.norm(r.world_from_camera[:3, 3].cpu().numpy() - centre))))


def to_uint8(composite: Composite) -> tuple[np.ndarray, np.ndarray]:
    rgb = (composite.rgb.permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    return rgb, composite.depth.float().cpu().numpy()


def render_views(job_dir: Path, cameras: Cameras, times: np.ndarray, device: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rgb (H, W, 3) uint8 sRGB, planar depth (H, W) float32, 0 where nothing was seen) per camera."""
    references = read_job_layers(job_dir, device)
    with torch.no_grad():
        for frame, time in zip(cameras.frames, times):
            layers = nearest_reference(references, float(time), frame.world_from_camera)
            yield to_uint8(render_surfaces(layers, frame.K, frame.world_from_camera, cameras.width, cameras.height))
