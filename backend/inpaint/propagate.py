"""A mask drawn on one or more frames -> the object's mask on every frame.

Each connected part of a drawn mask is classified by the solve's motion masks on its own frame (and the
change evidence where those say static):
- static (less than half of it moves): its pixels are lifted to 3D with the frame's depth and camera and
  projected into every other frame (splatted, closed, and kept only where the projected point is not
  behind that frame's depth, i.e. not occluded there);
- moving: followed frame to frame by two methods, one chosen for the shot (`choose`): `track.follow` moves
  the object's amodal outline with the camera (at the object's depth) plus its own velocity and cuts its
  visible pixels out of a thin band around that outline with GrabCut, never more than a pixel outside the
  solve's motion mask; `snap.propagate_snapped` takes the motion-mask regions the moved outline overlaps.
  The snap is exact where the motion masks are tight (ground truth); the real solve's are 1.5-2x the object
  (flow boundaries), and snapping to them would remove that halo too. Together they stand in for the video
  segmenter and SPIn-NeRF's objectness head. Propagation runs from every drawn frame, and each frame takes
  the mask from the nearest drawn frame.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .change import change_masks
from .geometry import project, unproject
from .masks import clean, dilate, disk, keep_nearest
from .snap import propagate_snapped
from .track import centroid, follow, matte_edge, shift_mask

STATIC_SHARE = 0.5      # a drawn part is "moving" when at least this share of it is in the motion mask
DEPTH_TOLERANCE = 0.05  # a reprojected static point is visible when its depth <= the frame's depth * (1 + this)


FULLER_VIEW_FRAMES = 4   # how far the other direction may look for the nearest fuller view of a partly hidden object
FULLER_VIEW_SHARE = 1.1
WHOLE_VIEW_FRAMES = 8    # ... and for the fullest views (the object seen whole): those within WHOLE_VIEW_SHARE of
WHOLE_VIEW_SHARE = 0.97  # the largest area there, at most WHOLE_VIEWS of them
WHOLE_VIEWS = 4
VELOCITY_PRIOR = 6       # velocity samples handed from one pass to the other
ROUND_TRIP_IOU = 0.5     # a run from a fuller view is used when its mask on the drawn frame has this IoU with the drawn one
TIGHT_SHARE = 1.2        # snapped masks at most this much larger than the tracked ones: tight motion masks
AGREE_IOU = 0.8          # ... and the same outline as the tracked ones (median IoU over the frames)
RIM_PX = 2               # a fuller view adds a part of the object where it reaches beyond this many px of the
PART_SHARE = 0.05        # drawn mask with at least this share of the drawn mask's pixels (else it adds a rim)


def fuller_views(mask: np.ndarray, k: int, other: dict[int, np.ndarray]) -> list[int]:
    """Frames of a pass the other way from drawn frame k whose view of the object shows more of it than the
    drawn one (FULLER_VIEW_SHARE, and a part, not a rim: `adds_a_part`): the largest within FULLER_VIEW_FRAMES,
    then the fullest within WHOLE_VIEW_FRAMES (within WHOLE_VIEW_SHARE of the largest area there), nearest
    first."""
    fuller = sorted((j for j in other if abs(j - k) <= WHOLE_VIEW_FRAMES and other[j].sum() > FULLER_VIEW_SHARE * mask.sum()
                     and adds_a_part(mask, other[j])), key=lambda j: abs(j - k))
    if not fuller:
        return []
    near = [j for j in fuller if abs(j - k) <= FULLER_VIEW_FRAMES]
    out = [max(near, key=lambda j: int(other[j].sum()))] if near else []
    top = max(int(other[j].sum()) for j in fuller)
    whole = [j for j in fuller if other[j].sum() >= WHOLE_VIEW_SHARE * top and j not in out]
    return out + whole[:WHOLE_VIEWS]


def vote(runs: list[dict[int, np.ndarray]]) -> dict[int, np.ndarray]:
    """Per frame, the pixels that at least half of the runs reaching it hold."""
    out = {}
    for f in set().union(*runs):
        masks = [r[f] for r in runs if f in r]
        out[f] = 2 * np.sum(masks, axis=0) >= len(masks)
    return out


def propagate_moving(drawn: dict[int, np.ndarray], rgb: np.ndarray, motion: np.ndarray, evidence: np.ndarray,
                     depth: np.ndarray, store, K: np.ndarray, world_from_camera: np.ndarray, min_area: int) -> np.ndarray:
    """(F, H, W) bool: the moving parts of the drawn masks followed through the shot (see track.follow).

    A drawn frame may show the object partly hidden; its template would then miss the hidden part for good.
    So when the other direction finds the object clearly larger nearby (`fuller_views`), this direction is run
    again from each such fuller view (through the drawn frame and on), starting with the object's own velocity
    as the other pass measured it, and the runs that find the drawn mask again on the drawn frame vote on
    every frame: through an occluder a single run hangs on where its outline stood when the object went behind
    it (the default shot's ball drawn on frame 23, behind the column: runs from frames 15-19 reach IoU 0.27-0.88
    on frames 24-25)."""
    frames = motion.shape[0]
    # GrabCut may take any pixel that either test finds moving: the solve's masks are complete where the
    # flow is (the default shot), the change evidence where the flow blurs a small object away.
    moving = motion | evidence
    best = np.zeros(motion.shape, bool)
    distance = np.full(frames, np.inf)
    for k, mask in sorted(drawn.items()):
        def run(start, m, step, prior=None):
            return follow(rgb, store, moving, evidence, depth, K, world_from_camera, start, m, step, min_area, prior)

        results = {step: run(k, mask, step) for step in (1, -1)}
        passes = {step: results[step][0] for step in (1, -1)}
        for step in (1, -1):
            other, other_samples = results[-step]
            runs = []
            for j in fuller_views(mask, k, other):
                # The other pass measured the object's own velocity on whole views near here: this pass
                # starts with those samples (negated, nearest last) instead of the flow's guess.
                again, _ = run(j, other[j], step, [-v for v in reversed(other_samples[:VELOCITY_PRIOR])])
                # ... if it finds on the drawn frame what was drawn there: a larger view may be the object
                # merged with a neighbour (the quick shot's ball against the cube, drawn on frame 14: the run
                # from frame 18 followed the cube back, IoU 0.0 on frames 0-13).
                back = again.get(k, np.zeros_like(mask))
                if (back & mask).sum() >= ROUND_TRIP_IOU * (back | mask).sum():
                    runs.append({f: m for f, m in again.items() if (f - k) * step > 0})
            if runs:
                passes[step] = vote(runs)
        keep_nearest(best, distance, k, {k: mask, **passes[1], **passes[-1]})
    # The edge pixels a cut left out, decided once on the masks kept (not inside the passes: a fuller view
    # that restarts a pass, and the outlines, stay what the cuts found). Never beyond where things may move.
    for t in range(frames):
        if t not in drawn and best[t].any():
            best[t] = matte_edge(np.ascontiguousarray(rgb[t][..., ::-1]), best[t], moving[t])
    return best


def adds_a_part(drawn: np.ndarray, fuller: np.ndarray) -> bool:
    """Whether `fuller` (a larger view of the drawn object on a nearby frame) shows a part the drawn view lacks
    (the object was partly hidden there), not only a rim around it (the halo a cut takes in from the change
    evidence or a neighbour: the quick shot's ball drawn whole on frame 19, where the view 4 frames on is 1.1x
    it with a rim a pixel or two wide, and the rerun from it took in the cube behind the ball, IoU 0.75 ->
    0.39). The fuller view is laid on the drawn one (centroids, then the whole-pixel shift within RIM_PX that
    overlaps most), and its pixels more than RIM_PX beyond the drawn mask are counted."""
    c = np.round(centroid(drawn) - centroid(fuller)).astype(int)
    moved = shift_mask(fuller, (int(c[0]), int(c[1])))
    shifts = [(dx, dy) for dy in range(-RIM_PX, RIM_PX + 1) for dx in range(-RIM_PX, RIM_PX + 1)]
    best = max(shifts, key=lambda s: ((shift_mask(moved, s) & drawn).sum(), -abs(s[0]) - abs(s[1])))
    beyond = shift_mask(moved, best) & ~dilate(drawn, RIM_PX)
    return bool(beyond.sum() >= PART_SHARE * drawn.sum())


def propagate_static(drawn: dict[int, np.ndarray], depth: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray,
                     device) -> np.ndarray:
    """(F, H, W) bool: the static parts of the drawn masks reprojected through the solved geometry."""
    frames, h, w = depth.shape
    out = np.zeros((frames, h, w), bool)
    for k, mask in drawn.items():
        d = depth[k]
        ok = mask & np.isfinite(d) & (d > 0)
        if not ok.any():
            continue
        v, u = np.nonzero(ok)
        points = unproject(K[k], world_from_camera[k], torch.as_tensor(v, device=device),
                           torch.as_tensor(u, device=device), torch.as_tensor(d[v, u], dtype=torch.float32, device=device))
        for t in range(frames):
            xy, z = project(K[t], world_from_camera[t], points)
            xy, z = xy.cpu().numpy(), z.cpu().numpy()
            x = np.floor(xy[:, 0]).astype(np.int64)
            y = np.floor(xy[:, 1]).astype(np.int64)
            inside = (z > 0) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
            x, y, z = x[inside], y[inside], z[inside]
            dt = depth[t][y, x]
            visible = ~np.isfinite(dt) | (dt <= 0) | (z <= dt * (1 + DEPTH_TOLERANCE))
            splat = np.zeros((h, w), np.uint8)
            splat[y[visible], x[visible]] = 1
            # Splatted points leave gaps where this view sees the surface larger than the drawn one did.
            out[t] |= cv2.morphologyEx(splat, cv2.MORPH_CLOSE, disk(2)).astype(bool)
        out[k] |= mask
    return out


def choose(tracked: np.ndarray, snapped: np.ndarray) -> np.ndarray:
    """The snapped masks when the motion masks are tight around the object (the snapped mask is then no
    larger than the tracked one: over the frames where both found it, the median of their area ratio is at
    most TIGHT_SHARE) and complete (the snap finds it on every frame the tracker does) and they find the same
    outline (median IoU with the tracked masks at least AGREE_IOU: ground-truth motion masks 0.92 on the test
    shot's cube, where the tracker loses it on a few frames and the snap does not), and whole motion regions
    are the better outline; else the tracked masks (the motion masks carry a halo: the real solve's are
    1.5-2x the object; at low resolution they also miss it: on the 160x120 shot's real chain the snap lost
    the ball on 1-2 frames from every drawn frame tried, never with ground-truth masks; and where the
    solve's masks come tight but ragged, the snap takes other regions: session 11's solve on the quick shot,
    median IoU 0.70 with the tracked masks, 0.00 with the ball on frame 13). One choice for
    the whole shot: it is a property of the motion masks, and mixing the two from frame to frame would make
    the outline jump."""
    both = [t for t in range(len(tracked)) if tracked[t].any() and snapped[t].any()]
    if not both or any(tracked[t].any() and not snapped[t].any() for t in range(len(tracked))):
        return tracked
    if np.median([(tracked[t] & snapped[t]).sum() / (tracked[t] | snapped[t]).sum() for t in both]) < AGREE_IOU:
        return tracked
    ratio = float(np.median([snapped[t].sum() / tracked[t].sum() for t in both]))
    return snapped if ratio <= TIGHT_SHARE else tracked


def split_by_motion(mask: np.ndarray, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(moving part, static part) of a drawn mask: whole connected parts, classified by their motion share."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    moving = np.zeros_like(mask)
    for i in range(1, count):
        part = labels == i
        if (part & motion).sum() >= STATIC_SHARE * part.sum():
            moving |= part
    return moving, mask & ~moving


def propagate(drawn: dict[int, np.ndarray], motion: np.ndarray, store, depth: np.ndarray, K: np.ndarray,
              world_from_camera: np.ndarray, device, min_area: int, rgb: np.ndarray) -> np.ndarray:
    """(F, H, W) bool object masks on every frame from masks drawn on some frames; rgb (F, H, W, 3) uint8."""
    moving, static = {}, {}
    for k, m in drawn.items():
        moving[k], static[k] = split_by_motion(m, motion[k])
    evidence = None
    if any(m.any() for m in static.values()):
        # The solve's motion masks miss parts of small moving things (the quick test shot's ball drawn on frame
        # 15: none of the 36 px sliver beside the column is in them, on frame 14 none of its 134 px part): a
        # part is moving when it is in the motion masks or the change evidence (a static surface, lifted with
        # its depth, matches the frames around it).
        evidence = change_masks(rgb, depth, K, world_from_camera, device)
        for k, m in drawn.items():
            moving[k], static[k] = split_by_motion(m, motion[k] | evidence[k])
    out = np.zeros(motion.shape, bool)
    followed = np.zeros(motion.shape, bool)
    if any(m.any() for m in moving.values()):
        drawn_moving = {k: m for k, m in moving.items() if m.any()}
        evidence = change_masks(rgb, depth, K, world_from_camera, device) if evidence is None else evidence
        tracked = propagate_moving(drawn_moving, rgb, motion, evidence, depth, store, K, world_from_camera, min_area)
        snapped = propagate_snapped(drawn_moving, motion, depth, store, min_area)
        followed = choose(tracked, snapped)
    if any(m.any() for m in static.values()):
        out |= propagate_static({k: m for k, m in static.items() if m.any()}, depth, K, world_from_camera, device)
    # The followed masks were cleaned frame by frame already, keeping small parts where the object was
    # expected: cleaned again here, those would go.
    return np.stack([clean(m, min_area) | f for m, f in zip(out, followed)])
