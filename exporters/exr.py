"""Single-part float32 EXR images through the OpenEXR bindings (no torch, no bpy).

Depth maps use one channel "Z" (planar depth, world units; 0 or inf where unknown); flow and other
multi-channel images use named channels. Written atomically.
"""
from __future__ import annotations

import os

import numpy as np

from .atomic import atomic_path


def write_exr(path: str | os.PathLike, channels: dict[str, np.ndarray], compression: str = "ZIP") -> None:
    """Write float32 channels, each (H, W), into one EXR image part."""
    import OpenEXR  # imported here: only the EXR writers need it

    arrays = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in channels.items()}
    shapes = {a.shape for a in arrays.values()}
    assert len(shapes) == 1 and len(next(iter(shapes))) == 2, shapes
    header = {"compression": getattr(OpenEXR, f"{compression}_COMPRESSION"), "type": OpenEXR.scanlineimage}
    with atomic_path(path) as tmp:
        with OpenEXR.File(header, arrays) as f:
            f.write(str(tmp))


def read_exr(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All channels of the first part, as float32 (H, W) arrays keyed by channel name."""
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {name: np.asarray(ch.pixels, dtype=np.float32) for name, ch in f.channels().items()}


def exr_size(path: str | os.PathLike) -> tuple[int, int]:
    """(W, H) of the first part, from the header alone (no pixels are decoded)."""
    import OpenEXR

    with OpenEXR.File(str(path), header_only=True) as f:
        (x0, y0), (x1, y1) = f.header()["dataWindow"]
    return int(x1 - x0 + 1), int(y1 - y0 + 1)


def write_depth_exr(path: str | os.PathLike, depth: np.ndarray) -> None:
    """Planar depth (H, W) -> EXR channel "Z"."""
    write_exr(path, {"Z": depth})


def read_depth_exr(path: str | os.PathLike) -> np.ndarray:
    channels = read_exr(path)
    if "Z" not in channels:
        raise ValueError(f"{path}: no 'Z' channel (has {sorted(channels)})")
    return channels["Z"]
