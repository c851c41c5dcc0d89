"""Building the layered meshes of one reference frame: frames -> views, plane sweep, gradient descent, reduction
to a few layers, one mesh each (the stage, backend/stages/layers.py, runs this per reference frame)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import torch

from . import geometry, mesh, optimise, reduce, sweep
from .render import render_surfaces, surfaces_from_arrays
from .stack import View


@dataclass(frozen=True)
class Recipe:
    """How much work a quality level spends."""

    planes: int                 # D of the dense stack
    layers: int                 # meshes it is reduced to
    steps: int                  # gradient steps at effort 1
    neighbours: tuple[int, ...]  # frame offsets of the source frames (both directions)
    stride: int                 # mesh vertex spacing in pixels


RECIPES = {
    # Far neighbours see most of what the foreground hides (it has moved away, or the camera has): ±16 frames
    # rather than ±8 gave +0.4 dB held out on the default shot and +0.1 dB on the large-object one.
    # As many layers as planes: merging 24 planes into 16 layers cost 0.15 dB held out on the large-object shot
    # (the merged layers' seams show beside the ball's silhouette); 32 planes kept as 32 layers gained 0.25 dB
    # there over 24/16, for 65 s instead of 47 s per reference frame.
    "preview": Recipe(planes=32, layers=32, steps=60, neighbours=(1, 2, 4, 6, 8, 12, 16), stride=4),
    "final": Recipe(planes=64, layers=48, steps=300, neighbours=(1, 2, 3, 4, 6, 8, 10, 12, 16, 20), stride=4),
}
MOTION_DILATION = 5     # px of margin around the moving objects of the source frames
MARGIN = 0.125          # canvas beyond the frame on each side, as a share of the frame's longer side: held-out
                        # cameras 0.25-0.4 units off the path of the test shots see up to 7 % of their pixels
                        # past the reference frame's borders


@dataclass
class BuiltReference:
    frame: int
    kind: str
    layers: list[reduce.Layer]
    meshes: list[mesh.LayerMesh]
    planes: int
    reference_psnr_db: float
    margin: int = 0


def make_view(index: int, frame: np.ndarray, moving: np.ndarray | None, K: np.ndarray, world_from_camera: np.ndarray,
              device: str, depth: np.ndarray | None = None) -> View:
    """depth: the depth stage's planar depth of the frame (0/inf/NaN where unknown), for the source frames."""
    static = np.ones(frame.shape[:2], bool)
    if moving is not None:
        static = cv2.dilate((moving > 127).astype(np.uint8), np.ones((MOTION_DILATION,) * 2, np.uint8)) == 0
    if depth is not None:
        depth = torch.as_tensor(np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float32), device=device)
    return View(index, torch.as_tensor(frame, device=device).permute(2, 0, 1).float().div(255),
                torch.as_tensor(static, device=device), torch.as_tensor(K, dtype=torch.float64, device=device),
                torch.as_tensor(world_from_camera, dtype=torch.float64, device=device), depth)


def source_frames(reference: int, count: int, offsets: tuple[int, ...]) -> list[int]:
    return sorted({reference + sign * o for o in offsets for sign in (-1, 1) if 0 <= reference + sign * o < count})


def reference_distance(kind: str, depth: np.ndarray, K: np.ndarray, device: str) -> torch.Tensor:
    """(H, W) the depth stage's planar depth as the layer distance (ray length for msi); NaN where unknown."""
    d = torch.as_tensor(np.where(np.isfinite(depth) & (depth > 0), depth, np.nan), dtype=torch.float64, device=device)
    if kind == "msi":
        d = d * geometry.pixel_rays(torch.as_tensor(K, dtype=torch.float64, device=device), *depth.shape).norm(dim=-1)
    return d


def build_reference(kind: str, ref: View, sources: list[View], depth: np.ndarray, recipe: Recipe, effort: float,
                    progress: Callable[[float, str], None] = lambda f, m: None) -> BuiltReference:
    distance = reference_distance(kind, depth, ref.K.cpu().numpy(), str(ref.image.device))
    height, width = ref.image.shape[-2:]
    margin = round(MARGIN * max(width, height))
    progress(0.0, "plane sweep")
    stack = sweep.initial_stack(kind, ref, sources, distance, recipe.planes, margin)
    steps = max(1, round(recipe.steps * effort))
    stack = optimise.refine(stack, sources, optimise.Schedule(steps=steps),
                            lambda f: progress(0.05 + 0.85 * f, "gradient descent on the layers") if _every(f, steps) else None)
    progress(0.9, f"reducing {recipe.planes} layers to {recipe.layers} meshes")
    layers = reduce.merge(stack, recipe.layers)
    K = stack.K.cpu().numpy()
    meshes = [mesh.grid_mesh(kind, K, layer.distance, layer.rgba[..., 3], recipe.stride) for layer in layers]
    surfaces = surfaces_from_arrays(kind, K, ref.world_from_camera.cpu().numpy(), [l.rgba for l in layers],
                                    [m.as_npz() for m in meshes], [typical_distance(l) for l in layers], ref.index,
                                    str(ref.image.device))
    with torch.no_grad():
        shown = render_surfaces(surfaces, ref.K.cpu().numpy(), ref.world_from_camera.cpu().numpy(), width, height)
        mse = float(((shown.rgb - ref.image) ** 2).mean())
    return BuiltReference(ref.index, kind, layers, meshes, recipe.planes, round(-10 * np.log10(max(mse, 1e-12)), 3),
                          margin)


def typical_distance(layer: reduce.Layer) -> float:
    """The alpha-weighted mean distance (in disparity) of a layer; the middle of its range when empty."""
    a = layer.rgba[..., 3].astype(np.float64)
    if a.sum() < 1:
        return float(np.sqrt(layer.near * layer.far))
    return float(a.sum() / (a / layer.distance).sum())


def _every(fraction: float, steps: int) -> bool:
    """Report progress about 20 times per optimisation, not every step."""
    n = round(fraction * steps)
    return n == steps or n % max(1, steps // 20) == 0
