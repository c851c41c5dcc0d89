"""A moving object followed by snapping to the solve's motion-mask regions (the first method; track.py is the
second, and propagate.py picks per frame).

The object is followed frame to frame by the optical flow (gap 1): its amodal template moves with the median
flow of its visible pixels (a partly hidden object keeps the velocity it had when seen whole), is nudged by a
few pixels onto the part in view (never onto background seen behind it), and the motion-mask regions the
template overlaps become its mask in the next frame. A motion region is multi-view evidence (the
epipolar/flow consistency test over many frame pairs that the solve did); the flow only says which region is
the object, so errors do not accumulate from frame to frame. Where two moving things touch (one motion
region), depth splits them (the object's own depth band), flow where depth is unknown. Where no motion
region matches (the object stopped), the mask is carried by the flow alone.

Exact where the motion masks are tight around the objects; where they are wider (flow boundaries: the real
solve's masks are 1.5-2x the object), the snapped mask holds that halo too, and propagate.py takes
track.py's mask instead.
"""
from __future__ import annotations

import cv2
import numpy as np

from .masks import clean, dilate, keep_nearest

SELECT_SHARE = 0.3      # a motion region is the object's when this share of it (or of the carried mask) overlaps
WHOLE_SHARE = 0.85      # an object showing this share of its template is seen whole enough to trust its flow
GROWTH_SHARE = 1.3      # an object grows at most this much from one frame to the next (more: it merged)
DEPTH_BAND = 0.08       # pixels within this relative depth of the object's median depth belong to it


