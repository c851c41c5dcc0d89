"""Training the depth and motion networks on one shot (test-time optimisation) with the seed's defences
against its three failure modes:

- depth collapsing to tiny values with huge motion: the depth network starts from the triangulated depth
  (or a constant median depth when cameras are learned) and its correction is bounded (DepthNet);
  gradients are clipped (CLIP_NORM);
- everything explained by object motion: the residual translation field is frozen (held at zero) for the
  first FREEZE share of the steps, then ramped in over RAMP; its sparsity costs SPARSITY_OUTSIDE times more
  outside the solve's motion masks; moving pixels are left out of the photometric terms while it is frozen;
- "lazy" zero motion: the motion network's last layer starts small but random, not zero, and the clipping
  is loose enough not to starve it.

Moving objects: with solved cameras their depth is the ground-contact prior's; the warps see it but do not
move it (OBJECT_DEPTH_FROM_PRIOR): from two views an object's depth trades exactly against its residual
translation, and the photometric terms otherwise turn its motion into static parallax (measured on the
default shot: moving AbsRel 0.054 -> 0.145 over training without this).

Cameras: with the solve's cameras, poses and intrinsics are fixed (they are better than anything learned
here: ATE < 0.5 %, focal < 1 %). Without them (`learn_cameras`), per-frame poses and one shared pinhole
(focal length, principal point) are learned; the focal length starts from the epipolar self-calibration
scan (self_calibration.py) and may move by at most FOCAL_REFINE (left free it drifts to the photometric
loss's short-focal minimum). The paper's motion network predicts ego-motion and intrinsics
per frame pair from its bottleneck; on a single shot, per-frame pose parameters are the same thing with
the network's amortisation removed: they converge faster and are consistent by construction, so the
rotation-cycle term is identically zero and only the translation cycle (residual field) remains.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from scipy import ndimage

from ..device import one_cpu_thread
from . import geometry as G
from . import losses as L
from .ground import fit_ground, ground_log_depth, snap_to_ground
from .networks import DepthNet, MotionNet
from .objects import object_pixels, refine_outline, release_static_border
from .prior import contact_fill, fill_log_depth, snap_to_edges
from .rigid import consistent_depth, object_labels
from .self_calibration import scan_focal
from .shot import ShotInputs
from .triangulate import triangulate_shot

BASE_STEPS = {"preview": 500, "final": 2000}
PAIRS_PER_STEP = {"preview": 2, "final": 8}
WIDTHS = {"preview": (8, 16, 24, 32), "final": (16, 24, 32, 48)}
#: Network input scale (depth, motion): the depth network corrects a full-resolution prior, so its correction
#: can be coarser; the residual motion field is piecewise smooth by design.
SCALES = {"preview": (1.0, 0.5), "final": (1.0, 0.5)}
#: The losses are evaluated at this share of the working resolution; the depth network's correction is
#: upsampled onto the full-resolution prior (what keeps a preview step cheap on two cores).
TRAIN_SCALE = {"preview": 0.5, "final": 1.0}


def _down(a: np.ndarray, scale: float, interpolation=None) -> np.ndarray:
    """(F, H, W, ...) resized by `scale` frame by frame (area for images, nearest for masks)."""
    import cv2

    if scale == 1.0:
        return a
    interpolation = cv2.INTER_AREA if interpolation is None else interpolation
    f, h, w = a.shape[:3]
    size = (max(8, int(round(w * scale))), max(8, int(round(h * scale))))
    out = [cv2.resize(x.astype(np.float32) if x.dtype == bool else x, size, interpolation=interpolation) for x in a]
    out = np.stack(out)
    return out > 0.5 if a.dtype == bool else out
FREEZE, RAMP = 0.2, 0.2
CLIP_NORM = 1.0
#: Flow errors are clipped here (pixels at the training resolution): far enough that a moving object whose
#: static warp misses by several pixels still pulls on the residual field, near enough to bound outliers.
FLOW_CLAMP_PX = 20.0
SPARSITY_OUTSIDE = 10.0
#: With solved cameras, moving objects keep the ground-contact prior's depth: the warps do not move it
#: (measured on the default shot: the prior's moving AbsRel 0.054 became 0.145 after training without this).
OBJECT_DEPTH_FROM_PRIOR = True
#: Static pixels inside the solve's (generous) motion masks are triangulated too (objects.py).
TIGHTEN_MASKS = True
#: Moving objects' depths made consistent over time by their own rigid motion (rigid.py). Measured on the
#: default shot (prior, moving / static AbsRel): 0.0465 / 0.0235 -> 0.036 / 0.023.
RIGID_OBJECTS = True
#: The background ring that the object pixels keep around each object (smeared flow) takes the static
#: depth where the static scene explains its flow better than the object's motion (objects.py).
RELEASE_BORDER = True
#: The objects' outline moved to their colour edge (objects.refine_outline, GrabCut). Measured (prior, AbsRel
#: moving / static): default shot 0.0385 / 0.0205 -> 0.0362 / 0.0202, quick shot 0.1110 / 0.0443 ->
#: 0.0977 / 0.0428.
REFINE_OUTLINE = True
#: Each connected part of an object's pixels (per identity and frame) takes one depth, the median of its
#: contact depths: the contact cue reads the ground column by column, across ±16 px of ground that recedes
#: faster than a compact object's own surface does. Measured (prior with SNAP_EDGES, AbsRel moving): default
#: shot 0.0348 -> 0.0321, quick shot 0.0903 -> 0.0887 (one value per identity instead of per part: 0.0325,
#: 0.0915; the parts are the identities' fragments, which the flow did not join).
FLAT_OBJECTS = True
#: A part holding two motions (an identity leaked onto another object: on the default shot the crate's covers
#: 191-667 pixels of the ball passing in front of it in frames 24-26, which took the crate's depth, +17 %) is
#: flattened in two: its pixels clustered by their gap-1 flows (forward and backward; centres more than
#: SPLIT_PX apart at 320 px wide, the smaller at least SPLIT_SHARE of the part), each pixel then given to the
#: cluster whose affine motion explains its flows best, the assignment smoothed over SPLIT_SMOOTH px; only
#: where the two clusters' contact depths differ by more than SPLIT_DEPTH (a turning or rolling object has
#: two flow clusters too, but one contact depth). Measured (prior, AbsRel moving): default 0.0321 -> 0.0306,
#: quick unchanged (0.0887).
SPLIT_MOTIONS = True
SPLIT_PX, SPLIT_SHARE, SPLIT_DEPTH, SPLIT_SMOOTH = 1.5, 0.1, 0.1, 5
#: Each object identity's depth, frame by frame (the median over its pixels), is replaced by its running median
#: over SMOOTH_FRAMES consecutive frames (`_smooth_over_time`): the contact cue places an object anew in every
#: frame and jitters (default shot: the ball's per-frame median error moves between -2 % and +5 % from frame to
#: frame), and a median keeps a trend (an object coming nearer) where a mean would cut its corners. Measured
#: (prior with the relief, moving AbsRel default / quick): 3 frames 0.0262 / 0.0849, 5: 0.0259 / 0.0845, 9:
#: 0.0256 / 0.0833, 15: 0.0256 / 0.0916 (before 0.0272 / 0.0885); 1 turns it off.
SMOOTH_FRAMES = 9
#: An identity is smoothed over the frames where it holds at least this share of the image.
SMOOTH_MIN_SHARE = 0.002
#: The object parts' flat depth gets a sphere-like relief (`_dome_relief`, its placement kept): a flat object
#: loses the depth span of its visible surface, a third of the moving error on the default shot (the true
#: relief at the present placement: moving AbsRel 0.0294 -> 0.0193). The relief's scale: 1 is a sphere's (an
#: object as deep as it is wide); measured (prior, default moving AbsRel, one relief per region of the object
#: pixels, before the smoothing over time) 0.6 / 1 / 1.5: 0.0274 / 0.0272 / 0.0281, quick 0.0883 / 0.0885 /
#: 0.0891 (before 0.0884); 0 turns it off.
OBJECT_RELIEF = 1.0
#: The contact cue reads the ground plane (ground.py) where the pixels below an object are ground: the
#: triangulation right under an object is smeared by its flow. Measured (prior, AbsRel moving / crate):
#: default 0.0321 / 0.0366 -> 0.0307 / 0.0322, quick 0.0887 / 0.1306 -> 0.0884 / 0.1257.
GROUND_CONTACT = True
#: The prior's occlusion edges snapped to the image's colour edges (prior.snap_to_edges, a colour-guided weighted
#: median): the triangulation gives the background next to a nearer surface that surface's depth (DIS flow is
#: smeared across its outline) and the fill blends both sides. Measured (prior, AbsRel static / moving):
#: default shot 0.0202 / 0.0362 -> 0.0185 / 0.0348, quick shot 0.0428 / 0.0977 -> 0.0404 / 0.0902.
SNAP_EDGES = True
#: Weights of the median's neighbours: triangulated pixels their confidence (at least SNAP_FLOOR: the filled
#: holes), object pixels SNAP_OBJECT_WEIGHT (their contact depth is a guess, but the object's own colour is
#: what keeps it on the object; 0.3 / 1 / 2 measured: 1 lowers both errors on both shots, 0.3 the static one
#: more and the moving one less, 2 the moving one more and the static one less).
SNAP_OBJECT_WEIGHT = 1.0
SNAP_FLOOR = 0.05
#: Pixels (at 320 px wide) the masks are moved down by to see how much the contact cue depends on the margin.
CONTACT_MARGIN_PX = 3
#: Learned cameras: how far (share) the training may move the self-calibrated focal length. Measured with
#: +-2 %: the photometric refinement always walked down towards the bound (quick shot 142.3 -> 139.6 px at
#: effort 3, default shot 284.5 -> 280.5 px at effort 1, true 142.2 / 284.4), so it only polishes within the
#: scan's 0.5 % grid step.
FOCAL_REFINE = 0.005
#: A training that moved the triangulated static depth by more than this (median |log change|) ran away; its
#: correction is dropped (_drift_check).
MAX_DRIFT = 0.01
LR = 1e-3
MOTION_LR = 5e-3   # the residual field has half the steps (frozen first) and must not stay "lazy"


@dataclass
class TrainResult:
    log_depth: np.ndarray          # (F, H, W) natural log of planar depth, world units
    motion: np.ndarray             # (F, H, W, 3) residual translation t -> t+1, world axes and units
    confidence: np.ndarray         # (F, H, W) in [0, 1]
    K: np.ndarray                  # (F, 3, 3) used or learned
    world_from_camera: np.ndarray  # (F, 4, 4) used or learned
    learned_cameras: bool
    steps: int
    seconds: float
    losses: dict = field(default_factory=dict)         # final running means
    loss_history: list = field(default_factory=list)   # [(step, total)]
    prior_coverage: float = 0.0
    median_depth: float = 1.0
    self_calibration: dict = field(default_factory=dict)   # the focal scan (learned cameras), see self_calibration.py
    rigid_objects: list = field(default_factory=list)      # objects whose depth was made consistent (rigid.py)
    drift: dict = field(default_factory=dict)              # the trained depth against its prior (_drift_check)


class _Cameras(torch.nn.Module):
    """Per-frame poses and one shared pinhole, learned (cameras withheld) or fixed (from the solve)."""

    def __init__(self, shot: ShotInputs, device, learn: bool, scale=(1.0, 1.0), size=None, focal=None):
        """scale: (sx, sy) from working pixels to training pixels; size: (h, w) of the training images;
        focal: the learned focal length's starting value in training pixels (self-calibration), else max(w, h)."""
        super().__init__()
        n, (h, w) = shot.frames, size or shot.size
        self.learn, self.h, self.w = learn, h, w
        if learn:
            self.rot = torch.nn.Parameter(torch.zeros(n, 3, device=device))
            self.trans = torch.nn.Parameter(torch.zeros(n, 3, device=device))
            # with a self-calibrated start the photometric refinement may move f by at most FOCAL_REFINE
            # (measured: left free it drifts from the scan's 142 px to 56 px, the short-focal minimum)
            self.log_f0 = math.log(focal or max(w, h))
            self.bound = FOCAL_REFINE if focal else None
            self.log_f = torch.nn.Parameter(torch.tensor(0.0 if focal else self.log_f0, device=device))
            self.pp = torch.nn.Parameter(torch.zeros(2, device=device))
        else:
            wfc = torch.as_tensor(shot.world_from_camera, dtype=torch.float32, device=device)
            self.register_buffer("wfc", wfc)
            K = np.array(shot.K, np.float64)
            K[:, 0] *= scale[0]
            K[:, 1] *= scale[1]
            self.register_buffer("Kfix", torch.as_tensor(K, dtype=torch.float32, device=device))

    def world_from_camera(self, idx: torch.Tensor) -> torch.Tensor:
        if not self.learn:
            return self.wfc[idx]
        # frame 0 is the origin: its parameters are masked out so the gauge stays fixed
        keep = (idx != 0).float()[:, None]
        m = torch.eye(4, device=idx.device).repeat(len(idx), 1, 1)
        m[:, :3, :3] = G.axis_angle_to_matrix(self.rot[idx] * keep)
        m[:, :3, 3] = self.trans[idx] * keep
        return m

    def log_focal(self) -> torch.Tensor:
        if self.bound is None:
            return self.log_f
        return self.log_f0 + math.log1p(self.bound) * torch.tanh(self.log_f)

    def K(self, idx: torch.Tensor) -> torch.Tensor:
        if not self.learn:
            return self.Kfix[idx]
        f = torch.exp(self.log_focal()).expand(len(idx))
        cx = (self.w / 2 + self.pp[0] * self.w * 0.05).expand(len(idx))
        cy = (self.h / 2 + self.pp[1] * self.h * 0.05).expand(len(idx))
        return G.intrinsics_matrix(f, f, cx, cy)


