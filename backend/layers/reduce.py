"""From many layers to a few (Broxton et al. 2020): contiguous runs of the dense stack are merged with "over"
into one RGBA layer each, and each merged layer gets a per-texel distance for its mesh.

Merging is exact at the reference view (over is associative), so the few layers show the reference frame as the
dense stack does; away from it the merged texels sit at their own distance instead of on their planes.
Where the group's surface is the one the canvas shows and its distance is known (the depth stage's inside the
frame, the neighbouring frames' around it), that distance displaces the mesh exactly (a slanted floor stays a
slanted floor instead of a staircase of planes); elsewhere the alpha-weighted distance of the group's layers,
smoothed, does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .composite import linear_to_srgb, srgb_to_linear
from .stack import LayerStack
from .sweep import nearest_layer

EMPTY = 1e-4          # accumulated alpha below which a texel is treated as empty
SMOOTH_PASSES = 2     # 3x3 box passes over the distance map: the mesh follows surfaces, not texel noise
SKIRT = 2             # texels by which a layer overlaps the next one where the surface continues across


@dataclass
class Layer:
    rgba: np.ndarray        # (H, W, 4) uint8: sRGB colour, straight alpha
    distance: np.ndarray    # (H, W) float32 per texel (planar depth for mpi, radius for msi)
    near: float             # the group's distance range
    far: float
    planes: tuple[int, int]  # [first, last] index in the dense stack


def group_planes(alpha: torch.Tensor, count: int) -> list[tuple[int, int]]:
    """Contiguous [first, last] groups of the D layers (back to front), split where the cumulative alpha mass
    passes equal shares, so busy depth ranges get layers of their own. Every group has at least one layer."""
    depth_count = alpha.shape[0]
    count = max(1, min(count, depth_count))
    mass = alpha.flatten(1).sum(1).double().cpu() + 1e-3 * alpha[0].numel()
    share = torch.cumsum(mass, 0) / mass.sum()
    starts = [0]
    for g in range(1, count):
        first = int(torch.searchsorted(share, torch.tensor(g / count, dtype=share.dtype)).item()) + 1
        first = min(max(first, starts[-1] + 1), depth_count - (count - g))
        starts.append(first)
    ends = starts[1:] + [depth_count]
    return [(a, b - 1) for a, b in zip(starts, ends)]


def merge(stack: LayerStack, count: int) -> list[Layer]:
    """The stack reduced to `count` layers, back to front, each with a per-texel distance for its mesh (from
    stack.surface, the distance of what the canvas shows, where known)."""
    colour = srgb_to_linear(stack.colour)
    alpha = stack.alpha[:, 0]
    s = stack.distances.to(colour.dtype)
    surface = stack.surface if stack.surface is not None else torch.full_like(alpha[0], float("nan"))
    surface = surface.to(colour.dtype)
    known = nearest_layer(stack.distances, surface) >= 0
    # The surface the canvas shows: the nearest layer with real opacity seen from the reference camera.
    transmit = torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), 1 - alpha.flip(0)[:-1]], 0), 0).flip(0)
    shown = (alpha * transmit).argmax(0)
    shown_colour = colour.gather(0, shown[None, None].expand(1, 3, *shown.shape))[0]
    inverse = 1.0 / surface
    spacing = float(1.0 / s[-1] - 1.0 / s[0]) / max(len(s) - 1, 1)
    layers = []
    for first, last in group_planes(stack.alpha[:, 0], count):
        acc_c = torch.zeros_like(colour[0])
        acc_a = torch.zeros_like(alpha[0])
        acc_inv = torch.zeros_like(alpha[0])
        for d in range(first, last + 1):                       # back to front inside the group
            a = alpha[d]
            acc_c = colour[d] * a + acc_c * (1 - a)
            acc_inv = a / s[d] + acc_inv * (1 - a)
            acc_a = a + acc_a * (1 - a)
        has = acc_a > EMPTY
        straight = torch.where(has, acc_c / acc_a.clamp(min=EMPTY), colour[first:last + 1].mean(0))
        lo = float(s[last] if last == len(s) - 1 else (s[last] * s[last + 1]) ** 0.5)   # halfway to the neighbours
        hi = float(s[first] if first == 0 else (s[first] * s[first - 1]) ** 0.5)
        middle = float((s[first] * s[last]) ** 0.5)
        distance = torch.where(has, acc_a / acc_inv.clamp(min=1e-9), torch.full_like(acc_a, middle))
        # The known surface, clamped to the group's range, wherever it is the group's own or the group holds
        # nothing: a slanted floor then runs on exactly up to where the next group takes over, so the mesh's
        # vertices at that border (interpolated between texels) stay on the floor instead of bending towards
        # the group's middle distance, which shows as a seam from a moved camera.
        own = known & (shown >= first) & (shown <= last)
        exact = own | (known & ~has)
        distance = torch.where(exact, surface, distance).clamp(lo, hi)
        distance = torch.where(exact, distance, _smooth(distance).clamp(lo, hi))
        # A skirt: where the surface runs on into the next group (a floor, a sphere), this layer keeps it for
        # SKIRT more texels, at its own distance and colour. The two meshes then overlap along the seam
        # instead of meeting edge to edge, which a moved camera sees as a crack onto whatever lies behind.
        # At the reference view the skirt shows the surface's own colour, under or over its owner: exact.
        skirt = _grow(own, SKIRT) & known & ~own & ~has
        skirt &= (inverse >= 1.0 / hi - spacing) & (inverse <= 1.0 / lo + spacing)
        distance = torch.where(skirt, surface, distance)
        straight = torch.where(skirt[None], shown_colour, straight)
        acc_a = torch.where(skirt, torch.ones_like(acc_a), acc_a)
        rgba = torch.cat([linear_to_srgb(straight), acc_a[None]], 0).clamp(0, 1)
        layers.append(Layer(
            rgba=(rgba.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8),
            distance=distance.float().cpu().numpy(),
            near=lo, far=hi, planes=(first, last)))
    return layers


def _grow(mask: torch.Tensor, texels: int) -> torch.Tensor:
    return F.max_pool2d(mask[None, None].float(), 2 * texels + 1, stride=1, padding=texels)[0, 0] > 0.5


def _smooth(distance: torch.Tensor) -> torch.Tensor:
    x = distance[None, None]
    for _ in range(SMOOTH_PASSES):
        x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return x[0, 0]
