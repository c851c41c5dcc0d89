"""The hook for footage where structure from motion fails entirely: cameras from the learned ego-motion
and intrinsics of the depth stage's training (Li et al. 2020 learn both while training on the shot).

The depth stage provides `backend.depth.ego_motion` with

    estimate_cameras(job_dir: Path, moving: np.ndarray (F, H, W) bool, device: str) -> CameraTrack

(poses up to scale, one shared focal length), and `learned_ego_motion` below hands over to it; the solve
stage then refines its answer with the same dense bundle adjustment as an SfM initialisation. Where that
module is missing (a trimmed install) the hook raises an honest `ShotfieldError` that says why SfM failed.
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np

from ..errors import ShotfieldError
from .track import CameraTrack

EGO_MOTION_MODULE = "backend.depth.ego_motion"


def fallback_available() -> bool:
    try:
        return importlib.util.find_spec(EGO_MOTION_MODULE) is not None
    except ModuleNotFoundError:  # backend.depth itself does not exist
        return False


def learned_ego_motion(job_dir: Path, moving: np.ndarray, device: str, reason: str) -> CameraTrack:
    """Cameras from the depth stage's learned ego-motion, or a ShotfieldError explaining `reason`."""
    if not fallback_available():
        raise ShotfieldError(
            f"solve: SfM failed: {reason}; the learned ego-motion fallback (backend.depth) is not installed. "
            "Try a longer --frames range with more camera motion, a larger --long-side, or footage with more "
            "static texture")
    module = importlib.import_module(EGO_MOTION_MODULE)
    track = module.estimate_cameras(Path(job_dir), moving, device)
    if not (np.all(np.isfinite(track.rotation)) and np.all(np.isfinite(track.centre)) and np.isfinite(track.intrinsics.f)):
        raise ShotfieldError(f"solve: SfM failed ({reason}) and the learned ego-motion diverged; try footage with "
                             "more static texture or a longer --frames range")
    return track