def static_prior(shot: ShotInputs, report: list | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(triangulated depth, its confidence, prior log depth), each (F, H, W), with solved cameras.

    The static pixels are triangulated (triangulate.py); the pixels of the motion masks that the cameras and that
    depth explain (objects.object_pixels) are triangulated again and keep their own depth (TIGHTEN_MASKS); the rest
    is filled (prior.fill_log_depth) and the masks' regions take the ground-contact depth (prior.contact_fill) from
    the static pixels below them, read on the scene's ground plane where they are ground (GROUND_CONTACT,
    ground.py). With RIGID_OBJECTS the objects' depths are then made consistent over time by their own motion
    (rigid.py); `report` receives its per-object summary. Each connected part of an object then takes one depth
    (FLAT_OBJECTS; two where it holds two motions at two depths, SPLIT_MOTIONS), each identity's depth follows its
    running median over the frames (SMOOTH_FRAMES), the parts get a sphere-like relief about it
    (OBJECT_RELIEF, `_dome_relief`), and the occlusion edges of the
    whole map are moved to the colour edges (SNAP_EDGES, prior.snap_to_edges)."""
    depth, conf = triangulate_shot(shot)
    tight = shot.moving
    if TIGHTEN_MASKS and shot.moving.any():
        tight = object_pixels(shot, depth, conf)
        depth, conf = triangulate_shot(dataclasses.replace(shot, moving=tight))
    known_outside = (depth > 0) & ~shot.moving
    labels = released = None
    if tight is not shot.moving and (RIGID_OBJECTS or RELEASE_BORDER):
        labels = object_labels(shot, tight)
    if labels is not None and RELEASE_BORDER:
        released = release_static_border(shot, tight, labels, depth, conf)
        tight = tight & ~released
        labels = np.where(released, 0, labels)
    if labels is not None and REFINE_OUTLINE:
        tight = refine_outline(shot, tight)
        labels = _nearest_label(labels, tight)
    # the margin sensitivity of the contact cue: the masks moved down by a few pixels (rigid.py)
    margin = max(1, round(CONTACT_MARGIN_PX * shot.size[1] / 320))
    plane = fit_ground(shot, depth) if GROUND_CONTACT and shot.moving.any() else None
    prior, contacts, shifted, regions = [], [], [], []
    for t in range(shot.frames):
        filled = fill_log_depth(depth[t], conf[t])
        # what the contact cue reads: the ground's pixels on the plane
        under = filled if plane is None else snap_to_ground(
            filled, ground_log_depth(shot.K[t], shot.world_from_camera[t], plane, shot.size), known_outside[t])
        contact = np.where(shot.moving[t], contact_fill(under, known_outside[t], shot.moving[t]), filled)
        if REFINE_OUTLINE and labels is not None:
            # the object pixels take the contact depth (those outside the solve's masks: that of the nearest
            # mask pixel), every other pixel the filled static depth
            if shot.moving[t].any():
                _, (iy, ix) = ndimage.distance_transform_edt(~shot.moving[t], return_indices=True)
                contact = np.where(shot.moving[t], contact, contact[iy, ix])
            prior.append(np.where(tight[t], contact, filled))
        else:
            static_in_mask = shot.moving[t] & ~tight[t] & (depth[t] > 0)
            if released is not None:
                static_in_mask |= released[t]
            prior.append(np.where(static_in_mask, filled, contact))
        if RIGID_OBJECTS and labels is not None:
            down = shot.moving[t].copy()
            down[margin:] |= shot.moving[t][:-margin]
            contacts.append(contact)
            shifted.append(contact_fill(under, known_outside[t] & ~down, down))
            regions.append(cv2.connectedComponents(shot.moving[t].astype(np.uint8), connectivity=8)[1])
    prior = np.stack(prior)
    if contacts:
        shift, objects = consistent_depth(shot, labels, np.stack(contacts), np.stack(shifted), np.stack(regions))
        prior = prior + shift
        if report is not None:
            report.extend(objects)
    if FLAT_OBJECTS and labels is not None:
        prior = _flat_parts(prior, labels, shot if SPLIT_MOTIONS else None)
        if SMOOTH_FRAMES > 1:
            prior = _smooth_over_time(prior, labels)
        if OBJECT_RELIEF:
            prior = prior + _dome_relief(labels, float(np.median(shot.K[:, 0, 0])))
    if SNAP_EDGES:
        weight = np.where(tight, SNAP_OBJECT_WEIGHT, np.maximum(conf, SNAP_FLOOR))
        prior = np.stack([snap_to_edges(prior[t], shot.rgb[t], weight[t]) for t in range(shot.frames)])
    return depth, conf, prior.astype(np.float32)


def _flat_parts(log_depth: np.ndarray, labels: np.ndarray, shot: ShotInputs | None = None) -> np.ndarray:
    """(F, H, W) log depth with each connected part of each label (per frame) set to its median; with `shot`
    (its gap-1 flows), a part that holds two motions at two depths is set to one median per motion
    (SPLIT_MOTIONS)."""
    out = log_depth.copy()
    flows = {}
    if shot is not None:
        for p in shot.pairs:
            if abs(p.s - p.t) == 1:
                flows.setdefault(p.t, []).append(p.flow)
    for t in range(len(labels)):
        features = np.concatenate(flows[t], -1) if flows.get(t) else None
        for k in np.unique(labels[t][labels[t] > 0]):
            count, parts = cv2.connectedComponents((labels[t] == k).astype(np.uint8), connectivity=8)
            for j in range(1, count):
                part = parts == j
                groups = [part]
                if features is not None:
                    groups = _two_motions(part, features, log_depth[t], labels.shape[2]) or groups
                for group in groups:
                    out[t][group] = np.median(log_depth[t][group])
    return out


def _smooth_over_time(log_depth: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(F, H, W) log depth with each identity's pixels (labels, rigid.object_labels) shifted per frame so that
    the identity's median follows the running median (SMOOTH_FRAMES wide, the ends repeated) of its per-frame
    medians over each run of consecutive frames where it holds SMOOTH_MIN_SHARE of the image."""
    out = log_depth.copy()
    n, h, w = labels.shape
    for k in np.unique(labels[labels > 0]):
        frames, medians = [], []
        for t in range(n):
            own = labels[t] == k
            if own.sum() >= SMOOTH_MIN_SHARE * h * w:
                frames.append(t)
                medians.append(float(np.median(log_depth[t][own])))
        runs = np.split(np.arange(len(frames)), np.flatnonzero(np.diff(frames) > 1) + 1) if frames else []
        for run in runs:
            if len(run) < 3:
                continue
            values = np.asarray(medians)[run]
            smooth = ndimage.median_filter(values, size=SMOOTH_FRAMES, mode="nearest")
            for i, value, target in zip(run, values, smooth):
                t = frames[i]
                out[t][labels[t] == k] += target - value
    return out


