"""Where the solved world sits: up, ground, origin and scale (SfM knows none of them).

- Up (+Z, Blender's) is the normal of the ground plane when the sparse points contain one: the largest
  plane (RANSAC) whose normal is within GROUND_MAX_TILT_DEG of the cameras' average up direction and
  which lies below the cameras. Otherwise it is the cameras' average up direction (-y of OpenCV cameras),
  which holds for the usual level-ish hand-held or tripod shot.
- Ground at Z = 0 where a ground plane was found.
- Scale, in Blender units (metres): with a ground plane, the cameras' median height above it is
  EYE_HEIGHT (1.5 m, a hand-held or tripod camera at eye level); without one, the median depth of the
  points seen from the first camera is NOMINAL_DEPTH (5 m). A tripod solve has no scale at all: its
  camera is placed EYE_HEIGHT above the origin. Either way it is a convention to rescale by, not a
  measurement; the artist sets the true scale from a known distance.
- Origin: the ground point the first camera looks at (its optical axis meets the ground plane), or the
  point at the median depth on its axis without a ground plane; +X is the first camera's right direction
  levelled, so the first camera looks roughly along +Y, as a Blender front view does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .track import CameraTrack

EYE_HEIGHT = 1.5
NOMINAL_DEPTH = 5.0
GROUND_MAX_TILT_DEG = 35.0
GROUND_MIN_SHARE = 0.08     # a ground plane must hold this share of the points (and at least 30)
RANSAC_ITERATIONS = 400


@dataclass
class Plane:
    normal: np.ndarray   # (3,) unit, pointing up (towards the cameras)
    offset: float        # points p on the plane: normal . p + offset = 0
    inliers: int


@dataclass
class WorldAlignment:
    """new = scale * rotation @ old + translation."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    up_from: str          # "ground plane" | "camera up"
    scale_from: str
    ground_inliers: int

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(points) @ self.rotation.T + self.translation

    def describe(self) -> dict:
        return {"up": self.up_from, "scale": self.scale_from, "ground_points": self.ground_inliers,
                "origin": "ground point the first camera looks at" if self.up_from == "ground plane"
                else "point the first camera looks at"}


def camera_up(track: CameraTrack) -> np.ndarray:
    """Average up direction of the cameras in world coordinates (OpenCV y points down)."""
    up = -track.rotation[track.registered][:, :, 1].mean(0)
    return up / np.linalg.norm(up)


def find_ground(points: np.ndarray, track: CameraTrack, seed: int = 0) -> Plane | None:
    """RANSAC for the largest plane roughly perpendicular to the cameras' up direction and below them."""
    points = np.asarray(points, np.float64)
    if len(points) < 30:
        return None
    up = camera_up(track)
    centres = track.centre[track.registered]
    extent = np.median(np.linalg.norm(points - np.median(points, 0), axis=1))
    tol = 0.01 * extent
    rng = np.random.default_rng(seed)
    best, best_count = None, 0
    cos_max = np.cos(np.radians(GROUND_MAX_TILT_DEG))
    for _ in range(RANSAC_ITERATIONS):
        a, b, c = points[rng.choice(len(points), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-12:
            continue
        n /= np.linalg.norm(n)
        if n @ up < 0:
            n = -n
        if n @ up < cos_max:
            continue
        d = -n @ a
        if np.median(centres @ n + d) <= 0:  # the cameras must be above it
            continue
        count = int(np.sum(np.abs(points @ n + d) < tol))
        if count > best_count:
            best, best_count = (n, d), count
    if best is None or best_count < max(30, GROUND_MIN_SHARE * len(points)):
        return None
    n, d = best
    count = best_count
    for shrink in (1.0, 0.5, 0.25):  # least-squares refits on ever tighter bands: things standing on the
        inl = points[np.abs(points @ n + d) < shrink * tol]  # ground (a wall's foot) leave the fit
        if len(inl) < 3:
            break
        centroid = inl.mean(0)
        n_fit = np.linalg.svd(inl - centroid)[2][2]
        n, d = (n_fit if n_fit @ n > 0 else -n_fit), None
        d = float(-n @ centroid)
        count = len(inl) if shrink == 1.0 else count
    return Plane(n, d, count)


def align_world(track: CameraTrack, points: np.ndarray, rotation_only: bool = False) -> WorldAlignment:
    """The similarity that puts the solve into the world frame described at the top of this module."""
    points = np.asarray(points, np.float64).reshape(-1, 3)
    first = int(np.flatnonzero(track.registered)[0])
    c0, R0 = track.centre[first], track.rotation[first]
    plane = None if rotation_only else find_ground(points, track)
    up = plane.normal if plane is not None else camera_up(track)
    x = R0[:, 0] - (R0[:, 0] @ up) * up  # the first camera's right direction, levelled
    if np.linalg.norm(x) < 1e-6:  # looking straight up or down: any level direction will do
        x = np.cross(up, [0.0, 1.0, 0.0]) if abs(up[1]) < 0.9 else np.cross(up, [1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    rotation = np.stack([x, np.cross(up, x), up])  # rows: new axes in old coordinates
    if rotation_only:
        return WorldAlignment(1.0, rotation, np.array([0.0, 0.0, EYE_HEIGHT]) - rotation @ c0,
                              "camera up", f"none (tripod): camera {EYE_HEIGHT} units above the origin", 0)
    in_view = (points - c0) @ R0[:, 2]
    depth = float(np.median(in_view[in_view > 0])) if np.any(in_view > 0) else 1.0
    axis = R0[:, 2]
    if plane is not None:
        height = float(np.median(track.centre[track.registered] @ plane.normal + plane.offset))
        scale = EYE_HEIGHT / height
        hit = -(plane.normal @ c0 + plane.offset) / (plane.normal @ axis) if abs(plane.normal @ axis) > 1e-6 else -1.0
        look = c0 + axis * (hit if 0 < hit < 4 * depth else depth)
        origin = look - (plane.normal @ look + plane.offset) * plane.normal  # onto the ground
        return WorldAlignment(scale, rotation, -scale * rotation @ origin, "ground plane",
                              f"median camera height above the ground = {EYE_HEIGHT} units", plane.inliers)
    scale = NOMINAL_DEPTH / depth
    origin = c0 + axis * depth
    return WorldAlignment(scale, rotation, -scale * rotation @ origin, "camera up",
                          f"median depth seen from the first camera = {NOMINAL_DEPTH} units", 0)
