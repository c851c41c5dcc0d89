"""The first camera solve and the choice of camera model: full (rotation + translation) or tripod.

Both models are fitted to the same static flow correspondences and the simpler one wins when it explains
them nearly as well -- model selection on the whole shot rather than a threshold on one frame pair:

1. Tripod test on the homography/epipolar inliers of the longest gaps (tripod.detect_tripod). A clear
   nodal pan skips SfM entirely.
2. Otherwise a rotation-only bundle adjustment (cheap: no points) and pycolmap SfM on keyframes (with the
   first-pass motion masks, then relaxed, then without masks), PnP for the other frames and a full dense
   bundle adjustment. If the rotation-only residual is within TRIPOD_RESIDUAL_RATIO of the full one, the
   translation explains nothing but noise: the shot is solved as a tripod (low parallax included).
3. Where SfM fails: a rotation-only fit below ROTATION_FITS_PX is a nodal pan that defeated COLMAP's
   initialisation (it needs parallax); anything else goes to the learned ego-motion hook (fallback.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..flow_store import FlowStore
from . import dense_ba, fallback, sfm, tripod
from .correspondences import Correspondences
from .track import CameraTrack, interpolate_track

MIN_KEYFRAME_SHARE = 0.5      # SfM must register at least half of the keyframes
#: Tripod when the rotation-only solve's median residual is within this factor of the full solve's
#: (measured: tripods 1.0, hand-held shots with moving objects 25-50).
TRIPOD_RESIDUAL_RATIO = 1.25
#: Where SfM fails, a rotation-only solve whose median residual is below this (px at 320) is a nodal pan.
ROTATION_FITS_PX = 0.25
ROTATION_SELECTION_ITERATIONS = 15


@dataclass
class InitialSolve:
    result: dense_ba.BAResult
    options: dense_ba.BAOptions          # the options to refine it with
    tripod: bool
    method: str
    parallax: tripod.ParallaxReport
    rotation_median_px: float
    full_median_px: float | None = None
    info: dict = field(default_factory=dict)  # facts for cameras.json (keyframes, PnP, SfM attempts)


def initial_solve(rgb: np.ndarray, moving: np.ndarray, store: FlowStore, corr: Correspondences, iterations: int,
                  device: str, job_dir, step) -> InitialSolve:
    """rgb: (F, H, W, 3) uint8 frames; moving: (F, H, W) bool first-pass masks; step(fraction, message)
    reports progress. Raises ShotfieldError (through the fallback hook) when nothing solves the shot."""
    n, h, w = rgb.shape[:3]
    parallax = tripod.detect_tripod(corr, n, w, h)
    step(0.15, "rotation-only solve (tripod model)")
    rotation_options = dense_ba.BAOptions(iterations=iterations, rotation_only=True)
    # Only its residual matters unless the shot turns out a tripod; then the second pass refines it further.
    rotation = dense_ba.bundle_adjust(tripod.rotation_only_track(corr, n, w, h), corr, device=device,
                                      options=dense_ba.BAOptions(iterations=ROTATION_SELECTION_ITERATIONS, rotation_only=True))
    tripod_method = "tripod: rotation from homographies + dense BA (rotation and focal only)"
    if parallax.tripod:
        return InitialSolve(rotation, rotation_options, True, tripod_method, parallax, rotation.median_px)
    step(0.2, "structure from motion on keyframes (pycolmap)")
    initial, info, failure = sparse_solve(rgb, moving, store, step)
    method = f"pycolmap {info.get('mapper', 'global')} SfM on keyframes + PnP + dense BA"
    if initial is None:
        if rotation.median_px <= ROTATION_FITS_PX * max(h, w) / 320:
            return InitialSolve(rotation, rotation_options, True, tripod_method, parallax, rotation.median_px, info=info)
        initial = fallback.learned_ego_motion(job_dir, moving, device, failure)
        method = "learned ego-motion + dense BA"
    step(0.45, "dense bundle adjustment over the flow")
    options = dense_ba.BAOptions(iterations=iterations, anchor=int(np.flatnonzero(initial.registered)[0]))
    full = dense_ba.bundle_adjust(initial, corr, options=options, device=device)
    if rotation.median_px <= TRIPOD_RESIDUAL_RATIO * full.median_px:
        return InitialSolve(rotation, rotation_options, True, tripod_method + " (low parallax)", parallax,
                            rotation.median_px, full.median_px)
    return InitialSolve(full, options, False, method, parallax, rotation.median_px, full.median_px, info)


def sparse_solve(rgb: np.ndarray, moving: np.ndarray, store: FlowStore, step) -> tuple[CameraTrack | None, dict, str]:
    """Keyframe SfM + PnP: (initial track with every frame filled in, or None; facts; why it failed).

    Attempts in order: global mapping with the first-pass masks; incremental mapping with its initial-pair
    demands relaxed, with the masks; global mapping without masks (they can be wrong where a moving object
    fills most of the frame, and COLMAP's own multi-view checks may then find the static scene better
    alone). The attempt that registers most keyframes wins."""
    n = len(rgb)
    keyframes = sfm.choose_keyframes(n)
    needed = max(3, MIN_KEYFRAME_SHARE * len(keyframes))
    best, registered, masked, used = None, 0, True, None
    attempts = [(moving, "global", False), (moving, "incremental", True), (None, "global", False)]
    for k, (masks, mapper, relaxed) in enumerate(attempts):
        if k:
            how = "incremental, relaxed" if relaxed else "without masks"
            step(0.2 + 0.05 * k, f"structure from motion again, {how} ({registered}/{len(keyframes)} keyframes so far)")
        attempt = sfm.run_sfm(rgb, masks, keyframes, mapper=mapper, relaxed=relaxed)
        if attempt is not None and attempt.registered_keyframes > registered:
            best, registered, masked, used = attempt, attempt.registered_keyframes, masks is not None, mapper
        if registered >= needed:
            break
    info = {"keyframes": len(keyframes), "keyframes_registered": registered, "mapper": used}
    if best is None or registered < needed:
        return None, info, f"pycolmap registered {registered} of {len(keyframes)} keyframes"
    step(0.35, f"registering the other frames ({registered}/{len(keyframes)} keyframes solved)")
    best = sfm.register_remaining(best, store)
    info.update(pnp_registered=best.pnp_registered, sfm_k1=round(best.k1, 6), sfm_masked=masked)
    return interpolate_track(best.track), info, ""