def _dome_relief(labels: np.ndarray, focal: float) -> np.ndarray:
    """(F, H, W) log-depth relief of the object pixels (labels > 0): each connected part of each label is taken
    for a compact object, as deep as it is wide, whose surface bulges towards the camera like a sphere's
    (OBJECT_RELIEF): at a pixel d px inside the part's outline, the part D px deep at its deepest, the surface
    lies sqrt(d (2D - d)) px (in depth: that many px times depth / focal) nearer than at the outline, exact for
    a sphere's disc. The frame's border is not an outline (an object cut by it goes on beyond). Each part's
    relief has median 0, so that its placement (the median of its contact depths, `_flat_parts`) stays. Per
    part rather than per connected region of all the object pixels (objects that touch in the image make one
    region): moving AbsRel of the prior default 0.0256 -> 0.0244, quick 0.0833 -> 0.0828."""
    out = np.zeros(labels.shape, np.float32)
    for t in range(len(labels)):
        for k in np.unique(labels[t][labels[t] > 0]):
            count, parts = cv2.connectedComponents((labels[t] == k).astype(np.uint8), connectivity=8)
            for j in range(1, count):
                part = parts == j
                inside = cv2.distanceTransform(np.pad(part.astype(np.uint8), 1, mode="edge"), cv2.DIST_L2, 5)
                d = inside[1:-1, 1:-1][part]
                relief = -OBJECT_RELIEF * np.sqrt(d * (2 * float(d.max()) - d)) / focal
                out[t][part] = relief - np.median(relief)
    return out


