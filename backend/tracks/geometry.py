"""The fixed part of each frame's bijection, and the depth that initialises the local 3D spaces.

A frame's local 3D space is its camera's: a point is (pixel x, pixel y, depth along the ray). The fixed map
takes it to camera space (OpenCV axes) with K, then to the world with the solved `world_from_camera`; the
model then takes world points into its canonical box (the middle frame's view in inverse depth, model.py).
`centre` and `scale` describe the extent of the frusta between `near` and `far` (the unit of the
acceleration loss).
The learned coupling layers (model.py) act after that, so a static point with the solved cameras is tracked
by the cameras alone and the network only has to learn what moves and what the solve got wrong.

Without a solve (it failed, or was not run) every frame gets the same virtual camera at the origin
(focal length = the long side, depth range [1, 2]): the fixed map is then the same for every frame and the
coupling layers carry all the motion, which is OmniMotion's own setting.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from exporters.cameras_json import CamerasFileError, read_cameras
from exporters.exr import read_depth_exr

NO_SOLVE_NEAR, NO_SOLVE_FAR = 1.0, 2.0


@dataclass
class ShotGeometry:
    """Per-frame cameras of the local spaces and the canonical box; everything float64 numpy."""

    K: np.ndarray                   # (F, 3, 3)
    world_from_camera: np.ndarray   # (F, 4, 4)
    near: float
    far: float
    centre: np.ndarray              # (3,) world point at the canonical origin
    scale: float                    # world units per canonical unit
    width: int
    height: int
    solved: bool                    # the cameras come from the solve (world positions mean something)

    @property
    def frames(self) -> int:
        return len(self.K)

    def to_dict(self) -> dict:
        return {"K": self.K.tolist(), "world_from_camera": self.world_from_camera.tolist(), "near": self.near,
                "far": self.far, "centre": self.centre.tolist(), "scale": self.scale, "width": self.width,
                "height": self.height, "solved": self.solved}

    @classmethod
    def from_dict(cls, d: dict) -> "ShotGeometry":
        return cls(np.array(d["K"]), np.array(d["world_from_camera"]), float(d["near"]), float(d["far"]),
                   np.array(d["centre"]), float(d["scale"]), int(d["width"]), int(d["height"]), bool(d["solved"]))


def read_solved_cameras(job: Path, frames: int, width: int, height: int):
    """(K, world_from_camera) of every frame from camera/cameras.json, or None when the job has no usable
    solve (missing, unreadable, frames missing, another size, or a tripod shot: without parallax the
    solve pins no depth, so the virtual camera serves as well)."""
    path = Path(job) / "camera" / "cameras.json"
    if not path.is_file():
        return None
    try:
        cameras = read_cameras(path)
    except (CamerasFileError, OSError, ValueError):
        return None
    by_index = {f.index: f for f in cameras.frames}
    if sorted(by_index) != list(range(frames)) or (cameras.width, cameras.height) != (width, height):
        return None
    if (cameras.extra or {}).get("tripod"):
        return None
    K = np.stack([by_index[i].K for i in range(frames)]).astype(np.float64)
    pose = np.stack([by_index[i].world_from_camera for i in range(frames)]).astype(np.float64)
    return K, pose


def read_depth_maps(job: Path, frames: int, width: int, height: int) -> np.ndarray | None:
    """(F, H, W) float32 planar depth from depth/NNNNN.exr, NaN where unknown; None unless every frame has one."""
    folder = Path(job) / "depth"
    paths = [folder / f"{i:05d}.exr" for i in range(frames)]
    if not all(p.is_file() for p in paths):
        return None
    depth = np.stack([read_depth_exr(p) for p in paths]).astype(np.float32)
    if depth.shape[1:] != (height, width):
        return None
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def unproject(K: np.ndarray, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Camera-space points (..., 3) of pixels (..., 2) at planar depth (...)."""
    fx, fy, cx, cy = K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2]
    return np.stack([(pixels[..., 0] - cx) / fx * depth, (pixels[..., 1] - cy) / fy * depth, depth], axis=-1)


def bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear samples of image (H, W[, C]) at pixel positions xy (N, 2) (centres at i + 0.5; OpenCV samples
    them at integers), the border repeated: (N,) or (N, C)."""
    m = cv2.remap(np.asarray(image, np.float32), (xy[:, 0:1] - 0.5).astype(np.float32),
                  (xy[:, 1:2] - 0.5).astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return m.reshape(len(xy), -1).squeeze(-1) if image.ndim == 2 else m.reshape(len(xy), -1)


def triangulated_depth(store, K: np.ndarray, pose: np.ndarray, moving: np.ndarray | None,
                       gaps: list[int], min_angle_deg: float = 1.0) -> np.ndarray:
    """(F, H, W) float32 planar depth of the static scene triangulated from the flow and the solved cameras
    (midpoint of the two rays, median over the frame gaps with enough parallax), NaN where no pair gives it
    (moving pixels, flow that fails the forward-backward check, too little parallax). This initialises the
    local 3D spaces when the depth stage has not run."""
    F, H, W = store.frames, store.height, store.width
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5
    pix = np.stack([xs, ys], -1)
    out = np.full((F, H, W), np.nan, np.float32)
    for i in range(F):
        estimates = []
        for g in gaps:
            for j, direction in ((i + g, "f"), (i - g, "b")):
                if not 0 <= j < F:
                    continue
                if direction == "f":
                    flow, valid = store.forward(i, g), store.forward_valid(i, g)
                else:
                    flow, valid = store.backward(j, g), store.backward_valid(j, g)
                d = _two_view_depth(pix, pix + flow, K[i], K[j], pose[i], pose[j], min_angle_deg)
                d[~valid] = np.nan
                estimates.append(d)
        if estimates:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN pixels stay NaN
                out[i] = np.nanmedian(np.stack(estimates), axis=0)
        if moving is not None:
            out[i][moving[i]] = np.nan
    return out


def _two_view_depth(p_i, p_j, K_i, K_j, pose_i, pose_j, min_angle_deg):
    """Planar depth in camera i of the midpoint of rays through p_i (camera i) and p_j (camera j)."""
    d_i = unproject(K_i, p_i, np.ones(p_i.shape[:-1]))
    d_j = unproject(K_j, p_j, np.ones(p_j.shape[:-1]))
    # Everything in camera i's frame: camera j's centre and ray there.
    i_from_j = np.linalg.inv(pose_i) @ pose_j
    c = i_from_j[:3, 3]
    d_j = d_j @ i_from_j[:3, :3].T
    a, b = d_i, d_j
    aa, bb, ab = (a * a).sum(-1), (b * b).sum(-1), (a * b).sum(-1)
    ac, bc = (a * c).sum(-1), (b * c).sum(-1)
    den = aa * bb - ab * ab
    with np.errstate(all="ignore"):
        s = (ac * bb - ab * bc) / den          # along ray i (a has z = 1, so s is planar depth)
        t = (ab * ac - aa * bc) / den          # along ray j
        cos = ab / np.sqrt(aa * bb)
    angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    ok = (den > 1e-12) & (s > 0) & (t > 0) & (angle > min_angle_deg)
    return np.where(ok, s, np.nan)


def shot_geometry(job: Path, frames: int, width: int, height: int, depth: np.ndarray | None) -> ShotGeometry:
    """The local spaces' cameras: the solve's where usable, else the shared virtual camera. `depth` (the
    initialising depth, NaN where unknown) sets near/far in the solved case."""
    solved = read_solved_cameras(job, frames, width, height)
    if solved is None:
        f = float(max(width, height))
        K = np.tile(np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]]), (frames, 1, 1))
        pose = np.tile(np.eye(4), (frames, 1, 1))
        near, far = NO_SOLVE_NEAR, NO_SOLVE_FAR
    else:
        K, pose = solved
        finite = depth[np.isfinite(depth)] if depth is not None else np.zeros(0)
        if finite.size > 100:
            near = float(np.percentile(finite, 0.5)) * 0.7
            far = float(np.percentile(finite, 99.5)) * 1.5
        else:  # no depth at all: a wide range around the camera path's size
            span = float(np.linalg.norm(np.ptp(pose[:, :3, 3], axis=0))) or 1.0
            near, far = 0.5 * span, 50.0 * span
    # The canonical box: where the frusta between near and far lie (corners and centre of every frame).
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height], [width / 2, height / 2]], np.float64)
    pts = []
    for i in range(frames):
        for d in (near, far):
            cam = unproject(K[i], corners, np.full(len(corners), d))
            pts.append(cam @ pose[i, :3, :3].T + pose[i, :3, 3])
    pts = np.concatenate(pts)
    lo, hi = pts.min(0), pts.max(0)
    centre = (lo + hi) / 2
    scale = float(np.max(hi - lo) / 2) or 1.0
    return ShotGeometry(K, pose, float(near), float(far), centre, scale, width, height, solved is not None)


def read_motion_masks(job: Path, frames: int) -> np.ndarray | None:
    """(F, H, W) bool from masks/motion/NNNNN.png (255 = moves on its own), or None."""
    folder = Path(job) / "masks" / "motion"
    paths = [folder / f"{i:05d}.png" for i in range(frames)]
    if not all(p.is_file() for p in paths):
        return None
    return np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127 for p in paths])


def describe(geometry: ShotGeometry) -> str:
    return json.dumps({"solved": geometry.solved, "near": round(geometry.near, 4), "far": round(geometry.far, 4)})


def guide_depth(depth: np.ndarray | None) -> np.ndarray | None:
    """(F, H, W) float32 depth without holes for depth-guided ray sampling: the known depth, holes filled
    by inpainting (Navier-Stokes) in inverse depth within the frame's known range, frames without any known
    depth given the shot's median; None without known depth.

    Not Telea: OpenCV's Telea inpainting of a float image overshoots wildly (measured on the quick test shot:
    disparities 0.07-0.33 filled with -1.9..1.9), which put the rays of every hole, the moving objects
    above all, at 0.2x-10x their depth, mostly outside the canonical box; Navier-Stokes stays in range."""
    if depth is None or not np.isfinite(depth).any():
        return None
    median = float(np.nanmedian(depth))
    out = np.empty_like(depth, dtype=np.float32)
    for i, d in enumerate(depth):
        known = np.isfinite(d) & (d > 0)
        if not known.any():
            out[i] = median
            continue
        disparity = np.where(known, 1.0 / np.where(known, d, 1.0), 0.0).astype(np.float32)
        if not known.all():
            disparity = cv2.inpaint(disparity, (~known).astype(np.uint8), 5, cv2.INPAINT_NS)
        lo, hi = disparity[known].min(), disparity[known].max()
        out[i] = 1.0 / np.clip(disparity, lo, hi)
    return out
