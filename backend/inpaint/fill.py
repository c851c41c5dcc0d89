"""Clean plates: the background other frames saw, then a 3D-consistent fill of what no frame saw.

1. Build the static scene (scene.py) from the source frames' pixels outside the removal masks.
2. Render it inside each frame's removal mask (plus a feather margin): wherever some frame saw the
   background, that is the plate there.
3. Regions no frame saw (holes): take the frame with the largest hole as the reference view, inpaint its RGB
   (OpenCV Telea) and its depth (Telea on inverse depth: the hole's depth continues the surrounding
   background, far surfaces win over near ones less abruptly) in 2D, lift the filled pixels into the same
   point set and render the frames with holes again. Repeat on the next frame with the largest hole. Every
   frame that sees a filled region therefore shows the same fill: no per-frame guesses, no flicker.
4. What is still uncovered after the rounds (a few pixels of splat cracks) is inpainted per frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from .masks import dilate
from .scene import SUPPORT_FRAMES, StaticScene, source_frames

TELEA_RADIUS = 5
FILL_ROUNDS = {"preview": 4, "final": 8}


@dataclass
class Plates:
    rgb: np.ndarray                     # (F, H, W, 3) uint8 at the working size: fill composited over the frame
    fill: np.ndarray                    # (F, H, W, 3) uint8: the fill alone where alpha > 0 (what full-size
                                        # plates upscale and composite over the footage)
    alpha: np.ndarray                   # (F, H, W) float32: 1 = plate, 0 = original frame (feathered edge)
    stats: dict = field(default_factory=dict)


def feather_alpha(mask: np.ndarray, available: np.ndarray, radius: int) -> np.ndarray:
    """1 inside the mask, falling smoothly to 0 over `radius` px outside it (only where the plate exists)."""
    if radius <= 0:
        return mask.astype(np.float32)
    distance = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
    ramp = np.clip(1.0 - distance / (radius + 1), 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no kink where it meets the mask
    return np.where(mask, 1.0, np.where(available, ramp, 0.0)).astype(np.float32)


def build_plates(rgb: np.ndarray, depth: np.ndarray, removed: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray,
                 reliable: np.ndarray, device, effort: float, quality: str, feather: int, progress=None, log=None,
                 exclude: np.ndarray | None = None) -> Plates:
    """rgb (F,H,W,3) uint8, depth (F,H,W) float32, removed (F,H,W) bool (the dilated removal masks),
    reliable (F,H,W) bool (depth usable for lifting), exclude (F,H,W) bool: pixels never lifted into the
    static scene besides the removed ones (everything that moves: see stages/inpaint.py)."""
    frames, h, w = removed.shape
    say = progress or (lambda f, m: None)
    log = log or (lambda m: None)
    scene = StaticScene(w, h, device)
    sources = source_frames(frames, effort)
    for n, s in enumerate(sources):
        keep = reliable[s] & ~removed[s] & (~exclude[s] if exclude is not None else True)
        scene.add_pixels(rgb[s], depth[s], keep, K[s], world_from_camera[s], s)
        say(0.3 * (n + 1) / len(sources), f"building the static scene: frame {s}")
    scene.origin = torch.as_tensor(world_from_camera[sources[len(sources) // 2]][:3, 3], dtype=torch.float32, device=device)
    raw = len(scene)
    fx = float(np.median(K[:, 0, 0]))
    # Points only one or two source frames put somewhere are a moving object the masks missed (scene.py).
    transient = scene.drop_transient(fx, min(SUPPORT_FRAMES, len(sources) - 1))
    scene.merge(fx)
    log(f"inpaint: static scene of {len(scene)} points ({raw} before merging, {transient} seen by fewer than "
        f"{SUPPORT_FRAMES} frames left out) from {len(sources)} source frames")

    regions = np.stack([dilate(m, feather + 1) for m in removed])
    renders = []
    for t in range(frames):
        renders.append(scene.render(K[t], world_from_camera[t], regions[t], t) if removed[t].any() else None)
        say(0.3 + 0.3 * (t + 1) / frames, f"rendering the background: frame {t}")
    holes = np.stack([removed[t] & ~renders[t].covered if renders[t] is not None else np.zeros((h, w), bool)
                      for t in range(frames)])
    seen_share = 1.0 - holes.sum() / max(int(removed.sum()), 1)
    min_hole = max(8, int(5e-4 * h * w))  # smaller holes are splat cracks: inpainted per frame below
    rounds = 0
    lifted = 0
    for rounds in range(1, FILL_ROUNDS[quality] + 1):
        areas = holes.reshape(frames, -1).sum(1)
        r = int(np.argmax(areas))
        if areas[r] < min_hole:
            rounds -= 1
            break
        plate_r = np.where(renders[r].covered[..., None], renders[r].rgb, rgb[r]).clip(0, 255).astype(np.uint8)
        hole = holes[r].astype(np.uint8)
        filled_rgb = cv2.inpaint(plate_r, hole, TELEA_RADIUS, cv2.INPAINT_TELEA)
        known_depth = np.where(renders[r].covered, renders[r].depth, np.where(removed[r], np.inf, depth[r]))
        inverse = np.where(np.isfinite(known_depth) & (known_depth > 0), 1.0 / np.maximum(known_depth, 1e-9), 0.0)
        unknown = (hole > 0) | ~np.isfinite(known_depth)
        filled_inverse = cv2.inpaint(inverse.astype(np.float32), unknown.astype(np.uint8), TELEA_RADIUS, cv2.INPAINT_TELEA)
        filled_depth = np.where(filled_inverse > 1e-9, 1.0 / np.maximum(filled_inverse, 1e-9), np.inf).astype(np.float32)
        before = len(scene)
        lifted += scene.add_pixels(filled_rgb, filled_depth, holes[r], K[r], world_from_camera[r], r)
        log(f"inpaint: round {rounds}: filled {int(areas[r])} unseen pixels on reference frame {r} and lifted them to 3D")
        for t in np.nonzero(areas >= 1)[0]:
            # Only the holes can change, and only through the points just added (nothing else reached them):
            # render those into the holes and merge; the covered pixels stay as they were.
            new = scene.render(K[t], world_from_camera[t], dilate(holes[t], 1), t, first=before)
            gained = new.covered & holes[t]
            renders[t].rgb[gained] = new.rgb[gained]
            renders[t].depth[gained] = new.depth[gained]
            renders[t].covered[gained] = True
            holes[t] = removed[t] & ~renders[t].covered
        holes[r] = False  # its own fill is exact there; splat cracks are handled below
        say(0.6 + 0.3 * rounds / FILL_ROUNDS[quality], f"filling what no frame saw: round {rounds}")

    plates = rgb.copy()
    fills = rgb.copy()
    alpha = np.zeros((frames, h, w), np.float32)
    residual = 0
    for t in range(frames):
        if renders[t] is None:
            continue
        rendered = renders[t].rgb.clip(0, 255).astype(np.uint8)
        plate = np.where(renders[t].covered[..., None], rendered, rgb[t])
        gaps = removed[t] & ~renders[t].covered
        if gaps.any():
            residual += int(gaps.sum())
            plate = cv2.inpaint(np.ascontiguousarray(plate), gaps.astype(np.uint8), 3, cv2.INPAINT_TELEA)
        available = renders[t].covered | removed[t]
        alpha[t] = feather_alpha(removed[t], available, feather)
        fills[t] = plate
        a = alpha[t][..., None]
        plates[t] = np.round(a * plate + (1 - a) * rgb[t]).astype(np.uint8)
    say(0.95, "plates composed")
    stats = {"source_frames": len(sources), "points": len(scene), "transient_points": transient, "seen_share": round(float(seen_share), 4),
             "fill_rounds": rounds, "lifted_fill_points": lifted, "residual_pixels": residual}
    log(f"inpaint: {stats}")
    return Plates(plates, fills, alpha, stats)
