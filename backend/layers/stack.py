"""The dense layer stack being optimised (D planes or spheres of RGBA) and the frames it is fitted to."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class View:
    """One frame as the optimisation sees it."""

    index: int                      # job frame number
    image: torch.Tensor             # (3, H, W) sRGB in [0, 1]
    static: torch.Tensor            # (H, W) bool: pixels to fit (moving objects left out in the other frames)
    K: torch.Tensor                 # (3, 3) float64
    world_from_camera: torch.Tensor  # (4, 4) float64, OpenCV axes


@dataclass
class LayerStack:
    """D layers of the reference camera, back to front (index 0 the farthest)."""

    kind: str                       # "mpi" | "msi" (see geometry.py)
    distances: torch.Tensor         # (D,) float64: planar depth (mpi) or radius (msi) of each layer
    colour: torch.Tensor            # (D, 3, H, W) sRGB in [0, 1]
    alpha: torch.Tensor             # (D, 1, H, W) straight alpha in [0, 1]; the farthest is opaque
    reference: View

    @property
    def rgba(self) -> torch.Tensor:
        return torch.cat([self.colour, self.alpha], 1)

    @property
    def size(self) -> tuple[int, int]:
        """(W, H) of the layer images (the reference frame's)."""
        return int(self.colour.shape[-1]), int(self.colour.shape[-2])
