"""Plane-sweep initialisation of the layer stack (Zhou et al. 2018's plane sweep volume, used directly rather
than through a learned network).

Every layer texel of the canvas (stack.py) is projected into the neighbouring frames; what they see there
(static pixels only) gives each layer a colour, and how well they agree with the reference frame gives a
matching cost. Opacity starts from the depth: the layer nearest to the depth stage's depth of the reference
frame is opaque and takes the reference colour; behind it, the nearest hidden surface the neighbouring frames
saw with their own depth (fusion.py) is opaque too, with their colour: that is what a moved camera sees when
the foreground slides away. Past the frame's borders the surface the neighbours saw there is; where nothing is
known inside the frame, the layer of least matching cost (the plane-sweep depth) is. The farthest layer is
opaque everywhere, the backdrop. The gradient descent then only has to refine this.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import fusion, geometry
from .stack import LayerStack, View, canvas_K, pad_to_canvas

NEAR_MARGIN = 0.85     # room in front of the nearest surface; the farthest surface is the backdrop itself
UNSEEN_COST = 1e3
BEHIND_LAYERS = 1.5   # a point hides behind the reference surface when farther by 1.5 layer spacings (disparity)


def depth_range(distance: torch.Tensor) -> tuple[float, float]:
    """(near, far) of the finite distances of the reference frame, robust to a few stray values."""
    d = distance[torch.isfinite(distance) & (distance > 0)].float()
    if d.numel() == 0:
        raise ValueError("no finite depth in the reference frame")
    near = float(torch.quantile(d, 0.005)) * NEAR_MARGIN
    far = float(torch.quantile(d, 0.998))
    return near, max(far, near * 1.5)


def sweep(stack_distances: torch.Tensor, kind: str, K_canvas: torch.Tensor, world_from_ref: torch.Tensor,
          image: torch.Tensor, sources: list[View]) -> tuple[torch.Tensor, torch.Tensor]:
    """Plane sweep over the canvas: (D, 3, H, W) mean colour the sources see on each layer (`image`, the
    reference frame on the canvas, where none sees it) and (D, H, W) mean absolute difference to `image`
    (UNSEEN_COST where none sees it)."""
    _, height, width = image.shape
    dirs = geometry.texel_directions(kind, K_canvas, height, width).float()
    rotation, centre = world_from_ref[:3, :3].float(), world_from_ref[:3, 3].float()
    images = torch.stack([s.image for s in sources])                        # (K, 3, h, w)
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
            h, w = view.image.shape[-2:]
            grid = torch.stack([pix[..., 0] / z / w * 2 - 1, pix[..., 1] / z / h * 2 - 1], -1)
            grids.append(torch.where((z > 1e-6)[..., None], grid, torch.full_like(grid, 2.0)))
        grid = torch.stack(grids).to(images.dtype)
        seen = F.grid_sample(images, grid, align_corners=False)
        weight = F.grid_sample(static, grid, align_corners=False)[:, 0]    # 0 outside the frame and on movers
        weight = (weight > 0.99).to(images.dtype)
        count = weight.sum(0)
        mean = (seen * weight[:, None]).sum(0) / count.clamp(min=1)
        cost = ((seen - image).abs().mean(1) * weight).sum(0) / count.clamp(min=1)
        colours.append(torch.where(count > 0, mean, image))
        costs.append(torch.where(count > 0, cost, torch.full_like(cost, UNSEEN_COST)))
    return torch.stack(colours), torch.stack(costs)


def nearest_layer(distances: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """(H, W) index of the layer nearest in disparity to each texel's distance (-1 where unknown)."""
    known = torch.isfinite(distance) & (distance > 0)
    inverse = torch.where(known, 1.0 / distance.clamp(min=1e-9), torch.zeros_like(distance))
    index = (inverse[None] - (1.0 / distances)[:, None, None].to(distance.dtype)).abs().argmin(0)
    return torch.where(known, index, torch.full_like(index, -1))


def initial_stack(kind: str, ref: View, sources: list[View], ref_distance: torch.Tensor, layers: int,
                  margin: int) -> LayerStack:
    """The stack before gradient descent, on a canvas `margin` texels wider than the frame on every side.
    ref_distance: (H, W) the reference frame's layer distance (planar depth for mpi, ray length for msi),
    NaN/inf/0 where unknown.

    Opaque texels: the reference frame on its own surface; behind it, the nearest hidden surface the
    neighbouring frames saw (fusion.py); on the margin and where the depth is unknown, the surface they saw
    there, else (inside the frame) the layer of least sweep cost; the farthest layer everywhere (backdrop)."""
    near, far = depth_range(ref_distance)
    distances = geometry.disparity_spaced(near, far, layers).to(ref.image.device)
    K = canvas_K(ref.K, margin)
    image = pad_to_canvas(ref.image, margin)
    known = torch.isfinite(ref_distance) & (ref_distance > 0)
    visible = pad_to_canvas(torch.where(known, ref_distance, torch.full_like(ref_distance, float("nan"))).float(),
                            margin, "constant")
    colour, cost = sweep(distances, kind, K, ref.world_from_camera, image, sources)
    spacing = float(1.0 / near - 1.0 / far) / max(layers - 1, 1)
    fused = fusion.fuse(kind, K, ref.world_from_camera, visible, sources, BEHIND_LAYERS * spacing, grow=margin,
                        image=image)
    in_frame = pad_to_canvas(torch.ones_like(known), margin, "constant") > 0.5

    shown = nearest_layer(distances, visible)                              # the reference frame's own surface
    around = (shown < 0) & fused.found                                     # margin / unknown depth: the sources'
    shown = torch.where(around, nearest_layer(distances, fused.distance), shown)
    swept = (shown < 0) & in_frame                                         # nothing known: plane-sweep depth
    shown = torch.where(swept, cost.argmin(0), shown)
    hidden = torch.where((visible == visible) & fused.found, nearest_layer(distances, fused.distance),
                         torch.full_like(shown, -1))
    hidden = torch.where(hidden < shown, hidden, torch.full_like(hidden, -1))
    d = torch.arange(layers, device=shown.device)[:, None, None]
    at_shown, at_hidden = d == shown[None], d == hidden[None]
    alpha = (at_shown | at_hidden | (d == 0)).to(ref.image.dtype)[:, None]
    colour = torch.where((at_shown & in_frame & ~around)[:, None], image[None], colour)
    colour = torch.where((at_shown & around | at_hidden)[:, None], fused.colour[None].to(colour.dtype), colour)
    surface = torch.where(around, fused.distance, visible)
    hidden_distance = torch.where(hidden >= 0, fused.distance, torch.full_like(fused.distance, float("nan")))
    return LayerStack(kind, distances, colour.contiguous(), alpha.contiguous(), ref, margin, surface, hidden_distance)
