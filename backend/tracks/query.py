"""Tracking query points [frame, x, y] with a trained model, forwards and backwards through the whole shot.

For each query the ray of its pixel is traced once (canonical points and compositing weights), then mapped
into every frame: the 2D position there is the projection of the composited point. Visibility there:
- out of frame: the position leaves the image;
- occluded: frame j's own ray at that position, composited and mapped back into the query's frame, does not
  come back to the query pixel (within CYCLE_TOLERANCE of the long side): frame j sees another surface there.
  This reads the same density and bijections as OmniMotion's rule (the mapped point behind frame j's
  composited depth) but compares pixels, not depths, so it does not depend on the depth of surfaces nothing
  supervises (the moving objects have no depth loss). Measured on the quick test shot with the same model:
  depth rule (8 %) AJ 0.530, OA 0.856; this rule AJ 0.550, OA 0.862. Static points: cycle error 0.1 px
  where visible against 6 px where occluded (median); on the moving objects neither rule separates the two
  well (their fit is the limit).
Static scene (session 11): a query off the motion masks, where the job has a solve and a depth guide, is put
at its static place (`static_projection`: the guide's depth at the query pixel, through the solved cameras)
in the frames where that lands within REFINE_TOLERANCE of its refined track, or where the model has lost it
(hidden by the cycle test, off that place, the flow broken); in those frames the guide's depth decides its
visibility, elsewhere the model's visibility stands, minus the frames where the point lies behind the guide.
Frozen session 11 jobs: quick AJ 0.678 -> 0.691, default 0.765 -> 0.782 (static queries 0.852 -> 0.878,
0.905 -> 0.935). A moving object passing in front of a static point is not in the guide (its depth there is
the background's fill): a static query is also hidden where the checked gap-1 flow at its place moves unlike it
(`static_occluded`, the rigid tracks' occluder test; quick 0.691 -> 0.696, default 0.782 -> 0.785).
World positions: the composited point in the target camera taken to the world with the solved camera
(NaN when the model was trained without a solve: its depth axis is not metric).

Flow refinement (`refine_with_flow`): where the job's gap-1 flow is at hand (the stage's own job, or the job
folder a loaded checkpoint lies in), each track follows that flow from frame to frame outwards from its query
frame while the flow passes its forward-backward check there and stays within REFINE_TOLERANCE of the
model's track; where it does not (occlusions, failed checks, drift), the model's position stands and the
chain starts again from it. The model decides where a point is and whether it is seen; the flow adds the
sub-pixel precision the model lacks (measured after session 8: median error one frame out 0.13 px against
chained flow's 0.03 on the static scene, 1.8 against 0.2 px on the rolling ball; docs/tracks.md, session 9).
World positions of refined points keep the model's depth, moved to the refined pixel.
On the motion masks (a query on masks/motion of its frame) a point also counts as visible while it has
followed the flow without a break since its query frame (every step consistent and agreeing with the model):
there the cycle test cannot tell visible from hidden (the moving objects' cycle errors where visible and
where occluded overlap), while on the static scene it can, better than the flow's check. Where such a query
has no rigid track (below), the unbroken following alone decides (session 11: quick test shot AJ 0.659 ->
0.664, OA 0.900 -> 0.905; default 0.752 -> 0.762, 0.911 -> 0.914).

Rigid motion (`rigid.py`, session 10): before the refinement, a query on a moving object (the motion masks where
the flow moves unlike the static scene) takes its object's rigid 3D motion as its track and visibility where
the object was followed (the model's elsewhere), with the depth from that motion; the refinement then follows
the flow near it as it does the model's tracks. Measured on the default test shot's benchmark model: AJ on the
moving objects 0.449 -> 0.540, OA 0.862 -> 0.916 (docs/tracks.md). With the job's frames at hand the rigid
tracks are placed by the chains' photometric poses (session 11: the ball's drift far from the query halved on
the quick shot), while the flow's `followed` visibility reads the tracks of the PnP poses the chains decided on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ShotfieldError
from ..flow_store import FlowStore
from ..frames import load_frames
from . import photometric, rigid
from .geometry import bilinear, read_motion_masks, unproject
from .model import OmniMotion

CYCLE_TOLERANCE = 0.025   # 4 px of a 160-pixel frame; measured 2 px: AJ +0.02, OA -0.03; 8 px: AJ -0.02, OA +0.01
CHUNK = 1024  # queries per batch
# The flow refinement accepts a gap-1 flow step while it lands within this share of the long side of the model's
# position: the cycle test's tolerance, i.e. "the model cannot tell the two apart". Measured on session 8's
# tracks (docs/tracks.md, session 9): default shot AJ 0.662 -> 0.713, quick 0.618 -> 0.635; 1 % of the long
# side: 0.688 / 0.627, 5 %: 0.717 / 0.635.
REFINE_TOLERANCE = CYCLE_TOLERANCE
# A static query is hidden where its point lies this share behind the depth guide at its pixel (room for the
# guide's error at depth edges); measured on session 11's frozen jobs: 0.05: quick AJ 0.686, default 0.779;
# 0.1: 0.690 / 0.781; 0.2: 0.691 / 0.782; 0.3: 0.691 / 0.782.
STATIC_DEPTH_MARGIN = 0.2
# A query off the motion masks is taken for a moving object's (standing still at its query frame) where this
# share of the frames the flow followed it lie on the masks (quick test shot: static queries up to 0.39, its
# box's and ball's off-mask queries 0.78 and more).
STILL_SHARE = 0.6
# A static query is hidden where the checked gap-1 flow at its place moves this share of the long side unlike
# it (a moving object in front; `static_occluded`); measured on session 11's frozen jobs (AJ quick / default):
# none 0.6910 / 0.7819; 1/64: 0.6961 / 0.7842; 1/96: 0.6965 / 0.7849; 1/128: 0.6960 / 0.7853; 1/160: 0.6956 /
# 0.7857; 1/256: 0.6924 / 0.7840.
STATIC_OCCLUDER_SHARE = 1 / 128


def default_grid(frames: int, width: int, height: int, columns: int = 20) -> np.ndarray:
    """(N, 3) [frame, x, y] queries: a grid of pixel centres on the first frame, `columns` across."""
    step = width / columns
    rows = max(1, int(round(height / step)))
    xs = (np.floor((np.arange(columns) + 0.5) * width / columns) + 0.5)
    ys = (np.floor((np.arange(rows) + 0.5) * height / rows) + 0.5)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([np.zeros(gx.size), gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


@torch.no_grad()
def track(model: OmniMotion, queries: np.ndarray, device: str, flow: FlowStore | None = None,
          rigid_motion: bool = True, static_scene: bool = True):
    """queries (N, 3) [frame, x, y] -> xy (F, N, 2) float32, visible (F, N) bool, world (F, N, 3) float32.

    `flow`: the job's flow store for the flow refinement; None: the store of the job folder `model.job_dir`
    (set by the stage and by load_checkpoint) if it has gap-1 flow of this shot, else no refinement.
    `rigid_motion`: queries on the moving objects follow their object's rigid motion (rigid.py) where the job
    has the flow, motion masks and a solve. `static_scene`: queries off the masks are placed by the cameras and
    the depth guide where the job has them (static_projection)."""
    model = model.to(device).eval()
    F, W, H = model.config.frames, model.geometry.width, model.geometry.height
    n = len(queries)
    xy = np.zeros((F, n, 2), np.float32)
    visible = np.zeros((F, n), bool)
    depth = np.zeros((F, n), np.float32)     # the composited point's depth in each frame's camera
    for start in range(0, n, CHUNK):
        q = torch.as_tensor(queries[start:start + CHUNK], dtype=torch.float32, device=device)
        m = len(q)
        frame = q[:, 0].round().long().clamp(0, F - 1)
        ray = model.trace(frame, q[:, 1:3])
        for j in range(F):
            target = torch.full((m,), j, dtype=torch.long, device=device)
            pixels, z, point = model.map_to(ray, target)
            inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < W) & (pixels[:, 1] >= 0) & (pixels[:, 1] < H) & (z > 0)
            vis = inside & ~occluded(model, ray, frame, q[:, 1:3], j, pixels)
            at_query = frame == j
            pixels = torch.where(at_query[:, None], q[:, 1:3], pixels)
            vis = vis | at_query
            xy[j, start:start + m] = pixels.cpu().numpy()
            visible[j, start:start + m] = vis.cpu().numpy()
            depth[j, start:start + m] = point[:, 2].cpu().numpy()
    store = flow if flow is not None else job_flow(model)
    if store is not None and n:
        masks = job_motion_masks(model)
        flow_xy, on_object = xy, np.zeros(n, bool)
        if rigid_motion and masks is not None and model.geometry.solved and model.guided:
            # queries on the moving objects: carried by their object's rigid motion (rigid.py), placed by its
            # photometric poses; the flow's visibility below reads the tracks of its flow (PnP) poses
            rig = rigid.track(store, model.geometry.K, model.geometry.world_from_camera, model.guide.cpu().numpy(),
                              masks, queries, job_images(model))
            has = np.isfinite(rig.xy).all(-1)
            flow_xy = np.where(has[..., None], rig.xy_flow, xy)
            xy = np.where(has[..., None], rig.xy, xy)
            depth = np.where(has, rig.depth, depth)
            visible = np.where(has, rig.visible, visible)
            on_object = rig.on_object
        tolerance = REFINE_TOLERANCE * max(W, H)
        xy, followed = refine_with_flow(store, queries, xy, tolerance)
        if flow_xy is not xy:
            _, followed = refine_with_flow(store, queries, flow_xy, tolerance)
        on_masks = query_on_motion_masks(model, queries, masks)
        if on_masks is not None:
            # on the motion masks without a rigid track the model's cycle test cannot tell seen from hidden
            # (above): the flow's unbroken following alone decides there (session 11)
            alone = on_masks & ~on_object
            at_query = np.arange(F)[:, None] == np.clip(np.round(queries[:, 0]).astype(int), 0, F - 1)[None]
            visible = np.where(alone[None], followed | at_query, visible | (followed & on_masks[None]))
            if static_scene and model.geometry.solved and model.guided and (~on_masks).any():
                static = np.flatnonzero(~on_masks)
                xy[:, static], depth[:, static], visible[:, static] = place_static(
                    model, store, masks, queries[static], xy[:, static], depth[:, static], visible[:, static],
                    followed[:, static], at_query[:, static], tolerance)
    world = np.full((F, n, 3), np.nan, np.float32)
    if model.geometry.solved:
        # The point at its (possibly refined) pixel and the model's depth, from each frame's camera to the world.
        K = model.geometry.K[:, None]
        pose = model.geometry.world_from_camera[:, None]
        cam = np.stack([(xy[..., 0] - K[..., 0, 2]) / K[..., 0, 0] * depth,
                        (xy[..., 1] - K[..., 1, 2]) / K[..., 1, 1] * depth, depth], axis=-1)
        world = (np.einsum("fnij,fnj->fni", pose[..., :3, :3], cam) + pose[..., :3, 3]).astype(np.float32)
    return xy, visible, world


def place_static(model: OmniMotion, store: FlowStore, masks: np.ndarray, queries: np.ndarray, xy: np.ndarray,
                 depth: np.ndarray, visible: np.ndarray, followed: np.ndarray, at_query: np.ndarray,
                 tolerance: float):
    """The static scene's queries (N, 3), off the motion masks: their tracks xy (F, N, 2), depths and visibility
    (F, N) placed by the cameras and the depth guide (static_projection) where that agrees with the track or the
    model has lost the point, and hidden where a moving object passes in front (static_occluded); `followed`
    (F, N): where the flow followed them unbroken, `at_query` (F, N): their query frames."""
    W, H = model.geometry.width, model.geometry.height
    proj, z, seen = static_projection(model.geometry.K, model.geometry.world_from_camera,
                                      model.guide.cpu().numpy(), queries)
    near = np.linalg.norm(proj - xy, axis=-1) < tolerance
    # a point the flow followed mostly on the motion masks moves (an object standing still at its query frame,
    # so off the masks there): it keeps its track and visibility
    on = followed & on_motion_masks(masks, xy)
    still = on.sum(0) < STILL_SHARE * followed.sum(0)
    # where the model has lost the point (hidden by its cycle test, off its static place, the flow broken), the
    # static place stands too
    lost = ~near & ~visible & ~followed
    placed = (near | lost) & still[None]
    xy = np.where(placed[..., None], proj, xy)
    depth = np.where(placed, z, depth)
    visible = np.where(placed, seen, visible & (seen | ~still[None]))
    # a moving object passing in front: the checked flow where the static point lands does not move with it
    # (the guide's depth there is the background's fill, so the depth test cannot see it)
    visible &= ~static_occluded(store, xy, STATIC_OCCLUDER_SHARE * max(W, H)) | ~still[None]
    return xy, depth, visible | at_query


def static_projection(K: np.ndarray, pose: np.ndarray, guide: np.ndarray, queries: np.ndarray):
    """Queries (N, 3) on the static scene -> (F, N, 2) float32 pixels and (F, N) float32 planar depths of
    their points, placed at the depth guide's depth of the query pixel and seen by the solved cameras K
    (F, 3, 3) / world_from_camera pose (F, 4, 4); and (F, N) bool: in frame, and not more than
    STATIC_DEPTH_MARGIN behind the guide's depth there.

    On the test shots the guide and the solve place a static point to 0.2-0.3 px (median) 16+ frames from its
    query, where the flow-refined track has drifted to 0.4-0.5 px; where the two part by more than the
    refinement's tolerance it is mostly the guide's depth that is wrong (the error grows with the baseline)
    and the track holds, unless the model has lost the point (`track`). The depth test does not see the
    moving objects in front (the guide on them is the background's fill); `track` keeps the model's
    visibility off the static places."""
    F, H, W = guide.shape
    n = len(queries)
    frame = np.clip(np.round(queries[:, 0]).astype(int), 0, F - 1)
    pixels = queries[:, 1:3].astype(np.float64)
    proj = np.full((F, n, 2), np.nan)
    world = np.zeros((n, 3))
    for t in np.unique(frame):
        sel = np.flatnonzero(frame == t)
        depth = bilinear(guide[t], pixels[sel])
        for u in range(F):
            proj[u, sel] = pixels[sel] + rigid.static_flow(K, pose, pixels[sel], depth, t, u)
        # the point in the world, for its planar depth in each frame (the same camera motion as the projection)
        cam = unproject(K[t], pixels[sel], depth.astype(np.float64))
        world[sel] = cam @ pose[t, :3, :3].T + pose[t, :3, 3]
    z = np.einsum("fji,fnj->fni", pose[:, :3, :3], world[None] - pose[:, None, :3, 3])[..., 2]
    inside = np.isfinite(proj).all(-1) & (proj[..., 0] >= 0) & (proj[..., 0] < W) & (proj[..., 1] >= 0) & (proj[..., 1] < H)
    seen = np.zeros((F, n), bool)
    for u in range(F):
        at = np.where(inside[u, :, None], proj[u], 0.5).astype(np.float32)
        seen[u] = inside[u] & (z[u] < bilinear(guide[u], at) * (1 + STATIC_DEPTH_MARGIN))
    return np.nan_to_num(proj).astype(np.float32), z.astype(np.float32), seen


def static_occluded(store: FlowStore, xy: np.ndarray, threshold_px: float) -> np.ndarray:
    """(F, N) bool: static tracks xy (F, N, 2) are hidden where the checked gap-1 flow at the point, to the next
    frame (the one before at the last), lands more than threshold_px off the track's own step
    (rigid.flow_disagrees: the test the rigid tracks use for another moving object in front)."""
    F = len(xy)
    out = np.zeros(xy.shape[:2], bool)
    if F < 2:
        return out
    for j in range(F):
        u = j + 1 if j + 1 < F else j - 1
        p = xy[j].astype(np.float32)
        out[j] = rigid.flow_disagrees(store, p, xy[u] - p, j, u, threshold_px)
    return out


def job_flow(model: OmniMotion) -> FlowStore | None:
    """The flow store of the job the model was trained in (`model.job_dir`), if it holds this shot's gap-1 flow."""
    job = getattr(model, "job_dir", None)
    if job is None or not (Path(job) / "flow" / "flow.json").is_file():
        return None
    try:
        store = FlowStore(job)
    except (OSError, ValueError, KeyError):
        return None
    g = model.geometry
    if 1 not in store.gaps or (store.frames, store.width, store.height) != (model.config.frames, g.width, g.height):
        return None
    return store


def job_images(model: OmniMotion) -> photometric.Images | None:
    """The working frames of `model.job_dir` for the rigid motion's photometric poses, or None where the job has
    none of this shot's size."""
    job = getattr(model, "job_dir", None)
    try:
        frames = load_frames(job) if job is not None else None
    except (ShotfieldError, OSError, ValueError):
        return None
    if frames is None or frames.shape[:3] != (model.config.frames, model.geometry.height, model.geometry.width):
        return None
    return photometric.images(frames)


def job_motion_masks(model: OmniMotion) -> np.ndarray | None:
    """(F, H, W) bool masks/motion of `model.job_dir`, or None where the job has none (of this shot's size)."""
    job = getattr(model, "job_dir", None)
    masks = read_motion_masks(Path(job), model.config.frames) if job is not None else None
    if masks is None or masks.shape[1:] != (model.geometry.height, model.geometry.width):
        return None
    return masks


def query_on_motion_masks(model: OmniMotion, queries: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray | None:
    """(N,) bool: the query pixel lies on the motion masks of its frame (`masks`, read from masks/motion of
    `model.job_dir` when not given), or None where the job has none."""
    masks = job_motion_masks(model) if masks is None else masks
    if masks is None:
        return None
    F, H, W = masks.shape
    f = np.clip(np.round(queries[:, 0]).astype(int), 0, F - 1)
    x = np.clip(np.floor(queries[:, 1]).astype(int), 0, W - 1)
    y = np.clip(np.floor(queries[:, 2]).astype(int), 0, H - 1)
    return masks[f, y, x]


def on_motion_masks(masks: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(F, N) bool: track positions xy (F, N, 2) on masks (F, H, W) of their frames (False outside the frame)."""
    F, H, W = masks.shape
    x, y = np.floor(xy[..., 0]).astype(int), np.floor(xy[..., 1]).astype(int)
    inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
    return inside & masks[np.arange(F)[:, None], np.clip(y, 0, H - 1), np.clip(x, 0, W - 1)]


def refine_with_flow(store: FlowStore, queries: np.ndarray, xy: np.ndarray, tolerance_px: float):
    """xy (F, N, 2) model tracks of queries (N, 3) -> the tracks following the gap-1 flow from each query frame
    outwards (both ways) while the step passes the forward-backward check and lands in the frame within
    tolerance_px of the model's position; elsewhere the model's position, from which the chain goes on (so
    the refinement never moves a point across the frame's edge). Returns the tracks and `followed` (F, N)
    bool: the frames a track reached by flow steps alone, none rejected since its query frame."""
    F, W, H = store.frames, store.width, store.height
    out = xy.copy()
    n = len(queries)
    followed = np.zeros(xy.shape[:2], bool)
    q = np.clip(np.round(queries[:, 0]).astype(int), 0, F - 1)
    for direction in (1, -1):
        p = np.zeros((n, 2), np.float32)          # each chain's position in frame t
        unbroken = np.zeros(n, bool)
        for t in (range(F - 1) if direction == 1 else range(F - 1, 0, -1)):
            p[q == t] = queries[q == t, 1:3]
            unbroken[q == t] = True
            active = np.flatnonzero(q <= t if direction == 1 else q >= t)
            if not len(active):
                continue
            nxt = t + direction
            if direction == 1:
                flow, ok = store.forward(t, 1), store.forward_valid(t, 1)
            else:
                flow, ok = store.backward(nxt, 1), store.backward_valid(nxt, 1)
            a = p[active]
            step = bilinear(flow, a)
            ix = np.clip(a[:, 0].astype(int), 0, W - 1)
            iy = np.clip(a[:, 1].astype(int), 0, H - 1)
            model_xy = xy[nxt, active]
            moved = a + step
            inside = (moved[:, 0] >= 0) & (moved[:, 0] < W) & (moved[:, 1] >= 0) & (moved[:, 1] < H)
            good = ok[iy, ix] & inside & (np.linalg.norm(moved - model_xy, axis=1) < tolerance_px)
            p[active] = np.where(good[:, None], moved, model_xy)
            out[nxt, active] = p[active]
            unbroken[active] &= good
            followed[nxt, active] = unbroken[active]
    return out, followed


def occluded(model: OmniMotion, ray: dict, frame: torch.Tensor, start: torch.Tensor, j: int,
             pixels: torch.Tensor) -> torch.Tensor:
    """(M,) bool: the query points (rays `ray` from pixels `start` of frames `frame`), mapped to `pixels` of
    frame j, are hidden there: frame j's own ray at that pixel, composited and mapped back to the query's
    frame, lands more than CYCLE_TOLERANCE (share of the long side) away from the query pixel, i.e. frame j
    sees another surface there."""
    W, H = model.geometry.width, model.geometry.height
    clamped = torch.stack([pixels[:, 0].clamp(0.5, W - 0.5), pixels[:, 1].clamp(0.5, H - 0.5)], dim=1)
    target = torch.full((len(pixels),), j, dtype=torch.long, device=pixels.device)
    seen = model.trace(target, clamped)
    back, _, _ = model.map_to(seen, frame)
    return (back - start).norm(dim=-1) > CYCLE_TOLERANCE * max(W, H)
