"""Depth maps for other packages' compositors and viewers, and point clouds unprojected from depth.
numpy + OpenEXR + the standard library (no torch, no bpy), so the add-on can use the same code.

    write_compositor_depth(path, depth, layer=None, units="world units", grey=False)
        float32 EXR, one channel "Z" (Nuke reads it as depth.Z), or with `layer="depth"` the channel
        "depth.Z" (Nuke's depth layer spelled out). `grey=True` adds the same values as channel "Y": Blender
        4.5 loads a lone "Z" channel of a single-part EXR as garbage (measured: uninitialised values) and a
        lone "depth.Z" not at all, but reads "Y" as a grey float image whose every colour channel is the
        depth -- that is the file its Image node and compositor use. The header says what the values are:
        "shotfieldDepth" = "planar" (along the optical axis, not ray length), "shotfieldUnits" = units, and
        "shotfieldUnknown" = what marks no depth ("inf").
    read_compositor_depth(path) -> (H, W) float32 from "Z" or any "<layer>.Z" channel.
    write_disparity_png(path, depth, near=None, far=None) -> (near, far)
        16-bit grayscale PNG of disparity 1/Z mapped linearly so that `near` is 65535 and `far` is 1
        (0 = unknown): for image viewers; not for compositing (use the EXR).
    depth_to_points(depth, K, world_from_camera, rgb=None, step=1) -> (points (N, 3), colours (N, 3) uint8)
        OpenCV pinhole unprojection at pixel centres (i + 0.5), into the world of cameras.json.
    write_frame_points(path, depth, K, world_from_camera, rgb, step=1) -> N: a coloured PLY of one frame.
"""
from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from . import ply
from .atomic import atomic_path, write_bytes

PLANAR = "planar"


def write_compositor_depth(path: str | os.PathLike, depth: np.ndarray, layer: str | None = None,
                           units: str = "world units", compression: str = "ZIP", grey: bool = False) -> None:
    """Planar depth (H, W) -> a single-channel float32 EXR ("Z" or "<layer>.Z"), unknown pixels as inf."""
    import OpenEXR

    depth = np.asarray(depth, np.float32)
    assert depth.ndim == 2, depth.shape
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(np.inf)).astype(np.float32)
    name = f"{layer}.Z" if layer else "Z"
    header = {"compression": getattr(OpenEXR, f"{compression}_COMPRESSION"), "type": OpenEXR.scanlineimage,
              "shotfieldDepth": PLANAR, "shotfieldUnits": str(units), "shotfieldUnknown": "inf"}
    with atomic_path(path) as tmp:
        channels = {name: np.ascontiguousarray(depth)}
        if grey:
            channels["Y"] = channels[name]
        with OpenEXR.File(header, channels) as f:
            f.write(str(tmp))


def read_compositor_depth(path: str | os.PathLike) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        channels = f.channels()
        name = "Z" if "Z" in channels else next((n for n in channels if n.endswith(".Z")), None)
        if name is None:
            raise ValueError(f"{path}: no 'Z' or '<layer>.Z' channel (has {sorted(channels)})")
        return np.asarray(channels[name].pixels, np.float32)


def exr_header(path: str | os.PathLike) -> dict:
    import OpenEXR

    with OpenEXR.File(str(path), header_only=True) as f:
        return dict(f.header())


def disparity_range(depth: np.ndarray) -> tuple[float, float]:
    """(near, far): the 1st and 99th percentiles of the known depths."""
    known = depth[np.isfinite(depth) & (depth > 0)]
    if known.size == 0:
        return 1.0, 2.0
    near, far = np.percentile(known, [1, 99])
    return float(near), float(max(far, near * 1.001))


def write_disparity_png(path: str | os.PathLike, depth: np.ndarray, near: float | None = None,
                        far: float | None = None) -> tuple[float, float]:
    """16-bit PNG: 65535 at `near`, 1 at `far`, linear in disparity between (clamped), 0 where unknown."""
    depth = np.asarray(depth, np.float64)
    if near is None or far is None:
        near, far = disparity_range(depth)
    known = np.isfinite(depth) & (depth > 0)
    disp = np.where(known, 1.0 / np.where(known, depth, 1.0), 0.0)
    lo, hi = 1.0 / far, 1.0 / near
    value = np.clip((disp - lo) / (hi - lo), 0.0, 1.0) * 65534 + 1
    write_bytes(path, _png16(np.where(known, np.rint(value), 0).astype(np.uint16)))
    return near, far


def read_disparity_png(path: str | os.PathLike, near: float, far: float) -> np.ndarray:
    """The inverse of write_disparity_png: depth (H, W) float64, inf where unknown (0 in the file)."""
    value = _read_png16(path).astype(np.float64)
    lo, hi = 1.0 / far, 1.0 / near
    disp = lo + (value - 1) / 65534 * (hi - lo)
    return np.where(value > 0, 1.0 / np.maximum(disp, 1e-30), np.inf)


def _png16(image: np.ndarray) -> bytes:
    """Grayscale 16-bit PNG (big-endian samples, filter 0 per row), written with zlib only."""
    h, w = image.shape
    rows = np.zeros((h, 1 + 2 * w), np.uint8)
    rows[:, 1:] = image.astype(">u2").view(np.uint8).reshape(h, 2 * w)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def _read_png16(path: str | os.PathLike) -> np.ndarray:
    """Reads what _png16 writes (16-bit grayscale, filter 0 rows, one or more IDAT chunks)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, size = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            w, h, bits, colour = struct.unpack(">IIBB", body[:10])
            if bits != 16 or colour != 0:
                raise ValueError(f"{path}: not a 16-bit grayscale PNG")
            size = (h, w)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    h, w = size
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 2 * w)
    if np.any(rows[:, 0] != 0):
        raise ValueError(f"{path}: filtered rows are not supported by this reader")
    return rows[:, 1:].copy().view(">u2").reshape(h, w).astype(np.uint16)


def depth_to_points(depth: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray, rgb: np.ndarray | None = None,
                    step: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
    """Known pixels (every `step`-th row and column) -> world points (N, 3) float32 and their colours."""
    depth = np.asarray(depth, np.float64)[::step, ::step]
    h, w = depth.shape
    ys, xs = np.mgrid[0:h, 0:w]
    u, v = xs * step + 0.5, ys * step + 0.5
    known = np.isfinite(depth) & (depth > 0)
    z = depth[known]
    cam = np.stack([(u[known] - K[0, 2]) / K[0, 0] * z, (v[known] - K[1, 2]) / K[1, 1] * z, z], -1)
    world = cam @ world_from_camera[:3, :3].T + world_from_camera[:3, 3]
    colours = None if rgb is None else np.asarray(rgb)[::step, ::step][known].astype(np.uint8)
    return world.astype(np.float32), colours


def write_frame_points(path: str | os.PathLike, depth: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray,
                       rgb: np.ndarray | None = None, step: int = 1) -> int:
    """One frame's depth as a coloured PLY (exporters.ply's format); returns the number of points."""
    points, colours = depth_to_points(depth, K, world_from_camera, rgb, step)
    ply.write_points(path, points, colours, comment="shotfield depth: one frame unprojected")
    return len(points)
