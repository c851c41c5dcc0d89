"""Which pixels of the solve's motion masks really move: the masks are generous (measured on the default test
shot: half of their pixels are static ground around the objects), and a static pixel left inside a mask
loses its triangulated depth and shifts the ground-contact cue (prior.contact_fill) to the ground below
the mask instead of below the object.

    object_pixels(shot, depth, confidence) -> (F, H, W) bool, a subset of shot.moving
    release_static_border(shot, tight, labels, depth, confidence) -> (F, H, W) bool, the background ring
    refine_outline(shot, objects) -> (F, H, W) bool, the objects' outline moved to their colour edge

With the solve's cameras and a depth for the static scene (the triangulation, its holes filled), each pixel
has the flow a static point would have; a pixel of the mask is kept as moving where the measured flow
departs from that by more than RESIDUAL_PX (at 320 px) per frame of gap (median over the gaps 1 and 2, both
directions), grown by GROW: what the cameras and the static depth explain is static. The depth stage
triangulates the static pixels inside the masks again with these tighter masks (train.static_prior).
Measured: default test shot (320x240) precision 0.63 (the masks: 0.50), recall 0.993; quick test shot
(160x120) precision 0.43 (the masks: 0.37), 98.6 % of the masks' object pixels kept.
"""
from __future__ import annotations

import cv2
import numpy as np

from .prior import fill_log_depth
from .rigid import affine_flow
from .shot import ShotInputs

#: Per frame of gap, in pixels of a 320-pixel-wide image (scaled with the working size: object motion in
#: pixels scales with it); DIS flow on the static scene is good to ~0.05 px here.
RESIDUAL_PX = 0.3
#: The kept pixels grow by this (px) inside the mask: flow at an object's border is smeared over the ground,
#: and an object pixel taken for static gets a wrong triangulated depth (measured on the default shot:
#: 0.3 px and 3 px keep 99.3 % of the object pixels, 0.5 px and none 93.6 %).
GROW = 3
GAPS = (1, 2)
#: Width (px, kernel size of the erosion) of the border ring `release_static_border` looks at.
BORDER = 5
OPEN = np.ones((3, 3), np.uint8)
#: refine_outline: the object pixels farther than OUTLINE_CORE px (at 320 px, at least 1) inside their outline
#: stay object for certain; the band OUTLINE_BAND px around them may become object; GrabCut iterations.
OUTLINE_CORE = 1
OUTLINE_BAND = 8
OUTLINE_ITERATIONS = 4


def static_flow(log_depth: np.ndarray, K_t, K_s, world_from_t, world_from_s) -> np.ndarray:
    """(H, W, 2) flow t -> s of a static scene with planar log depth (H, W) in camera t."""
    h, w = log_depth.shape
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    pix = np.stack([xs, ys, np.ones_like(xs)], -1)
    X = (pix @ np.linalg.inv(K_t).T) * np.exp(log_depth)[..., None]
    s_from_t = np.linalg.inv(world_from_s) @ world_from_t
    Y = X @ s_from_t[:3, :3].T + s_from_t[:3, 3]
    uv = Y @ np.asarray(K_s).T
    with np.errstate(divide="ignore", invalid="ignore"):
        return uv[..., :2] / uv[..., 2:3] - pix[..., :2]


