#!/usr/bin/env python3
"""Render a synthetic test shot with Blender (bpy + Cycles on the CPU) and its exact ground truth.

Usage (both forms take the same options; arguments after ``--`` are used when ``--`` is present)::

    python scripts/make_test_shot.py --out DIR [--frames 24] [--width 160] [--height 120] [--objects 2]
        [--seed 0] [--samples 1] [--supersample 3] [--large-object] [--tripod] [--low-texture] [--zoom]
    blender -b --python scripts/make_test_shot.py -- --out DIR ...   (numpy + OpenEXR must be importable)

The scene is built from Python alone: a Z-up world with the ground at Z = 0, a back wall filling the view,
boxes and columns at several depths, up to two independently moving objects (1: a ball that rolls across,
2: a crate that hops and turns; ``--large-object`` makes the ball cover about half the frame), and a
hand-held camera (lateral move with wobble), or a pure-rotation pan (``--tripod``), optionally zooming
(``--zoom``). Every surface is an emission shader: a procedural texture times a fake Lambert term computed
from the object-space normal. Shading is therefore view-independent, shadow-free, noise-free, and attached
to each surface, so brightness constancy holds exactly, also on the moving objects.

Exactness: each view is rendered once at ``S x`` the size (``--supersample S``, odd) with one Cycles sample
per sub-pixel at that sub-pixel's centre (box filter of width 0.01). The colour of a pixel is the mean of its
S x S block (a box-filtered, anti-aliased image); depth and object index are those of the block's centre
sub-pixel, which is the pixel centre exactly. With ``--samples N > 1`` sub-pixels are box-filtered over their
own area (smoother colour) and depth/index come from a jittered sample within +-0.5/S px of the centre.

Output, under DIR (``shot.json`` is written last: its presence means the shot is complete)::

    frames/00000.png        the footage, 8-bit sRGB (Standard view transform: the plain sRGB curve)
    gt/cameras.json         exporters.cameras_json schema, OpenCV convention, extra top-level key "fps";
                            K from the Blender lens (horizontal sensor fit, principal point centred)
    gt/depth/00000.exr      float32 planar depth along the optical axis, channel "Z", world units; inf = no hit
    gt/object_index/00000.png  uint8: 0 = static set, k = moving object k
    gt/flow.npz             forward (F-1,H,W,2) float32: pixel displacement from frame t to t+1 of every pixel
                              centre of frame t; forward_visible (F-1,H,W) bool: the point is in frame t+1 and
                              not occluded there; scene_flow (F-1,H,W,3) float32: world displacement t -> t+1
                              (0 on the static set); backward, backward_visible: the same from t+1 to t
    gt/tracks.npz           TAP-Vid style: queries (N,3) float32 [frame, x, y] at pixel centres on the first,
                              middle and a late frame, some on each moving object; query_object (N,) int32;
                              xy (F,N,2) float32 pixels; visible (F,N) bool (in frame, not occluded);
                              world (F,N,3) float32 world position (moving with its object)
    gt/clean/00000.png      clean plates: the same shot rendered without the moving objects
    gt/heldout/frames/00000.png, gt/heldout/depth/00000.exr, gt/heldout/object_index/00000.png,
    gt/heldout/cameras.json views from cameras offset sideways/up from the path; each frame has a "time"
                            (the shot frame whose object poses it shows)
    shot.json               {"format": "shotfield-test-shot", "version", "options", "fps", "frame_count",
                             "width", "height", "lens_mm" [F], "objects": [{"index", "name", "kind",
                             "world_from_object" [F][4][4]}], "static_objects", "heldout_times",
                             "render_seconds", "total_seconds"}

Pixel coordinates follow exporters/conventions.py: (0, 0) is the top-left corner of the top-left pixel,
pixel centres are at (i + 0.5, j + 0.5). Flow and tracks are derived analytically: a pixel is unprojected
with its GT depth, moved with its object's rigid motion (``world_from_object(t1) @ inv(world_from_object(t0))``)
and projected with the other camera; visibility compares the projected depth with the other view's depth map.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import tempfile
import time
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from exporters import conventions  # noqa: E402
from exporters.atomic import atomic_path, write_json  # noqa: E402
from exporters.cameras_json import CameraFrame, Cameras, write_cameras  # noqa: E402
from exporters.exr import read_exr, write_depth_exr  # noqa: E402

FORMAT_VERSION = 1
BIG_DEPTH = 1e6          # stands in for inf (no hit) in the arithmetic
LIGHT_DIR = np.array([0.35, -0.55, 0.75]) / np.linalg.norm([0.35, -0.55, 0.75])


def _opt(default, text: str):
    return field(default=default, metadata={"help": text})


@dataclass
class ShotOptions:
    """What to render; each field is a command-line flag (``large_object`` -> ``--large-object``)."""

    out: str = _opt("", "output folder (required)")
    frames: int = _opt(24, "number of frames")
    width: int = _opt(160, "image width in pixels")
    height: int = _opt(120, "image height in pixels")
    objects: int = _opt(2, "independently moving objects: 0, 1 (ball) or 2 (ball and crate)")
    seed: int = _opt(0, "seeds textures, camera wobble and track sampling")
    samples: int = _opt(1, "Cycles samples per sub-pixel; 1 puts depth and index exactly at pixel centres")
    supersample: int = _opt(3, "odd factor S: render at S x the size, colour = mean of S x S sub-pixels")
    fps: float = _opt(24.0, "frame rate written to cameras.json and shot.json")
    large_object: bool = _opt(False, "the ball covers about half the frame")
    tripod: bool = _opt(False, "pure rotation pan, no camera translation")
    low_texture: bool = _opt(False, "faint, large-scale textures")
    zoom: bool = _opt(False, "focal length 28 -> 44 mm over the shot")
    heldout: int = _opt(4, "number of held-out views")
    tracks_per_frame: int = _opt(40, "static-set query points per query frame (plus 12 per moving object)")
    save_blend: bool = _opt(False, "also save DIR/scene.blend")
    verbose: bool = _opt(False, "show Blender's render log")


def parse_args(argv: list[str] | None = None) -> ShotOptions:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:  # blender -b --python make_test_shot.py -- --out DIR
        argv = argv[argv.index("--") + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for f in fields(ShotOptions):
        flag, help = "--" + f.name.replace("_", "-"), f.metadata["help"]
        if f.name == "out":
            p.add_argument(flag, required=True, help=help)
        elif isinstance(f.default, bool):
            p.add_argument(flag, action="store_true", help=help)
        else:
            p.add_argument(flag, type=type(f.default), default=f.default, help=f"{help} (default {f.default})")
    opts = ShotOptions(**vars(p.parse_args(argv)))
    if opts.objects not in (0, 1, 2) or opts.frames < 2 or opts.supersample < 1 or opts.supersample % 2 == 0:
        p.error("need --objects in {0,1,2}, --frames >= 2 and an odd --supersample")
    return opts


# --------------------------------------------------------------------------------------------- motion (numpy)
def _smoothstep(u: float) -> float:
    return u * u * (3.0 - 2.0 * u)


def _axis_angle(axis, angle: float) -> np.ndarray:
    """(3, 3) rotation by `angle` radians about `axis` (Rodrigues)."""
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _pose(rotation: np.ndarray, translation) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rotation, translation
    return m


def look_at_opencv(eye, target) -> np.ndarray:
    """OpenCV world_from_camera (4, 4) at `eye` looking at `target`, world Z up (x right, y down, z forward)."""
    f = np.asarray(target, float) - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    return _pose(np.stack([r, np.cross(f, r), f], axis=1), eye)


@dataclass
class ObjectSpec:
    index: int     # object index k >= 1 (pass_index)
    name: str
    kind: str      # "sphere" | "box"
    size: float    # radius (sphere) or edge length (box)


class Motion:
    """Analytic, smooth camera and object motion as functions of time t in frames (0 .. F-1)."""

    def __init__(self, opts: ShotOptions):
        self.opts = opts
        self.phases = np.random.default_rng(opts.seed).uniform(0, 2 * np.pi, (6, 4))
        ball = ObjectSpec(1, "ball", "sphere", 1.2 if opts.large_object else 0.5)
        crate = ObjectSpec(2, "crate", "box", 0.9)
        self.objects = [ball, crate][:opts.objects]

    def _u(self, t: float) -> float:
        return t / max(self.opts.frames - 1, 1)

    def _wobble(self, t: float) -> np.ndarray:
        """(6,) hand-held wobble: sines at 0.6, 1.1 and 1.9 Hz (together within [-1, 1]) plus a 4.3 Hz jitter
        of amplitude 0.35, so that the flow also changes from one frame to the next."""
        s = t / self.opts.fps
        w = np.array([1.0, 0.5, 0.25, 0.6]) / 1.75
        return (w * np.sin(2 * np.pi * np.array([0.6, 1.1, 1.9, 4.3]) * s + self.phases)).sum(1)

    def lens_mm(self, t: float) -> float:
        return 28.0 + 16.0 * _smoothstep(self._u(t)) if self.opts.zoom else 32.0

    def camera(self, t: float) -> np.ndarray:
        """OpenCV world_from_camera (4, 4) at time t."""
        u, w = self._u(t), self._wobble(t)
        if self.opts.tripod:
            eye = np.array([0.2, -5.3, 1.5])
            yaw = math.radians(-16.0 + 32.0 * _smoothstep(u))
            pose = look_at_opencv(eye, eye + [math.sin(yaw), math.cos(yaw), -0.1])
            wob = np.radians([0.3, 0.3, 0.4]) * w[3:]
        else:
            eye = np.array([-1.5 + 3.0 * u, -5.3 + 0.7 * u, 1.5 + 0.06 * math.sin(math.pi * u)])
            eye += np.array([0.03, 0.03, 0.025]) * w[:3]
            pose = look_at_opencv(eye, [-0.4 + 0.8 * u, 3.0, 0.8])
            wob = np.radians([0.8, 0.8, 0.8]) * w[3:]
        rot = _axis_angle([1, 0, 0], wob[0]) @ _axis_angle([0, 1, 0], wob[1]) @ _axis_angle([0, 0, 1], wob[2])
        pose[:3, :3] = pose[:3, :3] @ rot
        return pose

    def object(self, k: int, t: float) -> np.ndarray:
        """world_from_object (4, 4) of moving object k at time t."""
        u = self._u(t)
        if k == 1:
            r = self.objects[0].size
            x0, x1, y = (-1.4, 0.8, -1.8) if self.opts.large_object else (-2.0, 1.6, 0.8)
            x = x0 + (x1 - x0) * u
            angle = 0.8 * (x - x0) / r  # rolls (a little slower than without slipping)
            return _pose(_axis_angle([0.0, 1.0, 0.3], angle), [x, y, r + 0.02])
        if k == 2:
            rot = _axis_angle([0, 0, 1], 1.4 * u) @ _axis_angle([1, 0, 0], 0.3 * math.sin(math.pi * u))
            return _pose(rot, [2.3 - 1.4 * u, 2.6 - 1.0 * u, 0.45 + 0.3 * math.sin(math.pi * u)])
        raise ValueError(f"no moving object {k}")

    def heldout_views(self) -> list[tuple[int, np.ndarray]]:
        """[(time, world_from_camera)]: the path's camera at `time`, moved right/up (camera axes) off the path."""
        offsets = [(0.4, 0.0), (-0.4, 0.25), (0.0, 0.35), (0.3, 0.2)]
        times = np.round(np.linspace(0.15, 0.85, self.opts.heldout) * (self.opts.frames - 1)).astype(int)
        views = []
        for n, t in enumerate(times):
            pose = self.camera(float(t))
            right, up = offsets[n % len(offsets)]
            pose[:3, 3] += pose[:3, 0] * right - pose[:3, 1] * up  # OpenCV y points down
            views.append((int(t), pose))
        return views


