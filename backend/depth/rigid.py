"""Moving objects' depth made consistent over time by their own rigid motion.

The ground-contact cue (prior.contact_fill) gives each frame's objects a depth on its own, and it fails in
some frames: near the horizon a few pixels of mask margin are a large depth step, and where two objects'
masks merge the ground under one is read for the other. A rigid object's depth from frame to frame is,
however, measured by the object itself: once the camera's rotation is taken out of the flow (the solve's
cameras), a rigid object that translates relative to the camera is scaled in the image by z_t / z_s, and its
image height is not changed by its turning about the vertical (a box that turns gets wider or narrower, not
taller). So:

1. `object_labels`: the object pixels (objects.object_pixels) are given object identities that follow the
   flow from frame to frame (each pixel takes the label its backward gap-1 flow lands on); a label whose
   flow has two clearly separate clusters is split, and where a region holds several labels each pixel
   takes the one whose affine motion explains its flow best (merged masks; an object that reappears from
   behind another, whose flow while hidden was wrong).
2. `depth_ratios`: per object and flow pair (t, s) (gaps 1, 2, 4, both directions), the rows of its interior
   pixels that move with its affine motion, rotation-compensated, are fitted by y_s = k y_t + b (geometric
   mean fit, trimmed): log z_s - log z_t = -log k, with its inverse variance (floored by RATIO_SIGMA).
3. `consistent_depth`: per object, log depths L_t that follow the ratios (least squares; none in merged
   frames) and a smooth path in depth (second differences), anchored to the per-frame contact depths c_t
   by a robust (iteratively reweighted L1) term, each frame's anchor weighted by its reliability: low where
   the contact depth changes fast with the mask's margin (the contact read again with the mask moved down
   by a few pixels) and very low where the object shares its region with another object (merged masks).
   In effect a weighted temporal median of the contact cue, carried along the object's own depth path.
   Only objects whose ratios cover at least half of their frames are changed.

Measured (prior only; default test shot 320x240): the crate, with the per-frame contact -16 % in its first
frames and -10 to -13 % in its last ten, comes to -7 % / -2 % (AbsRel 0.065 -> 0.043); the moving AbsRel
0.0465 -> 0.036. The ratios' error there: median +0.004 per gap-1 pair with ordinary least squares (its
bias towards k = 0), about 0 with the geometric mean fit. Tried and worse: an isotropic scale (rows and
columns: the crate turns, 0.036 -> 0.051), ratios in merged frames (the crate's trajectory then drifts
+0.2 in its last ten frames), no smoothness term (merged frames fall back to their biased anchors). On the
quick shot (160x120) the identities are too fragmented (objects of ~300 pixels, masks' precision 0.43)
and no object passes the coverage gate: there the contact cue stays as it was.

    object_labels(shot, tight) -> (F, H, W) int32, 0 = no object
    consistent_depth(shot, labels, contact, shifted_contact, regions) -> ((F, H, W) float32 log-depth shift,
                                                                          [per object report])
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from .shot import ShotInputs

#: Objects smaller than this share of the image in a frame are not given depth ratios / anchors.
MIN_PIXELS_SHARE = 2e-4
#: Matched pixels needed for a depth ratio.
MIN_MATCHES = 20
#: Contact anchor weight: 1 / (ANCHOR_SIGMA^2 + (margin sensitivity)^2), log-depth units.
ANCHOR_SIGMA = 0.02
#: An anchor in a region shared with another object counts this much.
MERGED_WEIGHT = 0.005
IRLS_ITERATIONS = 10
#: An object's depth is made consistent only if it is seen in this many frames and its ratios (unmerged,
#: measured) touch this share of them; otherwise (fragments of the masks, objects merged most of the
#: time, small objects at low resolution) the per-frame contact cue stays.
MIN_FRAMES = 8
MIN_MEASURED = 0.5
#: Floor of a depth ratio's error (log units): the fits' own variance ignores their bias (static pixels
#: left in an object's label, flow smeared at its border), which otherwise accumulates along a trajectory.
RATIO_SIGMA = 0.002
#: Second difference of an object's log depth per frame^2 (it moves smoothly in depth).
SMOOTH_SIGMA = 0.002
#: A label splits where its flow has two clusters this far apart (px per frame at 320 px wide)...
SPLIT_PX = 1.5
#: ... each of at least this many pixels.
SPLIT_MIN = 30
#: The interior of a label that its depth ratios use: the object pixels were grown over the ground.
CORE = np.ones((7, 7), np.uint8)
#: Flow residual (px per frame of gap at 320 px wide) under which a pixel moves with its object's affine motion.
INLIER_PX = 0.25


def object_labels(shot: ShotInputs, tight: np.ndarray) -> np.ndarray:
    """Object identities following the backward gap-1 flow; a connected part of `tight` that no earlier
    object flows into starts a new identity."""
    n, (h, w) = shot.frames, shot.size
    backward = {p.t: p for p in shot.pairs if p.s == p.t - 1}
    labels = np.zeros((n, h, w), np.int32)
    next_label = 1
    ys, xs = np.mgrid[0:h, 0:w]
    for t in range(n):
        count, parts = cv2.connectedComponents(tight[t].astype(np.uint8), connectivity=8)
        lab = np.zeros((h, w), np.int32)
        p = backward.get(t)
        if t > 0 and p is not None:
            px = np.clip(np.round(xs + p.flow[..., 0]).astype(int), 0, w - 1)
            py = np.clip(np.round(ys + p.flow[..., 1]).astype(int), 0, h - 1)
            lab = np.where(tight[t], labels[t - 1][py, px], 0)
        # pixels of a part that no label reached take the nearest labelled pixel's label in the same part
        missing = tight[t] & (lab == 0)
        if missing.any() and (lab > 0).any():
            _, (iy, ix) = ndimage.distance_transform_edt(lab == 0, return_indices=True)
            near = lab[iy, ix]
            same_part = parts[iy, ix] == parts
            lab = np.where(missing & same_part, near, lab)
        for k in range(1, count):
            part = parts == k
            present = lab[part]
            if not (present > 0).any():
                lab[part] = next_label
                next_label += 1
            elif (present == 0).any():   # nearest labelled pixel in another part: the part's commonest label
                lab[part & (lab == 0)] = np.bincount(present[present > 0]).argmax()
        if p is not None:
            lab, next_label = _split_by_motion(lab, parts, p.flow, p.valid, next_label, SPLIT_PX * w / 320)
        labels[t] = lab
    return labels


def affine_flow(xy: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """(3, 2) least-squares affine model of `flow` at `xy`, two trimming rounds."""
    A = np.concatenate([xy, np.ones((len(xy), 1))], 1)
    keep = np.ones(len(xy), bool)
    for _ in range(2):
        M = np.linalg.lstsq(A[keep], flow[keep], rcond=None)[0]
        res = np.linalg.norm(A @ M - flow, axis=1)
        keep = res <= max(3 * float(np.median(res[keep])), 0.1)
        if keep.sum() < 6:
            break
    return M


def _split_by_motion(lab: np.ndarray, parts: np.ndarray, flow: np.ndarray, valid: np.ndarray, next_label: int,
                     split_px: float) -> tuple[np.ndarray, int]:
    """Where a connected part holds several labels (merged masks), each pixel with a consistent flow takes
    the label whose affine motion explains its flow best: labels carried by the flow otherwise leak from
    one object into the other where their masks touch, and stay wrong from then on. A label whose pixels
    move in two clearly different ways (k-means on the flow, centres more than `split_px` apart) is split
    first, the smaller cluster a new label (an object that was hidden behind another and reappears: its
    flow while hidden is wrong and its label leaks into the occluder's).
    -> (labels, next free label)."""
    h, w = lab.shape
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    out = lab.copy()
    for x in [int(v) for v in np.unique(lab[lab > 0])]:
        sel = (out == x) & valid
        if sel.sum() < 2 * SPLIT_MIN:
            continue
        samples = flow[sel].astype(np.float32)
        _, assign, centres = cv2.kmeans(samples, 2, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.01),
                                        3, cv2.KMEANS_PP_CENTERS)
        assign = assign.ravel()
        sizes = np.bincount(assign, minlength=2)
        small = int(np.argmin(sizes))
        if np.linalg.norm(centres[0] - centres[1]) > split_px and sizes[small] >= max(SPLIT_MIN, 0.15 * sel.sum()):
            ys_sel, xs_sel = np.nonzero(sel)
            out[ys_sel[assign == small], xs_sel[assign == small]] = next_label
            next_label += 1
    for k in np.unique(parts[parts > 0]):
        part = parts == k
        present = [int(x) for x in np.unique(lab[part]) if x > 0 and ((lab == x) & part & valid).sum() >= 12]
        if len(present) < 2:
            continue
        for _ in range(2):
            models, residuals = [], []
            for x in present:
                sel = (out == x) & part & valid
                if sel.sum() < 12:
                    continue
                M = affine_flow(np.stack([xs[sel], ys[sel]], 1), flow[sel])
                models.append(x)
                pred = np.stack([xs, ys, np.ones_like(xs)], -1) @ M
                residuals.append(np.linalg.norm(pred - flow, axis=-1))
            if len(models) < 2:
                break
            best = np.asarray(models)[np.argmin(np.stack(residuals), 0)]
            out = np.where(part & valid, best, out)
    # pixels without a consistent flow take the nearest relabelled pixel's label within their part
    unsure = (out > 0) & ~valid
    if unsure.any() and (out * valid > 0).any():
        _, (iy, ix) = ndimage.distance_transform_edt(~((out > 0) & valid), return_indices=True)
        out = np.where(unsure & (parts[iy, ix] == parts), out[iy, ix], out)
    return out, next_label


def _rotation_compensated(xy: np.ndarray, K_t, K_s, world_from_t, world_from_s) -> np.ndarray:
    """Pixels of frame s seen with camera t's orientation (the rotation between them taken out)."""
    t_from_s = np.linalg.inv(world_from_t) @ world_from_s
    H = np.asarray(K_t) @ t_from_s[:3, :3] @ np.linalg.inv(K_s)
    p = np.concatenate([xy, np.ones((len(xy), 1))], 1) @ H.T
    return p[:, :2] / p[:, 2:3]


def _vertical_scale(y_t: np.ndarray, y_s: np.ndarray) -> tuple[float, float] | None:
    """y_s = k y_t + b by the geometric-mean (reduced major axis) fit, trimmed: (log k, inverse variance of
    log k) or None. Symmetric (k for s -> t is 1 / k for t -> s): ordinary least squares shrinks k towards
    0 with the noise of y_t (measured on the quick test shot: +0.012 bias of every gap-1 ratio)."""
    keep = np.ones(len(y_t), bool)
    for _ in range(3):
        a, b = y_t[keep], y_s[keep]
        if len(a) < MIN_MATCHES:
            return None
        ca, cb = a - a.mean(), b - b.mean()
        ss = float((ca * ca).sum())
        if ss < 1e-6 or float((ca * cb).sum()) <= 0:
            return None
        k = float(np.sqrt((cb * cb).sum() / ss))
        res = y_s - (k * (y_t - a.mean()) + b.mean())
        sigma = 1.4826 * float(np.median(np.abs(res[keep]))) + 0.02
        keep = np.abs(res) < 3 * sigma
    variance = (sigma * sigma) / (ss * k * k)
    return float(np.log(k)), 1.0 / (variance + RATIO_SIGMA ** 2)


def depth_ratios(shot: ShotInputs, labels: np.ndarray) -> list[tuple[int, int, int, float, float]]:
    """[(label, t, s, log z_s - log z_t, weight)] over the flow pairs."""
    h, w = shot.size
    min_pixels = max(MIN_MATCHES, MIN_PIXELS_SHARE * h * w)
    out = []
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    for p in shot.pairs:
        lt, ls = labels[p.t], labels[p.s]
        px = xs + p.flow[..., 0]
        py = ys + p.flow[..., 1]
        ix = np.clip(np.floor(px).astype(int), 0, w - 1)
        iy = np.clip(np.floor(py).astype(int), 0, h - 1)
        landed = ls[iy, ix]
        for k in np.unique(lt[lt > 0]):
            # the label's interior: the object pixels were grown by objects.GROW over static ground
            core = cv2.erode((lt == k).astype(np.uint8), CORE).astype(bool)
            sel = core & p.valid & (landed == k)
            if sel.sum() < min_pixels:
                continue
            # the object's own motion: pixels whose flow an affine model of the label's flow does not explain
            # (flow smeared over the ground at its border, another object) are left out
            iy_, ix_ = np.nonzero(sel)
            xy = np.stack([xs[sel], ys[sel]], 1)
            M = affine_flow(xy, p.flow[sel])
            res = np.linalg.norm(np.concatenate([xy, np.ones((len(xy), 1))], 1) @ M - p.flow[sel], axis=1)
            inlier = res < max(INLIER_PX * abs(p.s - p.t) * w / 320, 1.5 * float(np.median(res)))
            sel = np.zeros_like(sel)
            sel[iy_[inlier], ix_[inlier]] = True
            if sel.sum() < min_pixels:
                continue
            src = np.stack([xs[sel], ys[sel]], 1)
            dst = _rotation_compensated(np.stack([px[sel], py[sel]], 1), shot.K[p.t], shot.K[p.s],
                                        shot.world_from_camera[p.t], shot.world_from_camera[p.s])
            fit = _vertical_scale(src[:, 1], dst[:, 1])
            if fit is not None:
                out.append((int(k), p.t, p.s, -fit[0], fit[1]))
    return out


def _solve(frames: list[int], anchors: np.ndarray, anchor_w: np.ndarray,
           edges: list[tuple[int, int, float, float]]) -> tuple[np.ndarray, float]:
    """Log depths per frame of one object: weighted least squares on the ratios, IRLS-L1 on the anchors;
    and the rms misfit of the ratios (log units)."""
    index = {t: i for i, t in enumerate(frames)}
    m = len(frames)
    A_e, b_e, w_e = [], [], []
    for t, s, d, wt in edges:
        row = np.zeros(m)
        row[index[s]], row[index[t]] = 1.0, -1.0
        A_e.append(row)
        b_e.append(d)
        w_e.append(wt)
    A_e = np.array(A_e).reshape(-1, m)
    b_e, w_e = np.array(b_e), np.array(w_e)
    # smooth motion in depth: second differences over consecutive frames
    A_s = []
    for i in range(1, m - 1):
        if frames[i - 1] == frames[i] - 1 and frames[i + 1] == frames[i] + 1:
            row = np.zeros(m)
            row[i - 1], row[i], row[i + 1] = 1.0, -2.0, 1.0
            A_s.append(row)
    A_s = np.array(A_s).reshape(-1, m) / SMOOTH_SIGMA
    L = anchors.copy()
    for _ in range(IRLS_ITERATIONS):
        robust = anchor_w / np.maximum(np.abs(L - anchors), ANCHOR_SIGMA)
        A = np.concatenate([A_e * np.sqrt(w_e)[:, None], A_s, np.diag(np.sqrt(robust))])
        b = np.concatenate([b_e * np.sqrt(w_e), np.zeros(len(A_s)), anchors * np.sqrt(robust)])
        L = np.linalg.lstsq(A, b, rcond=None)[0]
    misfit = float(np.sqrt(np.mean((A_e @ L - b_e) ** 2))) if len(b_e) else np.inf
    return L, misfit


def consistent_depth(shot: ShotInputs, labels: np.ndarray, contact: np.ndarray, shifted_contact: np.ndarray,
                     regions: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """(F, H, W) log-depth shift to add to `contact` on the labelled pixels (0 elsewhere), and per object
    made consistent: its frames, merged frames, ratios, their rms misfit and the median shift.

    contact: the prior's log depth with the contact cue; shifted_contact: the same with the masks moved down
    by a few pixels (how much the cue depends on the margin); regions: (F, H, W) the connected regions of
    the motion masks that the contact cue works on (an object sharing one with another is "merged")."""
    n, (h, w) = shot.frames, shot.size
    min_pixels = max(MIN_MATCHES, MIN_PIXELS_SHARE * h * w)
    ratios = depth_ratios(shot, labels)
    shift = np.zeros((n, h, w), np.float32)
    report = []
    for k in np.unique(labels[labels > 0]):
        frames, anchors, weights, merged = [], [], [], set()
        for t in range(n):
            sel = labels[t] == k
            if sel.sum() < min_pixels:
                continue
            c = float(np.median(contact[t][sel]))
            sensitivity = float(np.median(shifted_contact[t][sel])) - c
            weight = 1.0 / (ANCHOR_SIGMA ** 2 + sensitivity ** 2)
            region_ids = np.unique(regions[t][sel])
            others = np.isin(regions[t], region_ids[region_ids > 0]) & (labels[t] > 0) & (labels[t] != k)
            if others.sum() >= min_pixels:
                weight *= MERGED_WEIGHT
                merged.add(t)
            frames.append(t)
            anchors.append(c)
            weights.append(weight)
        if len(frames) < 2:
            continue
        # a merged frame's ratios are not the object's own (the other object's flow leaks into its border)
        present = set(frames) - merged
        edges = [(t, s, d, wt) for kk, t, s, d, wt in ratios if kk == k and t in present and s in present]
        measured = {t for t, s, _, _ in edges} | {s for t, s, _, _ in edges}
        if len(frames) < MIN_FRAMES or len(measured) < MIN_MEASURED * len(frames):
            continue  # too few frames where its own motion measures its depth: the contact cue stays
        L, misfit = _solve(frames, np.array(anchors), np.array(weights), edges)
        report.append({"object": int(k), "frames": len(frames), "merged": len(merged), "ratios": len(edges),
                       "misfit": round(misfit, 5),
                       "shift_median": round(float(np.median(np.asarray(L) - np.asarray(anchors))), 4)})
        for t, value, c in zip(frames, L, anchors):
            sel = labels[t] == k
            shift[t][sel] = value - c
    return shift, report
