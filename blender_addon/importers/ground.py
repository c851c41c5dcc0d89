"""A ground plane at Z = 0 that catches shadows: CG objects placed on it cast their shadows onto the footage.

The solve puts the ground it found at Z = 0 (DESIGN.md, World frame; cameras.json's `"world"` says how up
and the ground were chosen). The plane is a Cycles shadow catcher (`is_shadow_catcher`): it renders only
the shadows and reflections that fall on it, over a transparent film, ready to be laid over the plate. In
the viewport it shows as a wireframe so it does not hide the footage behind the camera.

It covers the cameras' path and the solved points around it, with a margin.
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..shared_formats import cameras_json, ply
from .base import Built, JobFolder, Shot, tag
from .camera import FILE as CAMERAS_FILE
from .points import FILE as POINTS_FILE

NAME = "ground"
LABEL = "Ground Plane"
ICON = "MESH_PLANE"
REQUIRES = ()
MARGIN = 1.5        # the plane reaches this factor beyond the cameras' and points' robust extent


@dataclass
class GroundData:
    centre: tuple[float, float]
    half_size: float
    found: bool         # the solve found a ground (else Z = 0 is only where it put the origin)


def available(job: JobFolder) -> bool:
    return job.file(CAMERAS_FILE).is_file()


def read(job: JobFolder) -> GroundData:
    cameras = cameras_json.read_cameras(job.file(CAMERAS_FILE))
    xy = cameras.world_from_camera[:, :2, 3] if cameras.frames else np.zeros((1, 2))
    if job.file(POINTS_FILE).is_file():
        try:
            points, _ = ply.points_and_colours(job.file(POINTS_FILE))
            near = points[np.all(np.isfinite(points), axis=1) & (np.abs(points[:, 2]) < 0.25 * max(1.0, np.ptp(xy)))]
            if len(near):
                xy = np.concatenate([xy, near[:, :2]])
        except ply.PlyError:
            pass  # the points importer reports a bad file; the plane only needs the cameras
    lo, hi = np.percentile(xy, [5, 95], axis=0)
    centre = (lo + hi) / 2
    half = max(float(np.max(hi - lo)) / 2 * MARGIN, 1.0)
    world = (cameras.extra.get("world") or {}) if isinstance(cameras.extra, dict) else {}
    found = "ground" in str(world.get("up", "")).lower()
    return GroundData((float(centre[0]), float(centre[1])), half, found)


def create(data: GroundData, shot: Shot) -> Built:
    name = f"{shot.job.name} Ground"
    cx, cy = data.centre
    h = data.half_size
    mesh = bpy.data.meshes.new(name)
    vertices = np.array([[cx - h, cy - h, 0], [cx + h, cy - h, 0], [cx + h, cy + h, 0], [cx - h, cy + h, 0]], np.float32)
    mesh.from_pydata(vertices.tolist(), [], [(0, 1, 2, 3)])
    mesh.update()
    obj = tag(bpy.data.objects.new(name, mesh), NAME, name)
    obj.is_shadow_catcher = True
    obj.display_type = "WIRE"
    warnings = [] if data.found else ["the solve found no ground plane: the plane is at Z = 0 of the solve's world, "
                                      "which may not be the floor"]
    # A shadow catcher needs a transparent film to be laid over the plate.
    return Built(objects=[obj], render={"film_transparent": True}, warnings=warnings)
