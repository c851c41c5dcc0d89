"""The dense layer stack being optimised (D planes or spheres of RGBA) and the frames it is fitted to.

The layers cover a *canvas* wider than the reference frame by `margin` texels on every side: a camera moved
off the reference camera sees past the reference frame's borders, and the neighbouring frames have seen what
is there. The canvas has its own intrinsics (the reference camera's K with the principal point moved by the
margin), so a texel (i, j) of the canvas sits on the reference camera's ray through pixel
(j - margin + 0.5, i - margin + 0.5); the reference frame is the canvas's centre.
"""
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
    depth: torch.Tensor | None = None  # (H, W) float32 planar depth of the depth stage, NaN where unknown


def canvas_K(K: torch.Tensor, margin: int) -> torch.Tensor:
    """The canvas's intrinsics: K with the principal point moved `margin` texels right and down."""
    shifted = K.clone()
    shifted[0, 2] += margin
    shifted[1, 2] += margin
    return shifted


def pad_to_canvas(image: torch.Tensor, margin: int, mode: str = "replicate") -> torch.Tensor:
    """(..., H, W) -> (..., H + 2m, W + 2m): the reference frame's array on the canvas (edges repeated, or a
    constant with mode="constant": NaN for distances)."""
    if margin == 0:
        return image
    shape = image.shape
    x = image.reshape(-1, 1, *shape[-2:])
    if mode == "replicate":
        x = torch.nn.functional.pad(x, (margin,) * 4, mode="replicate")
    else:
        x = torch.nn.functional.pad(x, (margin,) * 4, mode="constant", value=float("nan"))
    return x.reshape(*shape[:-2], *x.shape[-2:])


def crop_from_canvas(image: torch.Tensor, margin: int) -> torch.Tensor:
    """The reference frame's part of a canvas array (..., H + 2m, W + 2m) -> (..., H, W)."""
    if margin == 0:
        return image
    return image[..., margin:-margin, margin:-margin]


@dataclass
class LayerStack:
    """D layers of the reference camera's canvas, back to front (index 0 the farthest)."""

    kind: str                       # "mpi" | "msi" (see geometry.py)
    distances: torch.Tensor         # (D,) float64: planar depth (mpi) or radius (msi) of each layer
    colour: torch.Tensor            # (D, 3, H + 2m, W + 2m) sRGB in [0, 1]
    alpha: torch.Tensor             # (D, 1, H + 2m, W + 2m) straight alpha in [0, 1]; the farthest is opaque
    reference: View
    margin: int = 0                 # canvas texels on each side of the reference frame
    surface: torch.Tensor | None = None  # (H + 2m, W + 2m) distance of what the canvas shows: the depth
                                         # stage's inside the frame, the neighbours' around it; NaN unknown
    hidden: torch.Tensor | None = None   # (H + 2m, W + 2m) distance of the nearest surface behind it that the
                                         # neighbouring frames saw (fusion.py); NaN where none

    @property
    def rgba(self) -> torch.Tensor:
        return torch.cat([self.colour, self.alpha], 1)

    @property
    def size(self) -> tuple[int, int]:
        """(W, H) of the layer images (the canvas)."""
        return int(self.colour.shape[-1]), int(self.colour.shape[-2])

    @property
    def K(self) -> torch.Tensor:
        """The canvas's intrinsics (canvas_K of the reference camera's)."""
        return canvas_K(self.reference.K, self.margin)