def warp_mask(mask: np.ndarray, flow_to_source: np.ndarray) -> np.ndarray:
    """Carry a mask into another frame: each target pixel q takes the mask at q + flow_to_source[q]."""
    h, w = mask.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx = xs + flow_to_source[..., 0]
    my = ys + flow_to_source[..., 1]
    warped = cv2.remap(mask.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped > 0.5


def shift_mask(mask: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    h, w = mask.shape
    return cv2.warpAffine(mask.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR) > 0.5


def object_motion(visible: np.ndarray, flow: np.ndarray, valid: np.ndarray) -> tuple[float, float] | None:
    """Median displacement of an object's visible pixels (forward-backward consistent flow where there is
    enough of it): how the whole object moves, also the parts of it hidden in this frame."""
    use = visible & valid
    if use.sum() < 5:
        use = visible
    if not use.any():
        return None
    d = flow[use]
    return float(np.median(d[:, 0])), float(np.median(d[:, 1]))


def select_regions(template: np.ndarray, motion: np.ndarray) -> np.ndarray | None:
    """The motion-mask regions that are the object whose predicted (amodal) shape is `template`; None when
    no region is (the object stopped, or is hidden)."""
    count, labels = cv2.connectedComponents(motion.astype(np.uint8), connectivity=8)
    if count <= 1 or not template.any():
        return None
    # A sliver coming out from behind an occluder lies at the template's edge: count a margin of 2 px.
    near = dilate(template, 2)
    overlap = np.bincount(labels[near], minlength=count)
    area = np.bincount(labels.ravel(), minlength=count)
    chosen = (overlap >= SELECT_SHARE * area) | (overlap >= SELECT_SHARE * template.sum())
    chosen[0] = False
    touched = overlap > 0
    touched[0] = False
    if not chosen.any() and overlap[touched].sum() < SELECT_SHARE * template.sum():
        return None
    # Whole regions that are mostly the object, and the template's part of regions it only touches (a
    # sliver merged into another moving thing's region; `separate` then keeps what moves with the object).
    return chosen[labels] | (touched[labels] & near)


def separate(selected: np.ndarray, flow_back: np.ndarray, d, depth: np.ndarray, object_depth) -> np.ndarray:
    """Motion regions of two moving things that touch are one region: keep the chosen pixels that belong to
    the object. Depth decides where it is known (within the object's own depth band; flow is unreliable
    exactly there, where one thing comes out from behind another); flow where it is not (their flow back to
    the previous frame is about -d)."""
    if d is None and object_depth is None:
        return selected
    known = np.isfinite(depth) & (depth > 0)
    keep = ~known
    if d is not None:
        speed = float(np.hypot(*d))
        keep &= np.hypot(flow_back[..., 0] + d[0], flow_back[..., 1] + d[1]) <= 1.0 + 0.3 * speed
    if object_depth is not None:
        centre, band = object_depth
        with np.errstate(invalid="ignore"):
            keep |= known & (np.abs(depth - centre) <= band * centre)
    else:
        keep |= known
    return selected & keep


def _depth_band(depth: np.ndarray, mask: np.ndarray):
    """(median depth, relative band) of an object's visible pixels: DEPTH_BAND, or twice the object's own
    relative spread (interquartile) when it reaches further in depth (a car driving away)."""
    values = depth[mask]
    values = values[np.isfinite(values) & (values > 0)]
    if len(values) < 5:
        return None
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(median), max(DEPTH_BAND, 2.0 * float(q3 - q1) / float(median))


def follow(store, motion: np.ndarray, depth: np.ndarray, start: int, mask: np.ndarray, step: int,
           min_area: int) -> dict[int, np.ndarray]:
    """{frame: mask} of the object from `start` (where it is `mask`) to the shot's end in direction `step`.

    Per step: the object's displacement is the median flow of its visible pixels; its amodal template (its
    last nearly whole view) is moved by that displacement; the motion-mask regions the template overlaps are
    the object's visible mask in the next frame (so an object that passes behind something is picked up
    again where it comes out; while it is partly hidden it keeps the velocity it had when seen whole). The
    template is re-anchored whenever the object is seen (nearly) whole. Where no motion region matches, the
    visible mask is carried by the flow alone."""
    frames = motion.shape[0]
    found = {}
    visible, template, t = mask, mask, start
    velocity = None
    # The object's relative depth extent, from the view it starts from: measured again on later (possibly
    # contaminated) masks it could only grow, and let the neighbour in.
    band = _depth_band(depth[start], mask)
    while 0 <= t + step < frames:
        nxt = t + step
        if step == 1:  # forward(t) moves pixels of t to t+1; backward(t) maps t+1 back to t
            flow, valid, back = store.forward(t, 1), store.forward_valid(t, 1), store.backward(t, 1)
        else:
            flow, valid, back = store.backward(nxt, 1), store.backward_valid(nxt, 1), store.forward(nxt, 1)
        whole = visible.sum() >= WHOLE_SHARE * template.sum()
        d = object_motion(visible, flow, valid)
        if whole and d is not None:
            velocity = d
        elif velocity is not None:
            # Partly hidden: the flow of its few visible pixels next to the occluder is unreliable (it takes
            # the occluder's motion); the object keeps the velocity it had while seen whole.
            d = velocity
        template = shift_mask(template, *d) if d is not None else template
        chosen = select_regions(template, motion[nxt])
        centre = _depth_band(depth[t], visible)
        object_depth = (centre[0], band[1]) if centre is not None and band is not None else centre
        if chosen is not None:
            chosen = separate(chosen, back, d, depth[nxt], object_depth)
        visible = chosen if chosen is not None else warp_mask(visible, back)
        visible = clean(visible, min_area) if visible.any() else visible
        if visible.any():
            template = align(template, visible, _background(depth[nxt], motion[nxt], object_depth))
        # Re-anchor on a whole view, or on more of it than before (it came out from behind something), but
        # not while something nearer hides part of it: an object sliding behind a column loses a little each
        # frame, and re-anchoring then would shrink the template to the part still in view.
        grew = template.sum() <= visible.sum() <= GROWTH_SHARE * template.sum()
        if grew or (WHOLE_SHARE * template.sum() <= visible.sum() <= template.sum()
                    and not _hidden(template & ~visible, depth[nxt], object_depth)):
            template = visible
        found[nxt] = visible
        t = nxt
    return found


ALIGN_RADIUS = 3  # pixels the template may be nudged per frame to sit on the part of the object in view


def align(template: np.ndarray, visible: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The template shifted by the whole-pixel offset (within ALIGN_RADIUS) that covers most of the visible
    part and least of the background seen behind the object (pixels in front of it may hide it and count
    for nothing): the velocity of a partly hidden object is only a guess, this keeps its template on it."""
    r = ALIGN_RADIUS
    ys, xs = np.nonzero(template | visible)
    y0, y1 = max(ys.min() - r, 0), min(ys.max() + r + 1, template.shape[0])
    x0, x1 = max(xs.min() - r, 0), min(xs.max() + r + 1, template.shape[1])
    t, v, b = template[y0:y1, x0:x1], visible[y0:y1, x0:x1], background[y0:y1, x0:x1]
    best, best_score = (0, 0), int((t & v).sum()) - int((t & b).sum())
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            moved = np.roll(t, (dy, dx), axis=(0, 1))
            score = int((moved & v).sum()) - int((moved & b).sum())
            if score > best_score or (score == best_score and abs(dx) + abs(dy) < abs(best[0]) + abs(best[1])):
                best, best_score = (dy, dx), score
    return shift_mask(template, float(best[1]), float(best[0])) if best != (0, 0) else template


def _background(depth: np.ndarray, motion: np.ndarray, object_depth) -> np.ndarray:
    """Static pixels seen clearly behind the object: where its template may not lie."""
    if object_depth is None:
        return np.zeros(motion.shape, bool)
    with np.errstate(invalid="ignore"):
        far = ~np.isfinite(depth) | (depth > object_depth[0] * (1 + object_depth[1]))
    return far & ~motion


def _hidden(missing: np.ndarray, depth: np.ndarray, object_depth) -> bool:
    """Whether the template's pixels the object no longer covers are mostly covered by something nearer."""
    if object_depth is None or missing.sum() < 5:
        return False
    values = depth[missing]
    with np.errstate(invalid="ignore"):
        nearer = np.isfinite(values) & (values > 0) & (values < object_depth[0] * (1 - object_depth[1]))
    return bool(nearer.mean() > 0.5)


FULLER_VIEW_FRAMES = 3   # how far the other direction may look for a fuller view of a partly hidden object
FULLER_VIEW_SHARE = 1.15


def propagate_snapped(drawn: dict[int, np.ndarray], motion: np.ndarray, depth: np.ndarray, store,
                     min_area: int) -> np.ndarray:
    """(F, H, W) bool: the drawn masks followed through the shot by snapping to motion regions (see `follow`).

    A drawn frame may show the object partly hidden; its template would then miss the hidden part for good.
    So when the other direction finds the object clearly larger within a few frames, this direction is run
    again from that fuller view (through the drawn frame and on), and the run that keeps more of the object
    is used."""
    frames = motion.shape[0]
    best = np.zeros(motion.shape, bool)
    distance = np.full(frames, np.inf)
    for k, mask in sorted(drawn.items()):
        passes = {step: follow(store, motion, depth, k, mask, step, min_area) for step in (1, -1)}
        for step in (1, -1):
            other = passes[-step]
            near = [j for j in other if abs(j - k) <= FULLER_VIEW_FRAMES]
            if not near:
                continue
            j = max(near, key=lambda f: int(other[f].sum()))
            if other[j].sum() > FULLER_VIEW_SHARE * mask.sum():
                again = follow(store, motion, depth, j, other[j], step, min_area)
                again = {f: m for f, m in again.items() if (f - k) * step > 0}
                # Keep the pass that holds on to more of the object (the other lost it somewhere: what it
                # keeps is bounded by the motion masks and the depth/flow test, so more is not spill).
                if sum(int(m.sum()) for m in again.values()) > sum(int(m.sum()) for m in passes[step].values()):
                    passes[step] = again
        keep_nearest(best, distance, k, {k: mask, **passes[1], **passes[-1]})
    return best
