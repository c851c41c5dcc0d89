"""Scene-flow point caches as USD: one `UsdGeom.Points` prim with time-sampled points (usd-core's `pxr`; numpy).

    points/points.usdc
      stage: upAxis Z, metersPerUnit 1 (Shotfield's world units are scene units), timeCodesPerSecond =
             framesPerSecond = fps, time code = frame_start + frame index (frame_start 1, as the Blender
             add-on and the USD camera export use), start/endTimeCode spanning the frames
      /ShotfieldPoints (UsdGeom.Points, the default prim), at each frame's time code:
        points               (N_t, 3) float  world positions
        velocities           (N_t, 3) float  scene flow, world units per *second* (USD's unit: the
                                             job's per-frame scene flow times fps)
        widths               (N_t,)   float  point diameters, world units
        primvars:displayColor (N_t, 3) float, vertex interpolation, linear RGB (USD colours are linear)
        primvars:dynamic     (N_t,)   int    1 = on a moving object (the field's dynamic part), 0 = static

The number of points may change from frame to frame (each frame holds what that frame sees), which
UsdGeom.Points allows. customLayerData["shotfield"] records frame_start and the per-frame counts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pxr import Sdf, Usd, UsdGeom, Vt

from .atomic import atomic_path

POINTS_PATH = "/ShotfieldPoints"
METERS_PER_UNIT = 1.0


@dataclass
class PointFrame:
    """The points of one frame (job frame `index`)."""

    index: int
    positions: np.ndarray      # (N, 3) float32 world
    colours: np.ndarray        # (N, 3) uint8 sRGB
    velocities: np.ndarray     # (N, 3) float32 world units per frame (the job's scene-flow convention)
    dynamic: np.ndarray        # (N,) bool

    def __post_init__(self):
        n = len(self.positions)
        assert self.positions.shape == (n, 3), self.positions.shape
        assert self.colours.shape == (n, 3) and self.velocities.shape == (n, 3) and self.dynamic.shape == (n,)


def srgb_to_linear(colours: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 sRGB -> float32 linear (the IEC 61966-2-1 curve)."""
    c = colours.astype(np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def build_stage(frames: list[PointFrame], fps: float, width: float, frame_start: int = 1,
                dynamic_only: bool = False) -> Usd.Stage:
    """An in-memory stage with the animated points; `width` is the point diameter; `dynamic_only` keeps
    only the points on moving objects."""
    if not frames:
        raise ValueError("a point cache needs at least one frame")
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, METERS_PER_UNIT)
    stage.SetTimeCodesPerSecond(fps)
    stage.SetFramesPerSecond(fps)
    times = [float(frame_start + f.index) for f in frames]
    stage.SetStartTimeCode(min(times))
    stage.SetEndTimeCode(max(times))
    points = UsdGeom.Points.Define(stage, POINTS_PATH)
    stage.SetDefaultPrim(points.GetPrim())
    colour = points.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex)
    dynamic = UsdGeom.PrimvarsAPI(points).CreatePrimvar("dynamic", Sdf.ValueTypeNames.IntArray, UsdGeom.Tokens.vertex)
    positions_attr, velocities_attr = points.CreatePointsAttr(), points.CreateVelocitiesAttr()
    widths_attr = points.CreateWidthsAttr()
    points.SetWidthsInterpolation(UsdGeom.Tokens.vertex)
    counts = []
    for t, f in zip(times, frames):
        keep = f.dynamic if dynamic_only else np.ones(len(f.positions), bool)
        code = Usd.TimeCode(t)
        positions_attr.Set(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(f.positions[keep], np.float32)), code)
        velocities_attr.Set(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(f.velocities[keep] * fps, np.float32)), code)
        widths_attr.Set(Vt.FloatArray.FromNumpy(np.full(int(keep.sum()), width, np.float32)), code)
        colour.Set(Vt.Vec3fArray.FromNumpy(srgb_to_linear(f.colours[keep])), code)
        dynamic.Set(Vt.IntArray.FromNumpy(f.dynamic[keep].astype(np.int32)), code)
        counts.append(int(keep.sum()))
    stage.SetMetadata("customLayerData", {"shotfield": {"frame_start": int(frame_start), "counts": counts,
                                                        "dynamic_only": bool(dynamic_only)}})
    return stage


def write_point_cache_usd(path: str | os.PathLike, frames: list[PointFrame], fps: float, width: float,
                          frame_start: int = 1, dynamic_only: bool = False) -> Path:
    """Write the cache to `path` (.usdc, .usda or .usd; atomic)."""
    stage = build_stage(frames, fps, width, frame_start, dynamic_only)
    with atomic_path(path) as tmp:
        if not stage.GetRootLayer().Export(str(tmp)):
            raise OSError(f"USD could not write {path}")
    return Path(path)


def read_point_cache_usd(path: str | os.PathLike) -> tuple[list[PointFrame], float, int]:
    """Inverse of `write_point_cache_usd`: (frames, fps, frame_start); velocities back in units per frame."""
    stage = Usd.Stage.Open(str(path))
    if stage is None:
        raise OSError(f"{path}: not a USD file")
    points = UsdGeom.Points(stage.GetPrimAtPath(POINTS_PATH))
    if not points:
        raise ValueError(f"{path}: no {POINTS_PATH} points prim")
    fps = float(stage.GetTimeCodesPerSecond())
    frame_start = int((stage.GetRootLayer().customLayerData.get("shotfield") or {}).get("frame_start", 1))
    dynamic = UsdGeom.PrimvarsAPI(points).GetPrimvar("dynamic")
    frames = []
    for t in points.GetPointsAttr().GetTimeSamples():
        code = Usd.TimeCode(t)
        linear = np.asarray(points.GetDisplayColorPrimvar().Get(code), np.float32).reshape(-1, 3)
        srgb = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(np.clip(linear, 0, None), 1 / 2.4) - 0.055)
        frames.append(PointFrame(int(round(t)) - frame_start,
                                 np.asarray(points.GetPointsAttr().Get(code), np.float32).reshape(-1, 3),
                                 np.clip(np.round(srgb * 255), 0, 255).astype(np.uint8),
                                 np.asarray(points.GetVelocitiesAttr().Get(code), np.float32).reshape(-1, 3) / fps,
                                 np.asarray(dynamic.Get(code), np.int32).astype(bool)))
    return frames, fps, frame_start
