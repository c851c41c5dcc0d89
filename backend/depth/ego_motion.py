"""The solve stage's fallback where structure from motion fails: cameras from the depth training run with
the cameras withheld (learned per-frame ego-motion and one shared pinhole, see train.py).

    estimate_cameras(job_dir, moving (F, H, W) bool, device) -> backend.solve.track.CameraTrack

The focal length comes from the epipolar self-calibration scan (self_calibration.py, within 0.5 % on the
test shots), refined by at most train.FOCAL_REFINE (0.5 %) in training. Poses are up to scale (the first
frame is the origin, depth starts at a median of 1); the solve refines them with its dense bundle
adjustment, as it does an SfM initialisation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..solve.track import CameraTrack, Intrinsics, nearest_rotation
from .shot import load_shot
from .train import train

#: Training effort of the fallback (1 = the depth stage's default preview training).
FALLBACK_EFFORT = 1.0


def estimate_cameras(job_dir: Path, moving: np.ndarray, device: str, effort: float = FALLBACK_EFFORT,
                     quality: str = "preview") -> CameraTrack:
    shot = load_shot(Path(job_dir), use_cameras=False, moving=np.asarray(moving, bool))
    result = train(shot, device, quality, effort, learn_cameras=True)
    K = result.K[0]
    h, w = shot.size
    wfc = result.world_from_camera
    return CameraTrack(Intrinsics(float(0.5 * (K[0, 0] + K[1, 1])), float(K[0, 2]), float(K[1, 2])),
                       nearest_rotation(wfc[:, :3, :3]), wfc[:, :3, 3], w, h)
