"""A layer as a textured grid mesh (numpy): vertices on the reference camera's rays at the layer's distance,
every `stride` pixels, with the quads where the layer is transparent trimmed away.

    vertices (N, 3) float32   reference-camera coordinates, OpenCV axes (x right, y down, z forward)
    uv       (N, 2) float32   the vertex's image position / (W, H): (0, 0) top-left corner, (1, 1) bottom-right
    faces    (M, 3) int32     two triangles per kept quad, counter-clockwise as seen from the reference camera
    grid     (rows, cols)     vertex grid; vertex (r, c) is at pixel corner position
                              (c * W / (cols - 1), r * H / (rows - 1)), index r * cols + c

Vertices lie on the rays through their own image positions, so from the reference camera every vertex projects
onto its texture coordinate: the mesh shows the reference frame undistorted whatever its depth.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

TRIM_ALPHA = 2          # uint8 alpha at or below which a texel counts as empty


@dataclass
class LayerMesh:
    vertices: np.ndarray
    uv: np.ndarray
    faces: np.ndarray
    grid: tuple[int, int]

    def as_npz(self) -> dict[str, np.ndarray]:
        return {"vertices": self.vertices, "uv": self.uv, "faces": self.faces, "grid": np.array(self.grid, np.int32)}


def vertex_grid(width: int, height: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-corner positions (cols,), (rows,) of the vertex grid, spanning the whole image."""
    cols = int(np.ceil(width / stride)) + 1
    rows = int(np.ceil(height / stride)) + 1
    return np.linspace(0, width, cols), np.linspace(0, height, rows)


def grid_mesh(kind: str, K: np.ndarray, distance: np.ndarray, alpha: np.ndarray, stride: int) -> LayerMesh:
    """distance (H, W) float per texel, alpha (H, W) uint8 -> the trimmed, displaced grid mesh."""
    height, width = distance.shape
    xs, ys = vertex_grid(width, height, stride)
    gx, gy = np.meshgrid(xs, ys)
    # Texel centres are at i + 0.5: a vertex at a pixel corner reads the distance between its four texels.
    map_x = np.clip(gx - 0.5, 0, width - 1).astype(np.float32)
    map_y = np.clip(gy - 0.5, 0, height - 1).astype(np.float32)
    s = cv2.remap(distance.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    rays = np.stack([gx, gy, np.ones_like(gx)], -1) @ np.linalg.inv(K).T
    if kind == "msi":
        rays = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
    vertices = (rays * s[..., None]).reshape(-1, 3).astype(np.float32)
    uv = np.stack([gx / width, gy / height], -1).reshape(-1, 2).astype(np.float32)
    keep = _occupied_cells(alpha, xs, ys)
    rows, cols = len(ys), len(xs)
    r, c = np.nonzero(keep)
    v00 = r * cols + c
    v01, v10, v11 = v00 + 1, v00 + cols, v00 + cols + 1
    faces = np.concatenate([np.stack([v00, v10, v11], 1), np.stack([v00, v11, v01], 1)]).astype(np.int32)
    return LayerMesh(vertices, uv, faces, (rows, cols))


def _occupied_cells(alpha: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(rows-1, cols-1) bool: the cell covers a texel with alpha, or borders one (bilinear texture lookups
    reach half a texel past the last non-empty one)."""
    solid = (alpha > TRIM_ALPHA).astype(np.int64)
    table = np.pad(solid.cumsum(0).cumsum(1), ((1, 0), (1, 0)))    # summed-area table
    x0, x1 = np.floor(xs[:-1]).astype(int), np.ceil(xs[1:]).astype(int)
    y0, y1 = np.floor(ys[:-1]).astype(int), np.ceil(ys[1:]).astype(int)
    count = table[y1][:, x1] - table[y0][:, x1] - table[y1][:, x0] + table[y0][:, x0]
    cells = (count > 0).astype(np.uint8)
    return cv2.dilate(cells, np.ones((3, 3), np.uint8)) > 0
