"""The job's inputs to the depth stage as numpy arrays: frames, cameras (when solved), sparse points,
motion masks and the flow pairs the training reads.

    frames/NNNNN.png          -> rgb (F, H, W, 3) float32 in [0, 1]
    camera/cameras.json       -> K (F, 3, 3), world_from_camera (F, 4, 4), or None (cameras withheld)
    camera/points.ply         -> points (N, 3) world, or None
    masks/motion/NNNNN.png    -> moving (F, H, W) bool (all False where the solve wrote none)
    flow (backend.flow_store) -> `pairs`: (t, s) with s = t +- g for each gap g, forward flow t -> s and its
                                 forward-backward validity
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from exporters import ply
from exporters.cameras_json import read_cameras

from ..flow_store import FlowStore
from ..frames import load_frames

#: Gaps the depth stage reads: 1 keeps the warps small, 2 and 4 give the baseline that pins depth.
DEPTH_GAPS = (1, 2, 4)


@dataclass
class Pair:
    t: int
    s: int
    flow: np.ndarray   # (H, W, 2) float32 pixels, frame t -> frame s
    valid: np.ndarray  # (H, W) bool, forward-backward consistent


@dataclass
class ShotInputs:
    rgb: np.ndarray
    moving: np.ndarray
    pairs: list[Pair]
    K: np.ndarray | None = None
    world_from_camera: np.ndarray | None = None
    points: np.ndarray | None = None
    camera_info: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return len(self.rgb)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return self.rgb.shape[1], self.rgb.shape[2]

    @property
    def has_cameras(self) -> bool:
        return self.K is not None


def load_pairs(job_dir: Path, frames: int, gaps=DEPTH_GAPS) -> list[Pair]:
    store = FlowStore(job_dir)
    pairs = []
    for g in gaps:
        if g not in store.gaps:
            continue
        for t in range(frames - g):
            pairs.append(Pair(t, t + g, store.forward(t, g).astype(np.float32), store.forward_valid(t, g).astype(bool)))
            pairs.append(Pair(t + g, t, store.backward(t, g).astype(np.float32), store.backward_valid(t, g).astype(bool)))
    return pairs


def load_moving(job_dir: Path, frames: int, height: int, width: int) -> np.ndarray:
    out = np.zeros((frames, height, width), bool)
    for i in range(frames):
        p = Path(job_dir) / "masks" / "motion" / f"{i:05d}.png"
        if p.is_file():
            m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if m is not None and m.shape == (height, width):
                out[i] = m > 127
    return out


def load_shot(job_dir: Path, use_cameras: bool = True, moving: np.ndarray | None = None) -> ShotInputs:
    """Everything the training reads. `use_cameras=False` withholds the solve (the learned-camera mode)."""
    job_dir = Path(job_dir)
    rgb = load_frames(job_dir).astype(np.float32) / 255.0
    n, h, w = rgb.shape[:3]
    if moving is None:
        moving = load_moving(job_dir, n, h, w)
    shot = ShotInputs(rgb, moving, load_pairs(job_dir, n))
    cams_path = job_dir / "camera" / "cameras.json"
    if use_cameras and cams_path.is_file():
        cams = read_cameras(cams_path)
        if len(cams.frames) == n and (cams.width, cams.height) == (w, h):
            shot.K, shot.world_from_camera = cams.K.astype(np.float64), cams.world_from_camera.astype(np.float64)
            shot.camera_info = dict(cams.extra)
            pts_path = job_dir / "camera" / "points.ply"
            if pts_path.is_file():
                shot.points = ply.points_and_colours(pts_path)[0].astype(np.float64)
    return shot
