"""Plane-sweep initialisation of the layer stack (Zhou et al. 2018's plane sweep volume, used directly rather
than through a learned network).

Every layer texel is projected into the neighbouring frames; what they see there (static pixels only) gives
each layer a colour, and how well they agree with the reference frame gives a matching cost. Opacity starts
from the depth stage's depth of the reference frame: the texel's nearest layer is opaque; where the depth is
unknown, the layer of least matching cost (the plane-sweep depth) is. Behind a depth edge the hidden background
(what the neighbouring frames see past the foreground's silhouette) gets an opaque texel on the farthest layer
nearby, coloured from the sweep: the gradient descent then only has to refine it. The farthest layer is opaque
everywhere, the backdrop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import geometry
from .stack import LayerStack, View

NEAR_MARGIN = 0.85     # room in front of the nearest surface; the farthest surface is the backdrop itself
UNSEEN_COST = 1e3


def depth_range(distance: torch.Tensor) -> tuple[float, float]:
    """(near, far) of the finite distances of the reference frame, robust to a few stray values."""
    d = distance[torch.isfinite(distance) & (distance > 0)].float()
    if d.numel() == 0:
        raise ValueError("no finite depth in the reference frame")
    near = float(torch.quantile(d, 0.005)) * NEAR_MARGIN
    far = float(torch.quantile(d, 0.998))
    return near, max(far, near * 1.5)


def sweep(stack_distances: torch.Tensor, kind: str, ref: View, sources: list[View]) -> tuple[torch.Tensor, torch.Tensor]:
    """Plane sweep: (D, 3, H, W) mean colour the sources see on each layer (the reference colour where none
    sees it) and (D, H, W) mean absolute difference to the reference frame (UNSEEN_COST where none sees it)."""
    _, height, width = ref.image.shape
    dirs = geometry.texel_directions(kind, ref.K, height, width).float()
    rotation, centre = ref.world_from_camera[:3, :3].float(), ref.world_from_camera[:3, 3].float()
    images = torch.stack([s.image for s in sources])                        # (K, 3, H, W)
    static = torch.stack([s.static for s in sources]).to(images.dtype)[:, None]
    colours, costs = [], []
    for s in stack_distances.float():
        points = s * dirs                                                   # (H, W, 3) reference camera
        world = points @ rotation.T + centre
        grids = []
        for view in sources:
            cam = (world - view.world_from_camera[:3, 3].float()) @ view.world_from_camera[:3, :3].float()
            z = cam[..., 2]
            pix = cam @ view.K.float().T
            grid = torch.stack([pix[..., 0] / z / width * 2 - 1, pix[..., 1] / z / height * 2 - 1], -1)
            grids.append(torch.where((z > 1e-6)[..., None], grid, torch.full_like(grid, 2.0)))
        grid = torch.stack(grids).to(images.dtype)
        seen = F.grid_sample(images, grid, align_corners=False)
        weight = F.grid_sample(static, grid, align_corners=False)[:, 0]    # 0 outside the frame and on movers
        weight = (weight > 0.99).to(images.dtype)
        count = weight.sum(0)
        mean = (seen * weight[:, None]).sum(0) / count.clamp(min=1)
        cost = ((seen - ref.image).abs().mean(1) * weight).sum(0) / count.clamp(min=1)
        colours.append(torch.where(count > 0, mean, ref.image))
        costs.append(torch.where(count > 0, cost, torch.full_like(cost, UNSEEN_COST)))
    return torch.stack(colours), torch.stack(costs)


def nearest_layer(distances: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """(H, W) index of the layer nearest in disparity to each texel's distance (-1 where unknown)."""
    known = torch.isfinite(distance) & (distance > 0)
    inverse = torch.where(known, 1.0 / distance.clamp(min=1e-9), torch.zeros_like(distance))
    index = (inverse[None] - (1.0 / distances)[:, None, None].to(distance.dtype)).abs().argmin(0)
    return torch.where(known, index, torch.full_like(index, -1))


def initial_stack(kind: str, ref: View, sources: list[View], ref_distance: torch.Tensor, layers: int,
                  edge_window: int) -> LayerStack:
    """The stack before gradient descent. ref_distance: (H, W) the reference frame's layer distance (planar
    depth for mpi, ray length for msi), NaN/inf/0 where unknown; edge_window: odd width in pixels within which
    background is looked for behind a depth edge (about the largest parallax expected)."""
    near, far = depth_range(ref_distance)
    distances = geometry.disparity_spaced(near, far, layers).to(ref.image.device)
    colour, cost = sweep(distances, kind, ref, sources)
    index = nearest_layer(distances, ref_distance)
    index = torch.where(index >= 0, index, cost.argmin(0))                 # plane-sweep depth where depth is unknown
    # The farthest layer within the window: where it is well behind this texel, the background continues there.
    back = -F.max_pool2d(-index[None, None].float(), edge_window, stride=1, padding=edge_window // 2)[0, 0].long()
    behind = back < index - 1
    d = torch.arange(layers, device=index.device)[:, None, None]
    front = d == index[None]
    alpha = (front | ((d == back[None]) & behind[None]) | (d == 0)).to(ref.image.dtype)[:, None]
    colour = torch.where(front[:, None], ref.image[None], colour)
    return LayerStack(kind, distances, colour.contiguous(), alpha.contiguous(), ref)
