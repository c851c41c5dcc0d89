"""`layers/layers.json`: the layered meshes of one or more reference frames (numpy + standard library).

    {"format": "shotfield-layers", "version": 1,
     "kind": "mpi" | "msi",          mpi: planes of constant planar depth; msi: spheres around the camera centre
     "width": W, "height": H,        size of the working frames
     "glb": "layers.glb",            every layer mesh in one glTF binary (exporters/layers_gltf.py)
     "references": [{
        "frame": i,                  job frame number of the reference frame
        "K": 3x3, "world_from_camera": 4x4,     its camera (OpenCV axes, DESIGN.md's conventions)
        "margin": m,                 the layer images are a canvas m texels wider than the frame on every
                                     side (what the neighbouring frames saw past its borders): texel (i, j)
                                     sits on the camera's ray through pixel (j - m + 0.5, i - m + 0.5), i.e.
                                     the texture's intrinsics are K with cx, cy moved by +m (texture_K)
        "planes": D,                 layers of the dense stack the few layers were reduced from
        "layers": [{                 back to front: composite them in this order with "over"
            "image": "ref00011/layer_00.png",   RGBA, 8-bit sRGB colour, straight (not premultiplied) alpha
            "mesh": "ref00011/layer_00.npz",    vertices/uv/faces/grid of backend/layers/mesh.py, vertices in
                                                the reference camera's OpenCV coordinates
            "depth": z | "radius": r,           the layer's typical planar depth (mpi) or radius (msi)
            "near": float, "far": float,        the distance range its mesh stays in
            "triangles": int}, ...],
        ...}, ...]}

Paths are relative to the folder of layers.json. Distances are in the world units of cameras.json.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import write_json

FORMAT = "shotfield-layers"
VERSION = 1
KINDS = ("mpi", "msi")


class LayersFileError(ValueError):
    """layers.json is missing or malformed; the message names the file and the problem."""


@dataclass
class LayerEntry:
    image: str
    mesh: str
    distance: float           # "depth" (mpi) or "radius" (msi)
    near: float
    far: float
    triangles: int


@dataclass
class LayerReference:
    frame: int
    K: np.ndarray
    world_from_camera: np.ndarray
    layers: list[LayerEntry]
    planes: int = 0
    extra: dict = field(default_factory=dict)   # e.g. "reference_psnr_db", "seconds"
    margin: int = 0                             # canvas texels beyond the frame on each side

    @property
    def texture_K(self) -> np.ndarray:
        """The intrinsics that map the reference camera's points to layer texel coordinates."""
        K = np.array(self.K, np.float64)
        K[:2, 2] += self.margin
        return K


@dataclass
class LayersFile:
    kind: str
    width: int
    height: int
    references: list[LayerReference]
    glb: str | None = "layers.glb"
    folder: Path = Path(".")

    def path(self, relative: str) -> Path:
        return self.folder / relative


def layers_to_dict(doc: LayersFile) -> dict:
    key = "depth" if doc.kind == "mpi" else "radius"
    return {
        "format": FORMAT, "version": VERSION, "kind": doc.kind, "width": doc.width, "height": doc.height,
        "glb": doc.glb,
        "references": [{
            "frame": ref.frame, "K": np.asarray(ref.K, float).tolist(),
            "world_from_camera": np.asarray(ref.world_from_camera, float).tolist(), "planes": ref.planes,
            "margin": int(ref.margin), **ref.extra,
            "layers": [{"image": e.image, "mesh": e.mesh, key: e.distance, "near": e.near, "far": e.far,
                        "triangles": e.triangles} for e in ref.layers],
        } for ref in doc.references],
    }


def write_layers_json(path: str | os.PathLike, doc: LayersFile) -> None:
    write_json(path, layers_to_dict(doc))


def read_layers_json(path: str | os.PathLike) -> LayersFile:
    """Read and check layers.json (not the files it names). Raises LayersFileError."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LayersFileError(f"{path}: not found; run the 'layers' stage") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LayersFileError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LayersFileError(f"{path}: not a Shotfield layers file (format {data.get('format') if isinstance(data, dict) else None!r})")
    kind = data.get("kind")
    if kind not in KINDS:
        raise LayersFileError(f"{path}: kind {kind!r} is not one of {', '.join(KINDS)}")
    key = "depth" if kind == "mpi" else "radius"
    try:
        width, height = int(data["width"]), int(data["height"])
        references = []
        for n, ref in enumerate(data["references"]):
            K = np.asarray(ref["K"], np.float64)
            pose = np.asarray(ref["world_from_camera"], np.float64)
            if K.shape != (3, 3) or pose.shape != (4, 4) or not (np.isfinite(K).all() and np.isfinite(pose).all()):
                raise LayersFileError(f"{path}: reference {n}: K must be 3x3 and world_from_camera 4x4, finite")
            layers = [LayerEntry(str(e["image"]), str(e["mesh"]), float(e[key]), float(e["near"]), float(e["far"]),
                                 int(e["triangles"])) for e in ref["layers"]]
            if not layers:
                raise LayersFileError(f"{path}: reference {n} has no layers")
            margin = int(ref.get("margin", 0))
            if margin < 0:
                raise LayersFileError(f"{path}: reference {n}: margin {margin} is negative")
            extra = {k: v for k, v in ref.items() if k not in ("frame", "K", "world_from_camera", "planes", "layers", "margin")}
            references.append(LayerReference(int(ref["frame"]), K, pose, layers, int(ref.get("planes", 0)), extra,
                                             margin))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, LayersFileError):
            raise
        raise LayersFileError(f"{path}: malformed ({type(exc).__name__}: {exc})") from None
    if not references:
        raise LayersFileError(f"{path}: no reference frames")
    return LayersFile(kind, width, height, references, data.get("glb"), path.parent)


def read_layer_mesh(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A layer's mesh file: vertices (N, 3) float32, uv (N, 2) float32, faces (M, 3) int32, grid (2,) int32."""
    with np.load(path, allow_pickle=False) as f:
        mesh = {k: f[k] for k in ("vertices", "uv", "faces", "grid")}
    rows, cols = (int(v) for v in mesh["grid"])
    if mesh["vertices"].shape != (rows * cols, 3) or mesh["uv"].shape != (rows * cols, 2):
        raise LayersFileError(f"{path}: vertices/uv do not match the {rows}x{cols} grid")
    if mesh["faces"].size and (mesh["faces"].min() < 0 or mesh["faces"].max() >= rows * cols):
        raise LayersFileError(f"{path}: face indices out of range")
    return mesh