def object_pixels(shot: ShotInputs, depth: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """depth/confidence: the triangulation of the static pixels (0 = unknown)."""
    assert shot.has_cameras
    pairs = {(p.t, p.s): p for p in shot.pairs}
    threshold = RESIDUAL_PX * max(shot.size) / 320
    out = np.zeros_like(shot.moving)
    for t in range(shot.frames):
        if not shot.moving[t].any():
            continue
        filled = fill_log_depth(depth[t], confidence[t])
        residuals = []
        for g in GAPS:
            for s in (t + g, t - g):
                p = pairs.get((t, s))
                if p is None:
                    continue
                induced = static_flow(filled, shot.K[t], shot.K[s], shot.world_from_camera[t],
                                      shot.world_from_camera[s])
                residuals.append(np.linalg.norm(p.flow - induced, axis=-1) / g)
        if not residuals:
            out[t] = shot.moving[t]
            continue
        r = np.nan_to_num(np.median(np.stack(residuals), 0), nan=np.inf)
        moving = cv2.morphologyEx((shot.moving[t] & (r > threshold)).astype(np.uint8), cv2.MORPH_OPEN, OPEN)
        out[t] = cv2.dilate(moving, np.ones((GROW, GROW), np.uint8)).astype(bool) & shot.moving[t]
    return out


def release_static_border(shot: ShotInputs, tight: np.ndarray, labels: np.ndarray, depth: np.ndarray,
                          confidence: np.ndarray) -> np.ndarray:
    """(F, H, W) bool: the pixels of the object masks' border (BORDER px wide) whose flow the static scene
    explains better than their object's affine motion (rigid.object_labels' identities; median of the
    residuals towards t-1 and t+1). The flow is smeared across an object's outline, so `object_pixels`
    keeps a ring of background around each object, and the contact cue gives it the object's depth;
    released, it takes the filled static depth. Measured (prior only; precision of the object pixels,
    AbsRel static / moving): quick shot 0.43 -> 0.50, 0.048 / 0.107 -> 0.045 / 0.113, δ<1.25 0.945 -> 0.950;
    default shot 0.63 -> 0.73, 0.0235 / 0.0465 -> 0.0212 / 0.0482."""
    pairs = {(p.t, p.s): p for p in shot.pairs}
    h, w = shot.size
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    grid = np.stack([xs, ys, np.ones_like(xs)], -1)
    out = np.zeros_like(tight)
    ring_kernel = np.ones((BORDER, BORDER), np.uint8)
    for t in range(shot.frames):
        if not tight[t].any():
            continue
        ring = tight[t] & ~cv2.erode(tight[t].astype(np.uint8), ring_kernel).astype(bool)
        filled = fill_log_depth(depth[t], confidence[t])
        r_static, r_object = [], []
        for s in (t + 1, t - 1):
            p = pairs.get((t, s))
            if p is None:
                continue
            induced = static_flow(filled, shot.K[t], shot.K[s], shot.world_from_camera[t], shot.world_from_camera[s])
            r_static.append(np.linalg.norm(p.flow - induced, axis=-1))
            r = np.full((h, w), np.inf)
            for k in np.unique(labels[t][labels[t] > 0]):
                own = labels[t] == k
                core = cv2.erode(own.astype(np.uint8), ring_kernel).astype(bool) & p.valid
                sel = core if core.sum() >= 12 else own & p.valid
                if sel.sum() < 12:
                    continue
                M = affine_flow(np.stack([xs[sel], ys[sel]], 1), p.flow[sel])
                r = np.where(own, np.linalg.norm(grid @ M - p.flow, axis=-1), r)
            r_object.append(r)
        if r_static:
            out[t] = ring & (np.median(r_static, 0) < np.median(r_object, 0))
    return out


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def refine_outline(shot: ShotInputs, objects: np.ndarray) -> np.ndarray:
    """(F, H, W) bool: the object pixels with their outline moved to the objects' colour edge (OpenCV's
    GrabCut, per connected part of `objects` and frame). The motion evidence places an object but not its
    outline: the solve's masks miss parts of an object where its flow is weak (on the quick test shot they
    hold 84 % of the objects' pixels, the crate 30-48 % in five frames) and the flow is smeared across the
    outline onto the background. Here the part's pixels more than OUTLINE_CORE px inside its outline are
    certainly object, its other pixels probably object, a band of OUTLINE_BAND px around it probably
    background and the rest background; GrabCut's colour models of object and background then decide the
    uncertain pixels. Measured (prior, AbsRel moving / static): default shot 0.0385 / 0.0205 ->
    0.0362 / 0.0202, quick shot 0.1110 / 0.0443 -> 0.0977 / 0.0428 (docs/depth.md)."""
    scale = max(shot.size) / 320
    core_kernel = _disc(max(1, round(OUTLINE_CORE * scale)))
    band_kernel = _disc(max(1, round(OUTLINE_BAND * scale)))
    out = objects.copy()
    for t in range(shot.frames):
        if not objects[t].any():
            continue
        image = np.ascontiguousarray(np.clip(np.rint(shot.rgb[t] * 255), 0, 255).astype(np.uint8))
        count, parts = cv2.connectedComponents(objects[t].astype(np.uint8), connectivity=8)
        for k in range(1, count):
            part = (parts == k).astype(np.uint8)
            core = cv2.erode(part, core_kernel).astype(bool)
            if core.sum() < 10:
                continue   # too small for colour models: the motion evidence stays
            band = cv2.dilate(part, band_kernel)
            context = cv2.dilate(band, band_kernel).astype(bool)   # background samples around the band
            ys, xs = np.nonzero(context)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            labels = np.full(part.shape, cv2.GC_BGD, np.uint8)
            labels[band.astype(bool)] = cv2.GC_PR_BGD
            labels[part.astype(bool)] = cv2.GC_PR_FGD
            labels[core] = cv2.GC_FGD
            window = np.ascontiguousarray(labels[y0:y1, x0:x1])
            if not (window == cv2.GC_BGD).any():
                continue   # the part fills the frame: no background to model
            cv2.grabCut(np.ascontiguousarray(image[y0:y1, x0:x1]), window, None, np.zeros((1, 65)),
                        np.zeros((1, 65)), OUTLINE_ITERATIONS, cv2.GC_INIT_WITH_MASK)
            fg = (window == cv2.GC_FGD) | (window == cv2.GC_PR_FGD)
            region = out[t, y0:y1, x0:x1]
            region &= ~(part[y0:y1, x0:x1].astype(bool) & ~fg)   # the part's pixels GrabCut gives the background
            region |= fg
    return out
