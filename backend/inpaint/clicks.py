"""Masks from clicks and boxes: `--remove CLICKS.json`, a JSON list of marks on some frames (working-frame
pixels, origin at the top-left corner of the top-left pixel):

    [{"frame": 12, "point": [x, y]}, {"frame": 30, "box": [x0, y0, x1, y1]}, ...]

A point selects the motion-mask region under it (a moving object); on the static set, the connected region
around it whose depth changes by less than DEPTH_STEP (relative) from pixel to pixel (a flood fill on log
depth: the object up to its depth edges). A box selects the motion-mask regions mostly inside it; without
one, OpenCV's GrabCut segments the box (colour models of the box and its surroundings, a graph cut).
The masks then propagate like drawn ones (propagate.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..errors import ShotfieldError

DEPTH_STEP = 0.06        # relative depth change between neighbouring pixels of one surface (grazing ground included)
INSIDE_SHARE = 0.6       # a motion region is the box's object when this share of it lies inside the box
GRABCUT_ITERATIONS = 5


def read_clicks(path: Path, frames: int, width: int, height: int) -> list[dict]:
    try:
        marks = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShotfieldError(f"--remove {path}: cannot read the clicks ({exc}); expected a JSON list of "
                             '{"frame": N, "point": [x, y]} or {"frame": N, "box": [x0, y0, x1, y1]}') from exc
    if not isinstance(marks, list) or not marks:
        raise ShotfieldError(f"--remove {path}: expected a non-empty JSON list of points and boxes")
    for m in marks:
        ok = isinstance(m, dict) and isinstance(m.get("frame"), int) and 0 <= m["frame"] < frames and (
            (isinstance(m.get("point"), list) and len(m["point"]) == 2) or (isinstance(m.get("box"), list) and len(m["box"]) == 4))
        if not ok:
            raise ShotfieldError(f"--remove {path}: {m!r} is not a mark; use {{\"frame\": 0..{frames - 1}, \"point\": [x, y]}} "
                                 "or {\"frame\": N, \"box\": [x0, y0, x1, y1]} in working-frame pixels")
        xs = [m["point"][0]] if "point" in m else m["box"][0::2]
        ys = [m["point"][1]] if "point" in m else m["box"][1::2]
        if min(xs) < 0 or max(xs) > width or min(ys) < 0 or max(ys) > height:
            raise ShotfieldError(f"--remove {path}: {m!r} lies outside the {width}x{height} working frame")
    return marks


def point_mask(rgb: np.ndarray, depth: np.ndarray, motion: np.ndarray, x: float, y: float) -> np.ndarray:
    h, w = motion.shape
    px, py = min(int(x), w - 1), min(int(y), h - 1)
    if motion[py, px]:
        _, labels = cv2.connectedComponents(motion.astype(np.uint8), connectivity=8)
        return labels == labels[py, px]
    # Static: grow over the pixels that continue the clicked surface without a depth jump (an object on the
    # static set stands out from what is behind it; colour would split a textured surface).
    d = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
    log_depth = np.log(np.maximum(d, 1e-6))
    region = np.zeros((h + 2, w + 2), np.uint8)
    region[1:-1, 1:-1] = motion  # moving things are barriers: a ball resting on the floor is not the floor
    cv2.floodFill(log_depth.copy(), region, (px, py), 0, DEPTH_STEP, DEPTH_STEP,
                  flags=4 | cv2.FLOODFILL_MASK_ONLY | (2 << 8))
    return region[1:-1, 1:-1] == 2


def box_mask(rgb: np.ndarray, motion: np.ndarray, box) -> np.ndarray:
    h, w = motion.shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = sorted((max(0, x0), min(w, x1)))
    y0, y1 = sorted((max(0, y0), min(h, y1)))
    inside = np.zeros((h, w), bool)
    inside[y0:y1, x0:x1] = True
    count, labels = cv2.connectedComponents(motion.astype(np.uint8), connectivity=8)
    if count > 1:
        area = np.bincount(labels.ravel(), minlength=count)
        within = np.bincount(labels[inside], minlength=count)
        chosen = within >= INSIDE_SHARE * area
        chosen[0] = False
        if chosen.any():
            return chosen[labels] & inside
    if x1 - x0 < 4 or y1 - y0 < 4:
        return inside
    gc = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), gc, (x0, y0, x1 - x0, y1 - y0), bgd, fgd,
                GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_RECT)
    return (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)


def masks_from_clicks(marks: list[dict], rgb: np.ndarray, depth: np.ndarray, motion: np.ndarray) -> dict[int, np.ndarray]:
    """{frame: bool mask} of the marked objects (the union of the marks on each frame)."""
    out: dict[int, np.ndarray] = {}
    for m in marks:
        f = m["frame"]
        mask = point_mask(rgb[f], depth[f], motion[f], *m["point"]) if "point" in m else box_mask(rgb[f], motion[f], m["box"])
        out[f] = out.get(f, np.zeros(motion.shape[1:], bool)) | mask
    return out
