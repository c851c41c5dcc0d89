"""Footage no camera solver can handle, refused up front with the reason and what to try.

Two cases fail every solver in the same way, so they are caught before any work is done:
- no texture: nothing to track (a grey card, a clear sky, a frame of pure noise at this size);
- no camera motion: every frame shows the same image (a freeze frame, a still repeated), so neither a path
  nor a focal length exists in the data. A locked-off camera with things moving in front is this case too.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShotfieldError
from ..flow_store import FlowStore
from .correspondences import MIN_TEXTURE, texture_score

MIN_TEXTURED_SHARE = 0.01   # at least 1 % of the pixels must carry trackable texture
MIN_MOTION_PX = 0.25        # the static part of the image must move at least this much over the longest gap


def check_texture(gray: np.ndarray) -> float:
    """Raise unless the frames (F, H, W) uint8 have texture; returns the median textured share."""
    picks = np.unique(np.linspace(0, len(gray) - 1, min(len(gray), 8)).astype(int))
    share = float(np.median([np.mean(texture_score(gray[i]) >= MIN_TEXTURE) for i in picks]))
    if share < MIN_TEXTURED_SHARE:
        raise ShotfieldError(
            f"solve: the frames have almost no texture ({100 * share:.2f} % of pixels carry detail), so there is "
            "nothing to track; use footage with visible detail, or a larger --long-side if detail is lost at "
            "the working size")
    return share


def check_camera_motion(gray: np.ndarray, store: FlowStore, moving: np.ndarray | None = None) -> float:
    """Raise when the camera does not move: the frames are identical or the static scene's flow is ~0
    over the longest gap. Returns the 90th percentile of that flow in pixels."""
    if np.all(gray == gray[:1]):
        raise ShotfieldError(
            "solve: all frames are the same image (a freeze frame or one still repeated), so the camera's motion "
            "and focal length cannot be solved; check the footage or --frames, or set the camera by hand")
    gap = max(g for g in store.gaps if g < store.frames)
    motion = []
    for t in range(0, store.frames - gap, max(1, (store.frames - gap) // 8)):
        ok = store.forward_valid(t, gap)
        if moving is not None:
            ok &= ~moving[t]
        if ok.sum() > 0:
            motion.append(np.percentile(np.linalg.norm(store.forward(t, gap)[ok], axis=-1), 90))
    p90 = float(np.max(motion)) if motion else 0.0
    if p90 < MIN_MOTION_PX:
        raise ShotfieldError(
            f"solve: the camera does not move (the background shifts {p90:.2f} px over {gap} frames), so its path "
            "and focal length cannot be solved; for a locked-off shot set a static camera by hand, or use a "
            "longer --frames range in which the camera moves")
    return p90
