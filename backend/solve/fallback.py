"""The hook for footage where structure from motion fails entirely: cameras from the learned ego-motion
and intrinsics of the depth stage's network (Li et al. 2020 learn both while training on the shot).

The depth issue builds that network. Until it exists this hook raises an honest `ShotfieldError` that
says why SfM failed and what to try. When it exists, it provides a module `backend.depth.ego_motion` with

    estimate_cameras(job_dir: Path, moving: np.ndarray (F, H, W) bool, device: str) -> CameraTrack

(poses up to scale, one shared focal length), and `learned_ego_motion` below hands over to it; the solve
stage then refines its answer with the same dense bundle adjustment as an SfM initialisation.
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
    except ModuleNotFoundError:  # backend.depth itself does not exist yet
        return False


def learned_ego_motion(job_dir: Path, moving: np.ndarray, device: str, reason: str) -> CameraTrack:
    """Cameras from the depth stage's ego-motion network, or a ShotfieldError explaining `reason`."""
    if not fallback_available():
        raise ShotfieldError(
            f"solve: SfM failed: {reason}; the learned ego-motion fallback arrives with the depth stage. "
            "Try a longer --frames range with more camera motion, a larger --long-side, or footage with more "
            "static texture")
    module = importlib.import_module(EGO_MOTION_MODULE)
    return module.estimate_cameras(Path(job_dir), moving, device)