def _two_means(X: np.ndarray, iterations: int = 10) -> np.ndarray:
    """(N,) 0/1 assignment of the rows of X to two clusters (Lloyd's iterations from the two rows farthest
    apart along the data's spread; deterministic)."""
    c0 = X[np.argmax(((X - X.mean(0)) ** 2).sum(1))]
    c1 = X[np.argmax(((X - c0) ** 2).sum(1))]
    assign = np.zeros(len(X), int)
    for _ in range(iterations):
        assign = (((X - c1) ** 2).sum(1) < ((X - c0) ** 2).sum(1)).astype(int)
        if assign.min() == assign.max():
            break
        c0, c1 = X[assign == 0].mean(0), X[assign == 1].mean(0)
    return assign


def _two_motions(part: np.ndarray, features: np.ndarray, log_depth: np.ndarray, width: int) -> list | None:
    """The part's pixels in two groups by their motion (features: (H, W, 2k) the gap-1 flows), or None where
    the part holds one motion or its two motions have one depth (SPLIT_MOTIONS)."""
    ys, xs = np.nonzero(part)
    if len(ys) < 60:
        return None
    X = features[ys, xs].astype(np.float64)
    assign = _two_means(X)
    sizes = np.bincount(assign, minlength=2)
    if sizes.min() < max(30, SPLIT_SHARE * len(ys)):
        return None
    centres = [X[assign == g].mean(0) for g in (0, 1)]
    if np.linalg.norm(centres[0] - centres[1]) <= SPLIT_PX * width / 320:
        return None
    if abs(np.median(log_depth[ys[assign == 0], xs[assign == 0]])
           - np.median(log_depth[ys[assign == 1], xs[assign == 1]])) <= SPLIT_DEPTH:
        return None
    # each pixel to the cluster whose affine motion explains its flows best (the flow clusters cut a turning
    # object's gradient of flow, the affine models do not)
    A = np.stack([xs, ys, np.ones(len(xs))], 1).astype(np.float64)
    for _ in range(3):
        if np.bincount(assign, minlength=2).min() < 6:
            break
        residuals = [np.abs(A @ np.linalg.lstsq(A[assign == g], X[assign == g], rcond=None)[0] - X).sum(1)
                     for g in (0, 1)]
        assign = np.argmin(np.stack(residuals), 0)
    # and the majority of the neighbourhood, so that the groups are regions
    image = np.zeros(part.shape, np.uint8)
    image[ys, xs] = assign + 1
    votes = [cv2.blur((image == g + 1).astype(np.float32), (SPLIT_SMOOTH, SPLIT_SMOOTH)) for g in (0, 1)]
    assign = (votes[1][ys, xs] > votes[0][ys, xs]).astype(int)
    groups = []
    for g in (0, 1):
        group = np.zeros_like(part)
        group[ys[assign == g], xs[assign == g]] = True
        if group.any():
            groups.append(group)
    return groups


