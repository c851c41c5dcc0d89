"""An animated `UsdGeom.Camera` (usd-core's `pxr`; numpy).

The stage: Z up (``UsdGeom.SetStageUpAxis``), ``metersPerUnit`` 1 (Shotfield's world units are scene
units), ``timeCodesPerSecond`` = ``framesPerSecond`` = fps, time code = frame_start + frame index
(frame_start 1, as the Blender add-on uses), ``startTimeCode``/``endTimeCode`` spanning the frames.
The camera prim (``/ShotfieldCamera``, the default prim) carries:

- ``xformOp:transform``, time-sampled: camera-to-world in USD's camera axes (looking down -Z, +Y up),
  i.e. ``world_from_camera @ diag(1, -1, -1, 1)``; USD matrices act on row vectors, so the
  authored GfMatrix4d is that matrix transposed.
- The lens, in **tenths of a scene unit** (UsdGeom.Camera's "Units of Measure for Camera
  Properties"): millimetres only when metersPerUnit = 0.01. With metersPerUnit = 1 one tenth of a
  unit is 100 mm, so a 35 mm lens is authored as 0.35 (authored as 35 it imports into Blender as a
  3500 mm lens; the field of view is the same either way, being a ratio). With a sensor
  ``sensor_width_mm`` wide spanning the image width:
      horizontalAperture = sensor_width_mm / 100
      focalLength        = fx * horizontalAperture / W
      verticalAperture   = H * focalLength / fy          (= horizontalAperture * H / W for square pixels)
      horizontalApertureOffset = (W/2 - cx) * horizontalAperture / W
      verticalApertureOffset   = (cy - H/2) * verticalAperture / H
  USD projects a camera-space point to the film at focalLength * (X, Y) / -Z and the aperture window
  is centred on the offsets; with pixel y pointing down this gives exactly
  ``fx = W f / Ha, cx = W/2 - W Ho / Ha, fy = H f / Va, cy = H/2 + H Vo / Va``.
  Lens attributes are time-sampled only when they change from frame to frame.
- The image size, which USD cameras do not hold, goes on a ``UsdRender.Settings`` prim
  (``/Render/ShotfieldSettings``: resolution, pixelAspectRatio = fy / fx, camera relationship).

Blender 4.5's importer reads all of this: lens and sensor scaled by 100 * metersPerUnit, shift_x =
horizontalApertureOffset / horizontalAperture and shift_y = verticalApertureOffset / horizontalAperture
(landscape frames), which are `exporters.conventions`' shifts. It sets the scene's frame range from
start/endTimeCode but leaves the render resolution and pixel aspect alone (set them from the shot), and
it animates the transform through a Transform Cache constraint that reads this file: moving or
deleting the file afterwards loses the camera's motion.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom, UsdRender

from ..atomic import atomic_path
from ..cameras_json import CameraFrame, Cameras
from ..conventions import DEFAULT_SENSOR_WIDTH_MM, OPENCV_FROM_BLENDER_CAMERA
from ._common import K_from_pinhole, check_cameras, pinhole_from_K

CAMERA_PATH = "/ShotfieldCamera"
SETTINGS_PATH = "/Render/ShotfieldSettings"
METERS_PER_UNIT = 1.0
#: Millimetres in one "tenth of a scene unit" at METERS_PER_UNIT.
TENTH_UNIT_MM = 100.0 * METERS_PER_UNIT


def usd_lens_from_K(K: np.ndarray, width: int, height: int,
                    sensor_width_mm: float = DEFAULT_SENSOR_WIDTH_MM) -> dict[str, float]:
    """K (3, 3) -> UsdGeom.Camera lens attributes (tenths of a scene unit, metersPerUnit 1)."""
    fx, fy, cx, cy = pinhole_from_K(K)
    ha = sensor_width_mm / TENTH_UNIT_MM
    f = fx * ha / width
    va = height * f / fy
    return {"focalLength": f, "horizontalAperture": ha, "verticalAperture": va,
            "horizontalApertureOffset": (width / 2.0 - cx) * ha / width,
            "verticalApertureOffset": (cy - height / 2.0) * va / height}


def K_from_usd_lens(lens: dict[str, float], width: int, height: int) -> np.ndarray:
    """Inverse of `usd_lens_from_K` (unit-free: only ratios of lens values enter)."""
    f, ha, va = lens["focalLength"], lens["horizontalAperture"], lens["verticalAperture"]
    return K_from_pinhole(width * f / ha, height * f / va,
                          width / 2.0 - width * lens["horizontalApertureOffset"] / ha,
                          height / 2.0 + height * lens["verticalApertureOffset"] / va)


def _gf_matrix(m: np.ndarray) -> Gf.Matrix4d:
    return Gf.Matrix4d(np.asarray(m, dtype=np.float64).T.tolist())


def build_stage(cameras: Cameras, fps: float = 24.0, frame_start: int = 1,
                sensor_width_mm: float = DEFAULT_SENSOR_WIDTH_MM,
                clipping_range: tuple[float, float] = (0.01, 10000.0)) -> Usd.Stage:
    """Cameras -> an in-memory stage holding the animated camera and the render settings."""
    check_cameras(cameras)
    W, H = int(cameras.width), int(cameras.height)
    times = [float(frame_start + f.index) for f in cameras.frames]
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, METERS_PER_UNIT)
    stage.SetTimeCodesPerSecond(fps)
    stage.SetFramesPerSecond(fps)
    stage.SetStartTimeCode(min(times))
    stage.SetEndTimeCode(max(times))
    stage.SetMetadata("customLayerData", {"shotfield": {"frame_start": int(frame_start), "width": W, "height": H}})

    camera = UsdGeom.Camera.Define(stage, CAMERA_PATH)
    stage.SetDefaultPrim(camera.GetPrim())
    camera.CreateProjectionAttr(UsdGeom.Tokens.perspective)
    camera.CreateClippingRangeAttr(Gf.Vec2f(*clipping_range))
    op = camera.AddTransformOp()
    for t, f in zip(times, cameras.frames):
        op.Set(_gf_matrix(np.asarray(f.world_from_camera, dtype=np.float64) @ OPENCV_FROM_BLENDER_CAMERA), Usd.TimeCode(t))

    lenses = [usd_lens_from_K(f.K, W, H, sensor_width_mm) for f in cameras.frames]
    for name in lenses[0]:
        attr = camera.GetPrim().GetAttribute(name)
        values = [lens[name] for lens in lenses]
        if np.allclose(values, values[0], rtol=1e-12, atol=0.0):  # constant up to float64 rounding
            attr.Set(values[0])
        else:
            for t, v in zip(times, values):
                attr.Set(v, Usd.TimeCode(t))

    stage.DefinePrim(SETTINGS_PATH.rsplit("/", 1)[0])  # untyped: Blender imports a Scope as an empty
    settings = UsdRender.Settings.Define(stage, SETTINGS_PATH)
    settings.CreateResolutionAttr(Gf.Vec2i(W, H))
    fx, fy = pinhole_from_K(cameras.frames[0].K)[:2]
    settings.CreatePixelAspectRatioAttr(fy / fx)
    settings.CreateCameraRel().SetTargets([Sdf.Path(CAMERA_PATH)])
    return stage


def write_usd_camera(path: str | os.PathLike, cameras: Cameras, fps: float = 24.0, frame_start: int = 1,
                     sensor_width_mm: float = DEFAULT_SENSOR_WIDTH_MM) -> Path:
    """Write the camera stage to `path` (.usda, .usdc or .usd; atomic)."""
    stage = build_stage(cameras, fps, frame_start, sensor_width_mm)
    with atomic_path(path) as tmp:
        if not stage.GetRootLayer().Export(str(tmp)):
            raise OSError(f"USD could not write {path}")
    return Path(path)


def read_usd_camera(path: str | os.PathLike, camera_path: str | None = None, width: int | None = None,
                    height: int | None = None, frame_start: int | None = None) -> Cameras:
    """A stage with an animated UsdGeom.Camera -> Cameras (K and OpenCV world_from_camera per time sample).

    Image size: arguments, else the render settings' resolution, else the layer's custom data.
    frame_start: argument, else the layer's custom data, else the stage's startTimeCode.
    """
    stage = Usd.Stage.Open(str(path))
    if stage is None:
        raise OSError(f"USD could not open {path}")
    custom = stage.GetRootLayer().customLayerData.get("shotfield", {})
    prim = stage.GetPrimAtPath(camera_path) if camera_path else stage.GetDefaultPrim()
    if not prim or not prim.IsA(UsdGeom.Camera):
        prim = next((p for p in stage.Traverse() if p.IsA(UsdGeom.Camera)), None)
    if prim is None:
        raise ValueError(f"{path}: no UsdGeom.Camera")
    camera = UsdGeom.Camera(prim)
    if width is None or height is None:
        settings = next((UsdRender.Settings(p) for p in stage.Traverse() if p.IsA(UsdRender.Settings)), None)
        resolution = settings.GetResolutionAttr().Get() if settings else None
        size = tuple(resolution) if resolution is not None else (custom.get("width"), custom.get("height"))
        width, height = width or size[0], height or size[1]
    if width is None or height is None:
        raise ValueError(f"{path}: no image size in the file; pass width and height")
    if frame_start is None:
        frame_start = int(custom.get("frame_start", stage.GetStartTimeCode()))

    names = ("focalLength", "horizontalAperture", "verticalAperture", "horizontalApertureOffset",
             "verticalApertureOffset")
    attrs = [prim.GetAttribute(n) for n in names]
    times = sorted(set(Usd.Attribute.GetUnionedTimeSamples(attrs)) | set(camera.GetTimeSamples()))
    times = times or [stage.GetStartTimeCode()]
    xformable = UsdGeom.Xformable(prim)
    frames = []
    for t in times:
        tc = Usd.TimeCode(t)
        lens = {n: float(a.Get(tc)) for n, a in zip(names, attrs)}
        usd_pose = np.array(xformable.ComputeLocalToWorldTransform(tc), dtype=np.float64).T
        frames.append(CameraFrame(int(round(t)) - frame_start, K_from_usd_lens(lens, width, height),
                                  usd_pose @ OPENCV_FROM_BLENDER_CAMERA))
    return Cameras(int(width), int(height), frames)