# ------------------------------------------------------------------------------------- analytic GT (numpy)
@dataclass
class FlowGT:
    forward: np.ndarray           # (F-1, H, W, 2) float32, pixels, t -> t+1
    forward_visible: np.ndarray   # (F-1, H, W) bool
    scene_flow: np.ndarray        # (F-1, H, W, 3) float32, world units per frame
    backward: np.ndarray          # (F-1, H, W, 2) float32, pixels, t+1 -> t (indexed by t)
    backward_visible: np.ndarray  # (F-1, H, W) bool


@dataclass
class TracksGT:
    queries: np.ndarray       # (N, 3) float32 [frame, x, y]
    query_object: np.ndarray  # (N,) int32 object index of the query point
    xy: np.ndarray            # (F, N, 2) float32
    visible: np.ndarray       # (F, N) bool
    world: np.ndarray         # (F, N, 3) float32


def _finite_depth(depth: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(depth) & (depth > 0), depth, BIG_DEPTH)


def depth_slopes(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel |d depth / dx| and |d depth / dy| (H, W) on smooth surfaces: the smaller one-sided difference,
    so that a depth edge does not count as slope. Capped at 20 % of the depth per pixel."""
    d = _finite_depth(depth)
    out = []
    for axis in (1, 0):
        diff = np.abs(np.diff(d, axis=axis))
        edge = np.full_like(np.take(d, [0], axis=axis), np.inf)
        one_sided = np.minimum(np.concatenate([diff, edge], axis), np.concatenate([edge, diff], axis))
        out.append(np.minimum(one_sided, 0.2 * d))
    return out[0], out[1]


def visible_at(xy: np.ndarray, z: np.ndarray, obj: np.ndarray, depth: np.ndarray, object_index: np.ndarray,
               rel_tol: float = 0.01) -> np.ndarray:
    """Whether points seen at pixels `xy` (N, 2) with planar depth `z` (N,) and object index `obj` (N,) are
    visible in a view with `depth` and `object_index` maps (H, W): in frame, in front of the camera, and one of
    the 4 pixel centres around xy shows the same object at depth z (within rel_tol + the local depth slope)."""
    h, w = depth.shape
    d = _finite_depth(depth)
    sx, sy = depth_slopes(depth)
    z = np.where(np.isfinite(z), z, BIG_DEPTH)
    ok = np.isfinite(xy).all(1) & (z > 0) & (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    x, y = np.nan_to_num(xy[:, 0]) - 0.5, np.nan_to_num(xy[:, 1]) - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    match = np.zeros_like(ok)
    for cx in (x0, x0 + 1):
        for cy in (y0, y0 + 1):
            cxc, cyc = np.clip(cx, 0, w - 1), np.clip(cy, 0, h - 1)
            tol = rel_tol * z + np.abs(cxc - x) * sx[cyc, cxc] + np.abs(cyc - y) * sy[cyc, cxc]
            match |= (object_index[cyc, cxc] == obj) & (np.abs(d[cyc, cxc] - z) <= tol)
    return ok & match


def move_points(points: np.ndarray, obj: np.ndarray, object_poses: np.ndarray, t0: int, t1: int) -> np.ndarray:
    """World points (N, 3) on objects `obj` (N,) (0 = static) at time t0 -> their positions at time t1.
    object_poses: (K, F, 4, 4) world_from_object of moving objects 1..K."""
    out = np.array(points, dtype=np.float64)
    for k in np.unique(obj[obj > 0]):
        m = object_poses[k - 1, t1] @ np.linalg.inv(object_poses[k - 1, t0])
        sel = obj == k
        out[sel] = points[sel] @ m[:3, :3].T + m[:3, 3]
    return out


class Correspondence(NamedTuple):
    xy1: np.ndarray      # (H, W, 2) where each pixel centre of frame t0 lands in frame t1, pixels
    visible: np.ndarray  # (H, W) bool, visible in frame t1
    points0: np.ndarray  # (H, W, 3) world points at t0
    points1: np.ndarray  # (H, W, 3) the same points at t1


def pixel_correspondence(K, world_from_camera, depth, object_index, object_poses, t0: int, t1: int) -> Correspondence:
    """Where every pixel centre of frame t0 goes in frame t1 (arguments as in `derive_flow`)."""
    h, w = depth.shape[1:]
    obj = object_index[t0].reshape(-1).astype(np.int64)
    p0 = conventions.unproject_depth(K[t0], world_from_camera[t0], _finite_depth(depth[t0])).reshape(-1, 3)
    p1 = move_points(p0, obj, object_poses, t0, t1)
    xy1, z1 = conventions.project_points(K[t1], world_from_camera[t1], p1)
    vis = visible_at(xy1, z1, obj, depth[t1], object_index[t1])
    return Correspondence(xy1.reshape(h, w, 2), vis.reshape(h, w), p0.reshape(h, w, 3), p1.reshape(h, w, 3))


def derive_flow(K, world_from_camera, depth, object_index, object_poses) -> FlowGT:
    """Analytic optical flow and scene flow between consecutive frames.

    K (F, 3, 3), world_from_camera (F, 4, 4) OpenCV, depth (F, H, W) planar (inf = no hit), object_index
    (F, H, W) int, object_poses (K, F, 4, 4) world_from_object."""
    f, h, w = depth.shape
    centres = np.stack(conventions.pixel_centres(w, h), axis=-1)
    fwd, fvis, sflow, bwd, bvis = [], [], [], [], []
    for t in range(f - 1):
        xy1, vis, p0, p1 = pixel_correspondence(K, world_from_camera, depth, object_index, object_poses, t, t + 1)
        fwd.append(xy1 - centres)
        fvis.append(vis)
        sflow.append(np.where(np.isfinite(depth[t])[..., None], p1 - p0, 0.0))
        xy0, vis_b, _, _ = pixel_correspondence(K, world_from_camera, depth, object_index, object_poses, t + 1, t)
        bwd.append(xy0 - centres)
        bvis.append(vis_b)
    f32 = lambda a, c: np.asarray(a, dtype=np.float32).reshape(f - 1, h, w, c)  # noqa: E731
    b = lambda a: np.asarray(a, dtype=bool).reshape(f - 1, h, w)  # noqa: E731
    return FlowGT(f32(fwd, 2), b(fvis), f32(sflow, 3), f32(bwd, 2), b(bvis))


def sample_queries(depth, object_index, query_frames, n_static: int, n_per_object: int, seed: int = 0):
    """Query pixels away from image borders and depth/object edges: (queries (N, 3) [frame, x, y], obj (N,))."""
    rng = np.random.default_rng(seed + 1)
    rows = []
    for t in query_frames:
        d, ids = _finite_depth(depth[t]), object_index[t]
        good = np.isfinite(depth[t])
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                nb = np.roll(np.roll(ids, dy, 0), dx, 1)
                nd = np.roll(np.roll(d, dy, 0), dx, 1)
                good &= (nb == ids) & (np.abs(nd - d) < 0.05 * d)
        good[:2], good[-2:], good[:, :2], good[:, -2:] = False, False, False, False
        for k in np.unique(ids):
            ys, xs = np.nonzero(good & (ids == k))
            n = min(n_static if k == 0 else n_per_object, len(xs))
            pick = rng.choice(len(xs), n, replace=False)
            rows += [(t, xs[i] + 0.5, ys[i] + 0.5, k) for i in pick]
    rows = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return rows[:, :3].astype(np.float32), rows[:, 3].astype(np.int32)


def derive_tracks(queries, query_object, K, world_from_camera, depth, object_index, object_poses) -> TracksGT:
    """Analytic tracks of query points (at pixel centres) attached to their surface in the object's frame."""
    f = depth.shape[0]
    n = len(queries)
    xy = np.zeros((f, n, 2))
    world = np.zeros((f, n, 3))
    visible = np.zeros((f, n), bool)
    p_query = np.zeros((n, 3))
    for i, (tq, x, y) in enumerate(queries.astype(np.float64)):
        d = depth[int(tq), int(y), int(x)]
        ray = np.linalg.inv(K[int(tq)]) @ [x, y, 1.0]
        p_query[i] = world_from_camera[int(tq)][:3, :3] @ (ray * d) + world_from_camera[int(tq)][:3, 3]
    for t in range(f):
        for tq in np.unique(queries[:, 0].astype(int)):
            sel = queries[:, 0].astype(int) == tq
            world[t, sel] = move_points(p_query[sel], query_object[sel], object_poses, tq, t)
        xy[t], z = conventions.project_points(K[t], world_from_camera[t], world[t])
        visible[t] = visible_at(xy[t], z, query_object, depth[t], object_index[t])
    for i, (tq, x, y) in enumerate(queries):
        xy[int(tq), i], visible[int(tq), i] = (x, y), True
    return TracksGT(queries.astype(np.float32), query_object, xy.astype(np.float32), visible,
                    world.astype(np.float32))


# -------------------------------------------------------------------------------------------- image files
def srgb_from_linear(rgb: np.ndarray) -> np.ndarray:
    """Scene-linear (..., 3) -> 8-bit sRGB (the Standard view transform), uint8."""
    c = np.clip(rgb, 0.0, 1.0)
    s = np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    return np.round(s * 255.0).astype(np.uint8)


def write_png(path, image: np.ndarray) -> None:
    """8-bit grey (H, W) or RGB (H, W, 3) PNG with zlib only (no OpenCV needed inside Blender)."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = img.shape[:2]
    colour_type = 0 if img.ndim == 2 else 2
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, -1)], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)


def save_npz(path, **arrays) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


# ---------------------------------------------------------------------------------------- Blender scene
def _material(name: str, rng: np.random.Generator, scale: float, low_texture: bool):
    """Emission material: procedural texture (object coordinates) x fake Lambert term (object-space normal)."""
    import bpy

    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()

    def node(kind, **inputs):
        n = nodes.new(kind)
        for key, value in inputs.items():
            n.inputs[key].default_value = value
        return n

    def mix(a, b, factor, blend="MIX"):  # ShaderNodeMix in RGBA mode: inputs 0 = factor, 6 = A, 7 = B
        n = nodes.new("ShaderNodeMix")
        n.data_type, n.blend_type = "RGBA", blend
        for idx, v in ((0, factor), (6, a), (7, b)):
            links.new(v, n.inputs[idx]) if hasattr(v, "links") else setattr(n.inputs[idx], "default_value", v)
        return n.outputs[2]

    coord = node("ShaderNodeTexCoord")
    offset = node("ShaderNodeVectorMath")
    offset.inputs[1].default_value = tuple(rng.uniform(-50, 50, 3))
    links.new(coord.outputs["Object"], offset.inputs[0])
    hue = rng.uniform(0, 1)
    col_a = (*_hsv(hue, 0.6, 0.75), 1.0)
    col_b = (*_hsv((hue + rng.uniform(0.3, 0.6)) % 1, 0.7, 0.08), 1.0)
    if low_texture:
        noise = node("ShaderNodeTexNoise", Scale=scale * 0.08, Detail=0.0)
        links.new(offset.outputs[0], noise.inputs["Vector"])
        fac = node("ShaderNodeMapRange", **{"From Min": 0.0, "From Max": 1.0, "To Min": 0.45, "To Max": 0.55})
        links.new(noise.outputs["Fac"], fac.inputs[0])
        albedo = mix(col_a, (*_hsv(hue, 0.5, 0.6), 1.0), fac.outputs[0])
    else:
        noise = node("ShaderNodeTexNoise", Scale=scale, Detail=4.0, Roughness=0.55)
        voronoi = node("ShaderNodeTexVoronoi", Scale=scale * 0.7)
        for n in (noise, voronoi):
            links.new(offset.outputs[0], n.inputs["Vector"])
        fac = node("ShaderNodeMapRange", **{"From Min": 0.3, "From Max": 0.7})
        links.new(noise.outputs["Fac"], fac.inputs[0])
        cells = node("ShaderNodeMapRange", **{"From Min": 0.0, "From Max": 0.6, "To Min": 0.3, "To Max": 1.0})
        links.new(voronoi.outputs["Distance"], cells.inputs[0])
        albedo = mix(mix(col_b, col_a, fac.outputs[0]), cells.outputs[0], 1.0, "MULTIPLY")
    dot = nodes.new("ShaderNodeVectorMath")
    dot.operation = "DOT_PRODUCT"
    dot.inputs[1].default_value = tuple(LIGHT_DIR)
    links.new(coord.outputs["Normal"], dot.inputs[0])
    lambert = node("ShaderNodeMath", **{})
    lambert.operation, lambert.use_clamp = "MULTIPLY_ADD", True
    lambert.inputs[1].default_value, lambert.inputs[2].default_value = 0.5, 0.5
    links.new(dot.outputs["Value"], lambert.inputs[0])
    emission = node("ShaderNodeEmission", Strength=1.0)
    links.new(mix(albedo, lambert.outputs[0], 1.0, "MULTIPLY"), emission.inputs["Color"])
    links.new(emission.outputs[0], nodes.new("ShaderNodeOutputMaterial").inputs["Surface"])
    return mat


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb(h, s, v)


def _mesh_object(name, verts, faces, material, pass_index=0, smooth=False):
    import bpy

    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([tuple(map(float, v)) for v in verts], [], faces)
    mesh.update()
    if smooth:
        mesh.shade_smooth()
    mesh.materials.append(material)
    obj = bpy.data.objects.new(name, mesh)
    obj.pass_index = pass_index
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _box(center, size):
    c, s = np.asarray(center, float), np.asarray(size, float) / 2
    verts = [c + s * [2 * (i & 1) - 1, 2 * (i >> 1 & 1) - 1, 2 * (i >> 2 & 1) - 1] for i in range(8)]
    faces = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]  # outward
    return verts, faces


def _cylinder(x, y, radius, height, n=20):
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([x + radius * np.cos(ang), y + radius * np.sin(ang)], 1)
    verts = [(*p, 0.0) for p in ring] + [(*p, height) for p in ring]
    faces = [(i, (i + 1) % n, n + (i + 1) % n, n + i) for i in range(n)] + [tuple(range(n, 2 * n))]
    return verts, faces


def _sphere(radius, rings=16, segments=32):
    th = np.linspace(0, np.pi, rings + 1)[1:-1]
    ph = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    verts = [(0, 0, radius)] + [(radius * math.sin(a) * math.cos(b), radius * math.sin(a) * math.sin(b),
                                 radius * math.cos(a)) for a in th for b in ph] + [(0, 0, -radius)]
    ring = lambda r, s: 1 + r * segments + s % segments  # noqa: E731
    faces = [(0, ring(0, s), ring(0, s + 1)) for s in range(segments)]
    faces += [(ring(r, s), ring(r + 1, s), ring(r + 1, s + 1), ring(r, s + 1))
              for r in range(rings - 2) for s in range(segments)]
    faces += [(len(verts) - 1, ring(rings - 2, s + 1), ring(rings - 2, s)) for s in range(segments)]
    return verts, faces


STATIC_BOXES = [((-2.6, 4.5, 0.8), (1.4, 1.0, 1.6)), ((2.8, 5.5, 1.2), (1.2, 1.2, 2.4)),
                ((-0.8, 6.8, 0.5), (2.0, 0.6, 1.0)), ((3.4, 1.2, 0.45), (0.8, 0.8, 0.9)),
                ((-3.3, -0.6, 0.55), (0.9, 0.9, 1.1))]
STATIC_COLUMNS = [(0.3, -0.5, 0.22, 2.6), (-1.5, 2.6, 0.3, 3.5), (1.8, 3.8, 0.25, 3.0)]


def build_set(opts: ShotOptions, rng: np.random.Generator) -> list[str]:
    """The static set (object index 0): ground (Z = 0), back wall, boxes and columns. Returns object names."""
    lt = opts.low_texture
    objs = [_mesh_object("ground", [(-30, -12, 0), (30, -12, 0), (30, 9, 0), (-30, 9, 0)], [(0, 1, 2, 3)],
                         _material("ground", rng, 2.5, lt)),
            _mesh_object("wall", [(-30, 9, 0), (30, 9, 0), (30, 9, 11), (-30, 9, 11)], [(0, 1, 2, 3)],
                         _material("wall", rng, 2.0, lt))]
    for n, (center, size) in enumerate(STATIC_BOXES):
        objs.append(_mesh_object(f"box{n}", *_box(center, size), _material(f"box{n}", rng, 5.0, lt)))
    for n, (x, y, r, hgt) in enumerate(STATIC_COLUMNS):
        objs.append(_mesh_object(f"column{n}", *_cylinder(x, y, r, hgt), _material(f"column{n}", rng, 6.0, lt)))
    return [o.name for o in objs]


def add_moving_objects(motion: Motion, rng: np.random.Generator) -> dict:
    """Moving objects, meshes centred on their own origin; pass_index = object index k. Returns {k: object}."""
    out = {}
    for spec in motion.objects:
        geo = _sphere(spec.size) if spec.kind == "sphere" else _box((0, 0, 0), (spec.size,) * 3)
        mat = _material(spec.name, rng, max(3.0 / spec.size, 5.0) if spec.kind == "sphere" else 8.0,
                        motion.opts.low_texture)
        out[spec.index] = _mesh_object(spec.name, *geo, mat, pass_index=spec.index, smooth=spec.kind == "sphere")
    return out


def setup_render(opts: ShotOptions, exr_path: str):
    """Cycles on the CPU, emission only (no bounces), one multilayer EXR with Combined, Depth and IndexOB."""
    import bpy

    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    cy = scene.cycles
    cy.device = "CPU"
    cy.samples, cy.use_adaptive_sampling, cy.use_denoising, cy.seed = opts.samples, False, False, opts.seed
    cy.max_bounces = cy.diffuse_bounces = cy.glossy_bounces = cy.transmission_bounces = 0
    cy.volume_bounces = cy.transparent_max_bounces = 0
    cy.pixel_filter_type = "BOX"
    cy.filter_width = 0.01 if opts.samples == 1 else 1.0  # 0.01: every sample at the sub-pixel centre
    r = scene.render
    r.resolution_x, r.resolution_y = opts.width * opts.supersample, opts.height * opts.supersample
    r.resolution_percentage, r.use_motion_blur, r.film_transparent = 100, False, False
    r.use_persistent_data = True
    r.filepath = exr_path
    r.image_settings.file_format = "OPEN_EXR_MULTILAYER"
    r.image_settings.color_depth, r.image_settings.exr_codec = "32", "NONE"
    scene.view_settings.view_transform = "Standard"
    layer = scene.view_layers[0]
    layer.use_pass_combined = layer.use_pass_z = layer.use_pass_object_index = True
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.3, 0.35, 0.45, 1.0)
    scene.world = world
    cam = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    cam.data.sensor_fit, cam.data.sensor_width = "HORIZONTAL", conventions.DEFAULT_SENSOR_WIDTH_MM
    cam.data.clip_start, cam.data.clip_end = 0.05, 1000.0
    scene.collection.objects.link(cam)
    scene.camera = cam
    return scene, cam


@dataclass
class View:
    rgb: np.ndarray            # (H, W, 3) uint8 sRGB
    depth: np.ndarray          # (H, W) float32 planar, inf = no hit
    object_index: np.ndarray   # (H, W) uint8
    K: np.ndarray              # (3, 3)
    world_from_camera: np.ndarray  # (4, 4) OpenCV, as Blender evaluated it
    object_poses: dict         # {k: (4, 4) world_from_object as Blender evaluated it}


def render_passes(scene, cam, moving: dict, opts: ShotOptions, pose, lens_mm, object_poses: dict) -> View:
    """Render one view; read Combined, Depth and IndexOB back and reduce the S x S sub-pixels."""
    import bpy
    from mathutils import Matrix

    cam.matrix_world = Matrix(conventions.blender_world_from_opencv_world_from_camera(pose).tolist())
    cam.data.lens = lens_mm
    for k, obj in moving.items():
        obj.hide_render = k not in object_poses
        if k in object_poses:
            obj.matrix_world = Matrix(np.asarray(object_poses[k]).tolist())
    bpy.context.view_layer.update()
    with _quiet_stdout(not opts.verbose):
        bpy.ops.render.render(write_still=True)
    ch = read_exr(scene.render.filepath)
    get = lambda suffix: next(v for n, v in ch.items() if n.endswith(suffix))  # noqa: E731
    s, h, w = opts.supersample, opts.height, opts.width
    rgb = np.stack([get(".Combined." + c) for c in "RGB"], -1).reshape(h, s, w, s, 3).mean((1, 3))
    depth = get(".Depth.Z")[s // 2::s, s // 2::s].astype(np.float32)
    depth[depth > 1e9] = np.inf  # Cycles writes 1e10 where a ray hits nothing
    index = np.rint(get(".IndexOB.X")[s // 2::s, s // 2::s]).astype(np.uint8)
    lens = conventions.BlenderLens(cam.data.lens, cam.data.sensor_width, 0.0, 0.0, 1.0, 1.0, w, h)
    return View(srgb_from_linear(rgb), depth, index, conventions.K_from_blender_lens(lens),
                conventions.opencv_world_from_camera_from_blender(np.array(cam.matrix_world)),
                {k: np.array(moving[k].matrix_world) for k in object_poses})


@contextmanager
def _quiet_stdout(enabled: bool):
    """Send the C-level stdout (Blender's render log) to /dev/null while rendering."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


# ------------------------------------------------------------------------------------------------- driver
def render_sequence(scene, cam, moving, motion: Motion, opts: ShotOptions, out: Path):
    """Footage + depth + object index per frame. Returns (K, world_from_camera, depth, index, object_poses)."""
    views = []
    for t in range(opts.frames):
        v = render_passes(scene, cam, moving, opts, motion.camera(t), motion.lens_mm(t),
                          {k: motion.object(k, t) for k in moving})
        write_png(out / f"frames/{t:05d}.png", v.rgb)
        write_depth_exr(out / f"gt/depth/{t:05d}.exr", v.depth)
        write_png(out / f"gt/object_index/{t:05d}.png", v.object_index)
        views.append(v)
    poses = np.array([[v.object_poses[k] for v in views] for k in sorted(moving)]).reshape(-1, opts.frames, 4, 4)
    return (np.stack([v.K for v in views]), np.stack([v.world_from_camera for v in views]),
            np.stack([v.depth for v in views]), np.stack([v.object_index for v in views]), poses)


def render_clean_plates(scene, cam, moving, motion: Motion, opts: ShotOptions, out: Path) -> None:
    for t in range(opts.frames):
        v = render_passes(scene, cam, moving, opts, motion.camera(t), motion.lens_mm(t), {})
        write_png(out / f"gt/clean/{t:05d}.png", v.rgb)


def render_heldout(scene, cam, moving, motion: Motion, opts: ShotOptions, out: Path) -> list[int]:
    frames, times = [], []
    for n, (t, pose) in enumerate(motion.heldout_views()):
        v = render_passes(scene, cam, moving, opts, pose, motion.lens_mm(t), {k: motion.object(k, t) for k in moving})
        write_png(out / f"gt/heldout/frames/{n:05d}.png", v.rgb)
        write_depth_exr(out / f"gt/heldout/depth/{n:05d}.exr", v.depth)
        write_png(out / f"gt/heldout/object_index/{n:05d}.png", v.object_index)
        frames.append(CameraFrame(n, v.K, v.world_from_camera, float(t)))
        times.append(t)
    write_cameras(out / "gt/heldout/cameras.json", Cameras(opts.width, opts.height, frames, {"fps": opts.fps}))
    return times


def generate_shot(opts: ShotOptions) -> dict:
    """Build the scene, render everything, derive and write the ground truth; returns shot.json's content."""
    import bpy

    try:
        import OpenEXR  # noqa: F401  (exporters.exr reads and writes EXR with it)
    except ImportError as exc:
        raise SystemExit("make_test_shot.py needs numpy and OpenEXR: run it with the project's Python, or put "
                         "that environment's site-packages on PYTHONPATH for Blender's Python") from exc
    start = time.time()
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "shot.json").unlink(missing_ok=True)  # an interrupted re-run must not look complete
    bpy.ops.wm.read_factory_settings(use_empty=True)
    rng = np.random.default_rng(opts.seed)
    motion = Motion(opts)
    with tempfile.TemporaryDirectory(prefix="make_test_shot.") as tmp:
        scene, cam = setup_render(opts, str(Path(tmp) / "passes.exr"))
        static_names = build_set(opts, rng)
        moving = add_moving_objects(motion, rng)
        if opts.save_blend:
            bpy.ops.wm.save_as_mainfile(filepath=str(out / "scene.blend"))
        K, poses_cv, depth, index, object_poses = render_sequence(scene, cam, moving, motion, opts, out)
        render_clean_plates(scene, cam, moving, motion, opts, out)
        heldout_times = render_heldout(scene, cam, moving, motion, opts, out)
    render_seconds = time.time() - start
    write_cameras(out / "gt/cameras.json", Cameras(opts.width, opts.height,
                  [CameraFrame(t, K[t], poses_cv[t]) for t in range(opts.frames)], {"fps": opts.fps}))
    flow = derive_flow(K, poses_cv, depth, index, object_poses)
    save_npz(out / "gt/flow.npz", **asdict(flow))
    late = max(1, int(round(0.8 * (opts.frames - 1))))
    queries, qobj = sample_queries(depth, index, sorted({0, (opts.frames - 1) // 2, late}),
                                   opts.tracks_per_frame, 12, opts.seed)
    save_npz(out / "gt/tracks.npz", **asdict(derive_tracks(queries, qobj, K, poses_cv, depth, index, object_poses)))
    shot = {"format": "shotfield-test-shot", "version": FORMAT_VERSION, "options": asdict(opts),
            "fps": opts.fps, "frame_count": opts.frames, "width": opts.width, "height": opts.height,
            "lens_mm": [motion.lens_mm(t) for t in range(opts.frames)],
            "objects": [{"index": s.index, "name": s.name, "kind": s.kind, "size": s.size,
                         "world_from_object": object_poses[s.index - 1].tolist()} for s in motion.objects],
            "static_objects": static_names, "heldout_times": heldout_times,
            "render_seconds": round(render_seconds, 2), "total_seconds": round(time.time() - start, 2)}
    write_json(out / "shot.json", shot)  # last: marks the shot complete
    return shot


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if "bpy" not in sys.modules:  # keep Blender's user files out of ~/.config (read when bpy is imported)
        os.environ.setdefault("BLENDER_USER_RESOURCES", str(Path(tempfile.gettempdir()) / "shotfield-blender-user"))
    shot = generate_shot(opts)
    print(f"make_test_shot: {opts.frames} frames {opts.width}x{opts.height} -> {opts.out} "
          f"(render {shot['render_seconds']:.1f} s, total {shot['total_seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