def _nearest_label(labels: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """(F, H, W) labels on `objects`: each object pixel the label of the nearest labelled pixel (an outline
    moved outwards takes its object's identity), 0 elsewhere."""
    out = np.zeros_like(labels)
    for t in range(len(labels)):
        if not (labels[t] > 0).any():
            continue
        _, (iy, ix) = ndimage.distance_transform_edt(labels[t] == 0, return_indices=True)
        out[t] = np.where(objects[t], labels[t][iy, ix], 0)
    return out


def _ramp(step: int, steps: int) -> float:
    u = step / max(steps, 1)
    return float(np.clip((u - FREEZE) / RAMP, 0.0, 1.0))


def train(shot: ShotInputs, device: str, quality: str = "preview", effort: float = 1.0, learn_cameras: bool = False,
          progress=None, seed: int = 0) -> TrainResult:
    """Train on `shot`; progress(fraction, message) is called now and then.

    On the CPU the training runs on one intra-op thread: its tensors are small (a few thousand pixels per
    layer) and torch's threading costs more than it gains (figures in backend/device.py)."""
    with one_cpu_thread(device):
        return _train(shot, device, quality, effort, learn_cameras, progress, seed)


def _train(shot: ShotInputs, device: str, quality: str, effort: float, learn_cameras: bool, progress,
           seed: int) -> TrainResult:
    started = time.monotonic()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    learn = learn_cameras or not shot.has_cameras
    n = shot.frames
    object_report: list = []
    if learn:
        tri_depth = np.zeros((n, *shot.size), np.float32)
        tri_conf = np.zeros((n, *shot.size), np.float32)
        log_median = 0.0
        log_prior = np.zeros((n, *shot.size), np.float32)
    else:
        tri_depth, tri_conf, log_prior = static_prior(shot, object_report)
        known = tri_depth > 0
        log_median = float(np.median(np.log(tri_depth[known]))) if known.any() else 0.0
        log_prior = log_prior - log_median
    import cv2

    dev = torch.device(device)
    protect = OBJECT_DEPTH_FROM_PRIOR and not learn  # learned cameras have no contact prior to hold to
    full_prior = log_prior
    sc = TRAIN_SCALE[quality]
    rgb = torch.as_tensor(_down(shot.rgb, sc), device=dev).permute(0, 3, 1, 2).contiguous()
    h, w = rgb.shape[-2:]
    sx, sy = w / shot.size[1], h / shot.size[0]
    moving = torch.as_tensor(_down(shot.moving, sc, cv2.INTER_NEAREST), device=dev)
    prior = torch.as_tensor(_down(log_prior, sc), device=dev)[:, None]
    conf = torch.as_tensor(_down(tri_conf, sc), device=dev)[:, None]
    flow_np = _down(np.stack([p.flow for p in shot.pairs]), sc) * np.array([sx, sy], np.float32)
    flows = torch.as_tensor(flow_np, device=dev)
    valid = torch.as_tensor(_down(np.stack([p.valid for p in shot.pairs]), sc, cv2.INTER_NEAREST), device=dev)
    pt = torch.as_tensor([p.t for p in shot.pairs], device=dev)
    ps = torch.as_tensor([p.s for p in shot.pairs], device=dev)
    median = math.exp(log_median)

    depth_net = DepthNet(WIDTHS[quality], SCALES[quality][0]).to(dev)
    motion_net = MotionNet(WIDTHS[quality], SCALES[quality][1]).to(dev)
    scan = scan_focal(shot, seed) if learn else None
    cams = _Cameras(shot, dev, learn, (sx, sy), (h, w), scan.f * sx if scan else None).to(dev)
    groups = [{"params": depth_net.parameters(), "lr": LR}, {"params": motion_net.parameters(), "lr": MOTION_LR}]
    if learn:
        groups.append({"params": cams.parameters(), "lr": 3e-3})
    opt = torch.optim.Adam(groups)
    steps = max(20, int(round(BASE_STEPS[quality] * effort)))
    couples = len(shot.pairs) // 2  # pairs come as (t -> s, s -> t) couples
    per_step = max(1, PAIRS_PER_STEP[quality] // 2)
    pixels = G.pixel_grid(h, w, dev)
    running: dict[str, float] = {}
    history = []

    def forward_pairs(idx: torch.Tensor, ramp: float, need_motion: bool):
        frames = torch.unique(torch.cat([pt[idx], ps[idx]]))
        logd_f = depth_net(rgb[frames], prior[frames], conf[frames])
        where = {int(f): k for k, f in enumerate(frames)}
        kt = torch.as_tensor([where[int(x)] for x in pt[idx]], device=dev)
        ks = torch.as_tensor([where[int(x)] for x in ps[idx]], device=dev)
        logd_t, logd_s = logd_f[kt], logd_f[ks]
        # the warps see a moving object's depth but may not move it (OBJECT_DEPTH_FROM_PRIOR): from two views
        # its depth trades exactly against its residual translation, and a lazy field makes the photometric
        # and flow terms push it to whatever depth turns the object's motion into static parallax
        geo_t, geo_s = logd_t, logd_s
        if protect:
            geo_t = torch.where(moving[pt[idx]], logd_t.detach(), logd_t)
            geo_s = torch.where(moving[ps[idx]], logd_s.detach(), logd_s)
        K_t, K_s = cams.K(pt[idx]), cams.K(ps[idx])
        s_from_t = torch.linalg.inv(cams.world_from_camera(ps[idx])) @ cams.world_from_camera(pt[idx])
        X_t = G.unproject(torch.exp(geo_t + log_median), K_t)
        X_s = G.transform(s_from_t[:, :3, :3], s_from_t[:, :3, 3], X_t)
        residual = torch.zeros_like(X_s)
        if need_motion:
            residual = motion_net(rgb[pt[idx]], rgb[ps[idx]], logd_t[:, None], logd_s[:, None],
                                  flows[idx].permute(0, 3, 1, 2) / 10.0, moving[pt[idx]][:, None].float()) * median
            X_s = X_s + ramp * residual
        p_s, z_s = G.project(X_s, K_s)
        return dict(frames=frames, logd_f=logd_f, logd_t=logd_t, logd_s=logd_s, geo_s=geo_s, X_t=X_t, X_s=X_s,
                    p_s=p_s, z_s=z_s, residual=residual, s_from_t=s_from_t, K_t=K_t)

    for step in range(steps):
        ramp = _ramp(step, steps)
        train_motion = ramp > 0
        c = torch.as_tensor(rng.choice(couples, size=min(per_step, couples), replace=False), device=dev)
        idx = torch.stack([2 * c, 2 * c + 1], 1).reshape(-1)
        out = forward_pairs(idx, ramp, train_motion)
        p_s, z_s = out["p_s"], out["z_s"]
        ok = G.inside(p_s, h, w) & (z_s > 1e-3 * median) & valid[idx]
        static = ~moving[pt[idx]]
        photo_mask = ok if train_motion else ok & static
        warped = G.sample(rgb[ps[idx]], p_s)
        target = rgb[pt[idx]]
        l1, ssim = L.photometric(target, warped, photo_mask)
        terms = {"rgb": l1, "ssim": ssim}
        induced = p_s - pixels
        flow_err = (induced - flows[idx]).abs().sum(-1).clamp(max=FLOW_CLAMP_PX)
        terms["flow"] = L.masked_mean(flow_err, photo_mask)
        d_s_at = G.sample(out["geo_s"][:, None], p_s)[:, 0] + log_median
        terms["depth_consistency"] = L.masked_mean((torch.log(z_s.clamp(min=1e-6)) - d_s_at).abs(), photo_mask)
        logd_t = out["logd_t"]
        terms["prior"] = L.masked_mean((logd_t - prior[pt[idx], 0]).abs() * conf[pt[idx], 0], conf[pt[idx], 0] > 0)
        terms["depth_smooth"] = L.edge_aware_smoothness(logd_t, target)
        if protect:
            on_object = moving[pt[idx]]
            terms["object_prior"] = L.masked_mean((logd_t - prior[pt[idx], 0]).abs(), on_object)
        if train_motion:
            T = out["residual"]
            terms["motion_smooth"] = L.motion_smoothness(T / median)
            weight = torch.where(moving[pt[idx]], 1.0, SPARSITY_OUTSIDE)
            terms["motion_sparsity"] = L.motion_sparsity(T / median, weight)
            # translation cycle: t -> s then s -> t returns to the start (couples are adjacent in idx)
            back = torch.arange(len(idx), device=dev) ^ 1
            R_ts = out["s_from_t"][:, :3, :3]
            T_back = G.sample(T[back].permute(0, 3, 1, 2), p_s).permute(0, 2, 3, 1)
            cyc = (torch.einsum("bji,bhwj->bhwi", R_ts, T) + T_back).norm(dim=-1) / torch.exp(logd_t + log_median)
            terms["trans_cycle"] = L.masked_mean(cyc, ok)
        total = sum(L.WEIGHTS[k] * v for k, v in terms.items())
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(depth_net.parameters(), CLIP_NORM)
        torch.nn.utils.clip_grad_norm_(motion_net.parameters(), CLIP_NORM)
        if learn:
            torch.nn.utils.clip_grad_norm_(cams.parameters(), CLIP_NORM)
        opt.step()
        for k, v in terms.items():
            v = float(v.detach())
            running[k] = 0.9 * running.get(k, v) + 0.1 * v
        if step % 10 == 0 or step == steps - 1:
            history.append((step, round(float(total.detach()), 5)))
        if progress and step % 20 == 0:
            progress(step / steps, f"training step {step}/{steps}, loss {float(total.detach()):.4f}")

    result = _infer(shot, depth_net, motion_net, cams, rgb, prior, conf, moving, flows, valid, pt, ps, log_median,
                    _down(tri_conf, sc), forward_pairs)
    result = _to_full_resolution(result, shot, full_prior + log_median, tri_conf, (sx, sy))
    if not learn:
        result.drift = _drift_check(result, full_prior + log_median, tri_conf > 0, shot.moving)
    result.learned_cameras = learn
    result.steps = steps
    result.seconds = time.monotonic() - started
    result.losses = {k: round(v, 6) for k, v in running.items()}
    result.loss_history = history
    result.prior_coverage = float((tri_depth > 0).mean())
    result.rigid_objects = object_report
    result.median_depth = median
    result.self_calibration = scan.summary() if scan else {}
    return result


def _drift_check(result: TrainResult, log_prior: np.ndarray, triangulated: np.ndarray, moving: np.ndarray) -> dict:
    """With solved cameras: how far the training moved the triangulated static pixels off their prior (median
    |log depth change|); beyond MAX_DRIFT the training ran away and its correction is dropped (the output is
    the prior). Measured: on the test shots the network's correction is nil (median change 1e-4), but once on
    the default shot (session 11, a prior with the object relief but not yet smoothed over time) the residual
    field exploded (motion sparsity loss 58 against 0.04) and dragged the whole depth 6 % off the cameras'
    scale (static AbsRel 0.0185 -> 0.068), deterministically; a few per cent more or less on the moving
    objects' prior is enough to tip it."""
    static = triangulated & ~moving
    if not static.any():
        return {"median_change": None, "dropped": False}
    change = float(np.median(np.abs(result.log_depth[static] - log_prior[static])))
    dropped = change > MAX_DRIFT
    if dropped:
        result.log_depth = log_prior.astype(np.float32)
    return {"median_change": round(change, 5), "dropped": dropped}


def _to_full_resolution(result: TrainResult, shot: ShotInputs, full_log_prior: np.ndarray, full_conf: np.ndarray,
                        scale) -> TrainResult:
    """The training-resolution answer on the working resolution: the network's correction of the prior and
    the motion/confidence maps upsampled (bilinear), added to / shown on the full-resolution prior."""
    import cv2

    h, w = shot.size
    if result.log_depth.shape[1:] == (h, w):
        return result
    small_prior = _down(full_log_prior, result.log_depth.shape[2] / w)
    up = lambda a: np.stack([cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in a])  # noqa: E731
    result.log_depth = full_log_prior + up((result.log_depth - small_prior).astype(np.float32))
    result.motion = up(result.motion.astype(np.float32))
    result.confidence = np.clip(up(result.confidence.astype(np.float32)), 0, 1)
    result.K = result.K.copy()
    result.K[:, 0] /= scale[0]
    result.K[:, 1] /= scale[1]
    return result


@torch.no_grad()
def _infer(shot, depth_net, motion_net, cams, rgb, prior, conf, moving, flows, valid, pt, ps, log_median, tri_conf,
           forward_pairs) -> TrainResult:
    n, (h, w) = shot.frames, rgb.shape[-2:]
    dev = rgb.device
    log_depth = torch.cat([depth_net(rgb[i:i + 4], prior[i:i + 4], conf[i:i + 4]) for i in range(0, n, 4)]) + log_median
    frames = torch.arange(n, device=dev)
    wfc = cams.world_from_camera(frames)
    K = cams.K(frames)
    motion = torch.zeros(n, h, w, 3, device=dev)
    agreement = torch.zeros(n, h, w, device=dev)
    counts = torch.zeros(n, 1, 1, device=dev)
    gap1 = [k for k, p in enumerate(shot.pairs) if abs(p.s - p.t) == 1]
    for k in gap1:
        idx = torch.as_tensor([k], device=dev)
        out = forward_pairs(idx, 1.0, True)
        t, s = int(pt[k]), int(ps[k])
        world_T = torch.einsum("ij,hwj->hwi", wfc[s, :3, :3], out["residual"][0])
        if s == t + 1:
            motion[t] = world_T
        elif t == n - 1:
            motion[t] = -world_T  # the last frame has no successor: its motion backwards, reversed
        ok = G.inside(out["p_s"], h, w)[0] & valid[k]
        d_s_at = G.sample(out["logd_s"][:, None], out["p_s"])[0, 0] + log_median
        err = (torch.log(out["z_s"][0].clamp(min=1e-6)) - d_s_at).abs()
        agreement[t] += torch.where(ok, torch.exp(-err / 0.05), torch.zeros_like(err))
        counts[t] += 1
    confidence = 0.5 * (agreement / counts.clamp(min=1)) + 0.5 * torch.as_tensor(tri_conf, device=dev)
    return TrainResult(log_depth.cpu().numpy(), motion.cpu().numpy(), confidence.clamp(0, 1).cpu().numpy(),
                       K.cpu().double().numpy(), wfc.cpu().double().numpy(), False, 0, 0.0)
