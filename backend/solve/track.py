"""The solved cameras of a shot (`CameraTrack`) and the small rotation helpers the solver shares.

A track holds one shared pinhole camera (f, cx, cy in pixels, pixel-corner origin, square pixels) and,
per frame, the OpenCV `world_from_camera` rotation and the camera centre. One focal length for the whole
shot is the model pycolmap's single-camera mode and Blender's tripod/fixed-lens solve use; a zoom would
need per-frame focal lengths (not modelled yet).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from exporters.cameras_json import CameraFrame, Cameras


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera: fx = fy = f; principal point (cx, cy) in pixels, pixel-corner origin."""

    f: float
    cx: float
    cy: float

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64."""
        return np.array([[self.f, 0.0, self.cx], [0.0, self.f, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def centred(cls, f: float, width: int, height: int) -> "Intrinsics":
        return cls(float(f), width / 2.0, height / 2.0)


@dataclass
class CameraTrack:
    """Cameras of every frame in one world frame (the solver's, until `world_align` moves it).

    rotation: (F, 3, 3) world_from_camera rotations (OpenCV camera axes); centre: (F, 3) camera centres;
    registered: (F,) bool, False where a frame has no solved pose yet (its rotation/centre are then
    placeholders).
    """

    intrinsics: Intrinsics
    rotation: np.ndarray
    centre: np.ndarray
    width: int
    height: int
    registered: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        self.rotation = np.asarray(self.rotation, np.float64)
        self.centre = np.asarray(self.centre, np.float64)
        f = len(self.rotation)
        assert self.rotation.shape == (f, 3, 3) and self.centre.shape == (f, 3), (self.rotation.shape, self.centre.shape)
        if self.registered is None:
            self.registered = np.ones(f, bool)
        self.registered = np.asarray(self.registered, bool)

    @property
    def frames(self) -> int:
        return len(self.rotation)

    def world_from_camera(self) -> np.ndarray:
        """(F, 4, 4) OpenCV camera-to-world."""
        m = np.tile(np.eye(4), (self.frames, 1, 1))
        m[:, :3, :3], m[:, :3, 3] = self.rotation, self.centre
        return m

    def copy(self, **changes) -> "CameraTrack":
        base = {"rotation": self.rotation.copy(), "centre": self.centre.copy(), "registered": self.registered.copy()}
        return replace(self, **{**base, **changes})

    def transformed(self, scale: float, rotation: np.ndarray, translation: np.ndarray) -> "CameraTrack":
        """The same cameras in a new world frame where new = scale * rotation @ old + translation."""
        return self.copy(rotation=np.einsum("ij,fjk->fik", rotation, self.rotation),
                         centre=scale * self.centre @ rotation.T + translation)

    def to_cameras(self, extra: dict | None = None) -> Cameras:
        K = self.intrinsics.K
        frames = [CameraFrame(i, K.copy(), m) for i, m in enumerate(self.world_from_camera())]
        return Cameras(self.width, self.height, frames, dict(extra or {}))


def skew(w: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    w = np.asarray(w, np.float64)
    z = np.zeros(w.shape[:-1])
    return np.stack([np.stack([z, -w[..., 2], w[..., 1]], -1),
                     np.stack([w[..., 2], z, -w[..., 0]], -1),
                     np.stack([-w[..., 1], w[..., 0], z], -1)], -2)


def so3_exp(w: np.ndarray) -> np.ndarray:
    """Rodrigues: axis-angle (..., 3) radians -> rotation (..., 3, 3)."""
    w = np.asarray(w, np.float64)
    theta = np.linalg.norm(w, axis=-1)[..., None, None]
    k = skew(w)
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0, np.sin(safe) / safe)
    b = np.where(small, 0.5, (1.0 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * k + b * (k @ k)


def so3_log(r: np.ndarray) -> np.ndarray:
    """Rotation (..., 3, 3) -> axis-angle (..., 3) radians (angles below pi)."""
    r = np.asarray(r, np.float64)
    cos = np.clip((np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos)[..., None]
    v = np.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    s = np.sin(theta)
    return np.where(theta < 1e-8, 0.5 * v, v * theta / (2.0 * np.where(theta < 1e-8, 1.0, s)))


def nearest_rotation(m: np.ndarray) -> np.ndarray:
    """The rotation (det +1) nearest to each (..., 3, 3) matrix in the Frobenius norm."""
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


def interpolate_track(track: CameraTrack) -> CameraTrack:
    """Fill unregistered frames from their registered neighbours: centres linearly, rotations along the
    geodesic; before the first / after the last registered frame the nearest pose is held."""
    out = track.copy()
    known = np.flatnonzero(track.registered)
    if len(known) == 0:
        return out
    for i in np.flatnonzero(~track.registered):
        after = known[known > i]
        before = known[known < i]
        if len(before) == 0 or len(after) == 0:
            j = after[0] if len(before) == 0 else before[-1]
            out.rotation[i], out.centre[i] = track.rotation[j], track.centre[j]
            continue
        a, b = before[-1], after[0]
        u = (i - a) / (b - a)
        out.centre[i] = (1 - u) * track.centre[a] + u * track.centre[b]
        delta = so3_log(track.rotation[b] @ track.rotation[a].T)
        out.rotation[i] = so3_exp(u * delta) @ track.rotation[a]
    return out
