"""Rigid 3D motion of the moving objects: tracks for query points on them, carried by their object's rotation
and translation.

The OmniMotion model (model.py) learns the moving objects' motion as free-form per-frame maps and loses points
on a turning surface (the rolling ball: its points turn with it, round its far side and back; docs/tracks.md,
sessions 7-9). A rigid object's points all move by one rotation + translation, which a few hundred flow
correspondences pin down. For queries on a moving object:

1. the object pixels: the solve's motion masks (masks/motion) where the gap-1 flow differs by more than
   RESIDUAL_PX, or the gap-4 flow by more than RESIDUAL_LONG of the long side (a slow object), from the flow
   the solved cameras predict for a static scene at the depth guide's depth (the masks cover much of the
   background around an object too: precision ~0.4-0.5 on the test shots);
2. at the query frame, the query's part of those pixels, and of the part the pixels that move like the ones
   next to the query (sequential RANSAC: two objects touching in the image share a part) and unlike the
   static scene: lifted to 3D with the depth guide they are the object's cloud;
3. the cloud's pose in every other frame (cloud -> camera) by RANSAC PnP (cv2.solvePnPRansac, then Levenberg-
   Marquardt on the inliers) from where the flow of gaps 1-8 takes the cloud's points seen in the frames
   already posed (`carry`): the long gaps tie a frame back to earlier ones, so the poses drift less than
   chained gap-1 steps. Where the object is hidden (too few points seen, or a fit that explains few of them
   or jumps from the predicted motion: an occluder's edge or the background taking over), it goes on with its
   mean motion in the world over the last frames for up to COAST_FRAMES frames;
4. a query's point, lifted at its frame and carried by the poses, projects to its track; it is visible where
   it lands on the motion masks next to where the object's cloud lands (`Chain.seen`), so a point behind a
   static occluder is hidden and one on the object's far side while the object is seen is not (the masks
   cannot tell the two sides apart), and where the flow there moves with it (another moving object in front
   moves unlike it);
5. with the frames at hand, the track itself is placed by a second pose per frame, the photometric one
   (photometric.py, session 11): the PnP step from the frame before applied to that frame's photometric pose,
   then refined so that the cloud's points keep their brightness of the PHOTO_REFERENCES frames before. DIS
   flow falls short at an object's outline (the quick test shot's ball: 1.4 px within 2 px of it), so the
   PnP poses lag frame after frame; brightness has no such bias. The PnP poses still decide where the object
   is, where it coasts and where its points are seen.

Only the motion relative to each camera matters for the projections, so the guide's depth on the object
(filled from the background around it, 0.7-2x its true depth) sets its size in 3D but hardly its tracks;
measured on the default test shot, the true depth there brings the ball's median error from 4.9 to 3.4 px.
Queries on the same object share one chain where the chain followed it to their frame without a break and
their neighbourhood moves with it (`_follows`), so 1,000 queries cost a dozen chains.
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from . import photometric
from .geometry import bilinear, unproject

RESIDUAL_PX = 0.75        # gap-1 flow this far off the static scene's prediction: the pixel moves on its own
LONG_GAP = 4              # ... or the flow of this gap off it by RESIDUAL_LONG of the long side: a slow object
RESIDUAL_LONG = 1 / 64    # (under a pixel a frame on a small frame) is told from the flow's noise over a few
                          # frames, where its own motion adds up and the noise does not (quick test shot's box:
                          # 0.65 px off at gap 1, 2.3 px at gap 4; the static scene 0.45 / 0.9 px, medians)
STILL_PX = 0.4            # a part's motion counts as the static scene's within this (median, pixels, gap 1)
MIN_PIXELS = 24           # smallest object part (pixels) worth a rigid fit
RANSAC_PX = 1.0           # PnP inlier threshold (reprojection, pixels)
RANSAC_ITERATIONS = 100
GROW_PX = 3               # an object's region in a frame: the object pixels this near where its cloud lands
COAST_FRAMES = 8          # frames a hidden object goes on with its last motion
VELOCITY_FRAMES = 4       # ... its mean motion over this many frames
POSE_GAPS = (1, 2, 4, 8)  # flow gaps that tie a frame's pose to the frames already posed
MAX_OBSERVATIONS = 400    # flow observations a pose is fitted to (an even spread)
MAX_CLOUD = 300           # points that stand for an object (its pixels, evenly spread)
MIN_INLIER_SHARE = 0.3    # a pose fit must explain this share of the observations ...
MAX_JUMP = 0.01           # ... and land the cloud within this share of the long side of the predicted motion
                          # (per frame the object has been hidden)
OCCLUDER_SHARE = 1 / 64  # a point's flow this far (share of the long side) off its own motion: something else is
                          # seen there
PHOTO_REFERENCES = (1, 2)  # a photometric pose matches the object's brightness in the frames this many back
NEAR_PX = 4.0             # pixels this near a query decide which motion of a shared part is the query's


def static_flow(K: np.ndarray, pose: np.ndarray, pix: np.ndarray, depth: np.ndarray, t: int, u: int) -> np.ndarray:
    """(N, 2) flow from frame t to u of the pixels pix (N, 2) of frame t, were they static at planar depth
    `depth` (N,)."""
    X = unproject(K[t], pix, depth.astype(np.float64))
    M = np.linalg.inv(pose[u]) @ pose[t]
    Y = X @ M[:3, :3].T + M[:3, 3]
    z = np.where(Y[:, 2] > 1e-9, Y[:, 2], np.nan)
    proj = np.stack([Y[:, 0] / z * K[u, 0, 0] + K[u, 0, 2], Y[:, 1] / z * K[u, 1, 1] + K[u, 1, 2]], -1)
    return proj - pix


def flow_disagrees(store, p: np.ndarray, step: np.ndarray, j: int, u: int, threshold_px: float) -> np.ndarray:
    """(N,) bool: the gap-1 flow from frame j to its neighbour u (j +- 1) at pixels p (N, 2) of frame j passes
    its forward-backward check there and lands more than threshold_px off the points' own step (N, 2): another
    surface, moving unlike them, is seen where they would be."""
    W, H = store.width, store.height
    flow, ok = (store.forward(j, 1), store.forward_valid(j, 1)) if u > j else \
        (store.backward(u, 1), store.backward_valid(u, 1))
    ix = np.clip(p[:, 0].astype(int), 0, W - 1)
    iy = np.clip(p[:, 1].astype(int), 0, H - 1)
    other = np.linalg.norm(bilinear(flow, p) - step, axis=1) > threshold_px
    return ok[iy, ix].astype(bool) & other


def object_pixels(store, K: np.ndarray, pose: np.ndarray, guide: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(F, H, W) bool: on the motion masks and moving on its own by the gap-1 or the LONG_GAP flow (forwards or
    backwards, where the flow passes its check), against the static scene the cameras and the depth guide
    predict."""
    F = store.frames
    out = np.zeros(masks.shape, bool)
    tests = [(1, RESIDUAL_PX)]
    if LONG_GAP in store.gaps:
        tests.append((LONG_GAP, RESIDUAL_LONG * max(masks.shape[1:])))
    kernel = np.ones((3, 3), np.uint8)
    for t in range(F):
        ys, xs = np.nonzero(masks[t])
        if not len(ys):
            continue
        pix = np.stack([xs, ys], 1).astype(np.float64) + 0.5
        moving = np.zeros(len(ys), bool)
        for g, threshold in tests:
            for u in (t + g, t - g):
                if not 0 <= u < F:
                    continue
                flow, ok = (store.forward(t, g), store.forward_valid(t, g)) if u > t else \
                    (store.backward(u, g), store.backward_valid(u, g))
                residual = np.linalg.norm(flow[ys, xs] - static_flow(K, pose, pix, guide[t][ys, xs], t, u), axis=-1)
                moving |= ok[ys, xs].astype(bool) & (residual > threshold)
        m = np.zeros(masks[t].shape, np.uint8)
        m[ys[moving], xs[moving]] = 1
        # an opening drops isolated flow errors; a closing fills the object's pixels that failed the check
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel)
        out[t] = cv2.morphologyEx(m, cv2.MORPH_CLOSE, kernel).astype(bool) & masks[t]
    return out


def parts(pixels: np.ndarray) -> np.ndarray:
    """(F, H, W) int32 labels of the connected parts of the object pixels (0: none; parts under MIN_PIXELS
    dropped)."""
    labels = np.zeros(pixels.shape, np.int32)
    for t, m in enumerate(pixels):
        n, lab, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
        keep = np.zeros(n, np.int32)
        big = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= MIN_PIXELS]
        keep[big] = np.arange(1, len(big) + 1)
        labels[t] = keep[lab]
    return labels


def _project(K: np.ndarray, X: np.ndarray) -> np.ndarray:
    z = np.maximum(X[:, 2], 1e-9)
    return np.stack([X[:, 0] / z * K[0, 0] + K[0, 2], X[:, 1] / z * K[1, 1] + K[1, 2]], -1)


def _posed_before(u: int, q: int, direction: int, steps, posed: dict) -> list[tuple[int, int]]:
    """(step, frame) for the frames `step` back from u (towards the chain's start q, going `direction`) that are
    already posed (keys of `posed`) and not beyond q."""
    frames = [(k, u - direction * k) for k in steps]
    return [(k, s) for k, s in frames if s in posed and (s - q) * direction >= 0]


def _lands(K: np.ndarray, A: np.ndarray, cloud: np.ndarray, W: int, H: int):
    """Where the cloud (N, 3) lands in a frame under pose A (4, 4) and camera K: pixels (N, 2), whether in the
    frame (N,) bool, and the pixels' integer columns and rows (N,), clipped to the frame, to read masks with."""
    at = _project(K, _transform(A, cloud))
    inside = (at[:, 0] >= 0) & (at[:, 0] < W) & (at[:, 1] >= 0) & (at[:, 1] < H)
    return at, inside, np.clip(at[:, 0].astype(int), 0, W - 1), np.clip(at[:, 1].astype(int), 0, H - 1)


def _pnp(X: np.ndarray, y: np.ndarray, K: np.ndarray):
    """(R, T, inliers) with y ~ project(K, R X + T), or None."""
    ok, rvec, tvec, inl = cv2.solvePnPRansac(X, y, K, None, reprojectionError=RANSAC_PX,
                                             iterationsCount=RANSAC_ITERATIONS, confidence=0.999,
                                             flags=cv2.SOLVEPNP_EPNP)
    if not ok or inl is None or len(inl) < 6:
        return None
    inl = inl.ravel()
    rvec, tvec = cv2.solvePnPRefineLM(X[inl], y[inl], K, None, rvec, tvec)
    R = cv2.Rodrigues(rvec)[0]
    err = np.linalg.norm(_project(K, X @ R.T + tvec.ravel()) - y, axis=1)
    return R, tvec.ravel(), err < RANSAC_PX


def _first_fit(X, y, K, near: np.ndarray, static: np.ndarray):
    """Sequential RANSAC on a part that may hold more than one object (two touching in the image), or the
    background around one: the fit whose inliers include most of the points `near` (bool) the query and that
    moves unlike the static scene (`static`: the camera-to-camera motion), or None."""
    left = np.arange(len(X))
    for _ in range(3):
        if len(left) < MIN_PIXELS:
            return None
        fit = _pnp(X[left], y[left], K)
        if fit is None:
            return None
        R, T, inl = fit
        Xi = X[left][inl]
        still = np.median(np.linalg.norm(_project(K, Xi @ R.T + T) - _project(K, _transform(static, Xi)), axis=1))
        if near[left].any() and inl[near[left]].mean() >= 0.5 and still > STILL_PX:
            full = np.linalg.norm(_project(K, X @ R.T + T) - y, axis=1) < RANSAC_PX
            return R, T, full
        left = left[~inl]
    return None


def _transform(A: np.ndarray, P: np.ndarray) -> np.ndarray:
    return P @ A[:3, :3].T + A[:3, 3]


class Chain:
    """One object followed through the shot from frame q, per frame: its pose (F, 4, 4) (cloud -> camera, NaN
    where not followed) from the flow (PnP), which decides where the object is seen; its photometric pose
    (F, 4, 4), which places the tracks (the PnP pose where there are no frames to refine it on); its region
    (object pixels near where its cloud lands), where its points count as seen (motion masks near there), the
    guide's depth scale on it (its carried depth / the guide's), and whether every frame from q to there was
    fitted (not coasted)."""

    def __init__(self, frames: int, height: int, width: int):
        self.poses = np.full((frames, 4, 4), np.nan)
        self.photo_poses = np.full((frames, 4, 4), np.nan)
        self.regions = np.zeros((frames, height, width), bool)
        self.seen = np.zeros((frames, height, width), bool)
        self.scale = np.full(frames, np.nan)
        self.unbroken = np.zeros(frames, bool)

    def covers(self, f: int, x: int, y: int) -> bool:
        """A query at (f, x, y) can share this chain: the chain followed its object there without a break
        (across a gap it went on by its predicted motion, and the poses on the far side may be off by a few
        pixels, which a chain of the query's own would not carry near its frame) and (x, y) is on it."""
        return bool(self.unbroken[f] and self.regions[f, y, x])


def carry(store, K: np.ndarray, pose: np.ndarray, guide: np.ndarray, pixels: np.ndarray, masks: np.ndarray,
          q: int, region: np.ndarray, near: np.ndarray, images: photometric.Images | None = None) -> Chain | None:
    """Follow the object part `region` (H, W bool) of frame q, the motion of its pixels `near` (H, W bool) a
    query, through the shot; None where no motion fits there.

    The object is kept as a fixed cloud: its pixels at frame q that follow that motion, lifted to 3D with the
    guide (at most MAX_CLOUD of them). Its pose in each next frame u comes from PnP on the cloud's points seen
    in the frames already posed (at the gaps POSE_GAPS the flow store holds) and where the flow of those gaps
    takes them in u, so that the longer gaps tie u straight back to earlier frames (less drift than chaining
    gap-1 steps). Its region in u is the object pixels near where the whole cloud lands (a part hidden for a
    while, behind another object or round the back, is found again when it comes back). A fit that explains
    few observations or jumps from the predicted motion is another surface taking over; there, and where too
    little is seen to fit, the object goes on with its last motion in the world for up to COAST_FRAMES frames.

    With `images`, each frame's photometric pose is the PnP step from the frame before applied to that frame's
    photometric pose, refined on brightness (`_photometric`): it follows the PnP chain's decisions (where the
    object is, where it coasts) without the flow's bias at the outline."""
    F, H, W = pixels.shape
    chain = Chain(F, H, W)
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * GROW_PX + 1, 2 * GROW_PX + 1))
    gaps = [g for g in store.gaps if g in POSE_GAPS]
    # the first step picks the motion of the pixels near the query (a part may hold two objects)
    u = q + 1 if q + 1 < F else q - 1
    flow, ok = (store.forward(q, 1), store.forward_valid(q, 1)) if u > q else \
        (store.backward(u, 1), store.backward_valid(u, 1))
    ys, xs = np.nonzero(region & ok.astype(bool))
    if len(ys) < MIN_PIXELS:
        return None
    src = np.stack([xs, ys], 1).astype(np.float64) + 0.5
    lifted = unproject(K[q], src, guide[q][ys, xs].astype(np.float64))
    fit = _first_fit(lifted, src + flow[ys, xs].astype(np.float64), K[u], near[ys, xs],
                     np.linalg.inv(pose[u]) @ pose[q])
    if fit is None:
        return None
    cloud = lifted[fit[2]]
    # at q, the object is the pixels that follow its motion (the part may hold others), closed over small gaps
    own = np.zeros((H, W), np.uint8)
    own[ys[fit[2]], xs[fit[2]]] = 1
    own = cv2.dilate(own, grow).astype(bool)
    if len(cloud) > MAX_CLOUD:    # an even spread of the object's pixels, the same on every run
        cloud = cloud[np.linspace(0, len(cloud) - 1, MAX_CLOUD).round().astype(int)]
    poses = {q: np.eye(4)}
    photo = {q: np.eye(4)}
    chain.photo_poses[q] = np.eye(4)
    chain.poses[q], chain.regions[q], chain.scale[q], chain.unbroken[q] = np.eye(4), own & region, 1.0, True
    chain.seen[q] = own & region
    for direction in (1, -1):
        t = q
        coasting, unbroken = 0, True
        while 0 <= t + direction < F:
            u = t + direction
            obj, obs = [], []
            for g, s_ in _posed_before(u, q, direction, gaps, poses):
                seen_at, inside, ix, iy = _lands(K[s_], poses[s_], cloud, W, H)
                if direction == 1:
                    fl, fok = store.forward(s_, g), store.forward_valid(s_, g)
                else:
                    fl, fok = store.backward(u, g), store.backward_valid(u, g)
                use = inside & chain.regions[s_][iy, ix] & fok[iy, ix].astype(bool)
                to = seen_at + bilinear(fl, seen_at)
                # where the flow lands off the object pixels of u, something else is seen there (an occluder);
                # unless next to nothing lands on them: an object that stops for a while (the quick test shot's
                # box, frames 7-11) has no object pixels and hardly any motion masks, and there its own flow,
                # the static scene's, is what carries it (the pose fit's checks still stand)
                tx = np.clip(to[:, 0].astype(int), 0, W - 1)
                ty = np.clip(to[:, 1].astype(int), 0, H - 1)
                for landing in (pixels[u], masks[u]):
                    if (use & landing[ty, tx]).sum() >= MIN_PIXELS // 2:
                        use &= landing[ty, tx]
                        break
                if use.sum() < MIN_PIXELS // 2:
                    continue
                obj.append(cloud[use])
                obs.append(to[use])
            # the pose the object's last motion in the world predicts (the camera's own motion, hand-held wobble
            # and all, comes from the solve): its mean screw motion over the last VELOCITY_FRAMES frames, again
            back = [t - direction * k for k in range(VELOCITY_FRAMES, 0, -1) if t - direction * k in poses]
            w_t = pose[t] @ poses[t]
            predicted = np.linalg.inv(pose[u]) @ w_t
            if back:
                k = abs(t - back[0])
                before = pose[back[0]] @ poses[back[0]]
                one = np.eye(4)
                one[:3, :3] = Rotation.from_rotvec(
                    Rotation.from_matrix((w_t @ np.linalg.inv(before))[:3, :3]).as_rotvec() / k).as_matrix()
                centre = w_t[:3, :3] @ cloud.mean(0) + w_t[:3, 3]
                velocity = (centre - (before[:3, :3] @ cloud.mean(0) + before[:3, 3])) / k
                one[:3, 3] = centre + velocity - one[:3, :3] @ centre
                predicted = np.linalg.inv(pose[u]) @ one @ w_t
            A = None
            if obs and sum(len(o) for o in obs) >= MIN_PIXELS:
                o_obj, o_obs = np.concatenate(obj), np.concatenate(obs)
                if len(o_obs) > MAX_OBSERVATIONS:   # an even spread, the same on every run
                    keep = np.linspace(0, len(o_obs) - 1, MAX_OBSERVATIONS).round().astype(int)
                    o_obj, o_obs = o_obj[keep], o_obs[keep]
                fit = _pnp(o_obj, o_obs, K[u])
                if fit is not None:
                    A = np.eye(4)
                    A[:3, :3], A[:3, 3] = fit[0], fit[1]
                    jump = np.median(np.linalg.norm(_project(K[u], _transform(A, cloud))
                                                    - _project(K[u], _transform(predicted, cloud)), axis=1))
                    if fit[2].sum() < MIN_INLIER_SHARE * len(o_obs) or \
                            (back and jump > MAX_JUMP * (1 + coasting) * max(W, H)):
                        A = None
            if A is None:
                if coasting >= COAST_FRAMES or not back:
                    break
                A = predicted
                coasting += 1
                unbroken = False
            else:
                coasting = 0
            moved = _transform(A, cloud)
            if (moved[:, 2] <= 0).any():
                break
            poses[u] = A
            photo[u] = A @ np.linalg.inv(poses[t]) @ photo[t]
            if images is not None and coasting == 0:
                photo[u] = _photometric(photo[u], cloud, chain, photo, images, K, q, u, direction)
            chain.photo_poses[u] = photo[u]
            landed = _project(K[u], moved)
            inside = (landed[:, 0] >= 0) & (landed[:, 0] < W) & (landed[:, 1] >= 0) & (landed[:, 1] < H)
            landed_mask = np.zeros((H, W), np.uint8)
            ix, iy = landed[inside, 0].astype(int), landed[inside, 1].astype(int)
            landed_mask[iy, ix] = 1
            around = cv2.dilate(landed_mask, grow).astype(bool)    # where the cloud lands, grown by GROW_PX
            chain.regions[u] = around & pixels[u]
            if chain.regions[u].sum() < MIN_PIXELS:     # stopped (above): the motion masks, what there is of them
                chain.regions[u] = around & masks[u]
            chain.seen[u] = around & masks[u]
            chain.poses[u], chain.unbroken[u] = A, unbroken
            seen = chain.regions[u][iy, ix]
            if seen.sum() >= MIN_PIXELS:
                chain.scale[u] = float(np.median(moved[inside][seen, 2] / guide[u][iy[seen], ix[seen]]))
            else:
                chain.scale[u] = chain.scale[t]
            t = u
    return chain


def _photometric(A: np.ndarray, cloud: np.ndarray, chain: Chain, photo: dict, images: photometric.Images,
                 K: np.ndarray, q: int, u: int, direction: int) -> np.ndarray:
    """Frame u's pose A (4, 4) refined on brightness (photometric.refine_pose): the cloud's points that land on
    the object's region in the frames PHOTO_REFERENCES back (towards q), with their brightness there under
    those frames' photometric poses, against frame u."""
    H, W = chain.regions.shape[1:]
    X, colours = [], []
    for _, s_ in _posed_before(u, q, direction, PHOTO_REFERENCES, photo):
        at, inside, ix, iy = _lands(K[s_], photo[s_], cloud, W, H)
        use = inside & chain.regions[s_][iy, ix]
        if use.any():
            X.append(cloud[use])
            colours.append(bilinear(images.gray[s_], at[use]))
    if sum(len(x) for x in X) < MIN_PIXELS:
        return A
    return photometric.refine_pose(A, np.concatenate(X), np.concatenate(colours), K[u], images.gray[u], images.grad[u])


def _follows(store, K: np.ndarray, guide: np.ndarray, chain: Chain, f: int, near: np.ndarray) -> bool:
    """The pixels `near` (H, W bool) a query at frame f move by the chain's motion to the next frame (median
    flow residual within RANSAC_PX): the query lies on the chain's object, not on one touching it."""
    F = store.frames
    u = f + 1 if f + 1 < F else f - 1
    if not np.isfinite(chain.poses[u]).all():
        return False
    flow, ok = (store.forward(f, 1), store.forward_valid(f, 1)) if u > f else \
        (store.backward(u, 1), store.backward_valid(u, 1))
    ys, xs = np.nonzero(near & ok.astype(bool))
    if not len(ys):
        return False
    src = np.stack([xs, ys], 1).astype(np.float64) + 0.5
    cam = unproject(K[f], src, guide[f][ys, xs].astype(np.float64) * chain.scale[f])
    moved = _transform(chain.poses[u] @ np.linalg.inv(chain.poses[f]), cam)
    residual = np.linalg.norm(_project(K[u], moved) - (src + flow[ys, xs]), axis=1)
    return bool(np.median(residual) < RANSAC_PX)


class RigidTracks(NamedTuple):
    """xy: (F, N, 2) float32 tracks by the photometric poses, NaN where a query is not on a moving object or its
    object was not followed there; xy_flow: (F, N, 2) the same by the PnP poses (where the flow puts them, for
    the flow refinement's visibility); depth: (F, N) planar depth (the guide's scale); visible: (F, N) bool;
    on_object: (N,) bool."""

    xy: np.ndarray
    xy_flow: np.ndarray
    depth: np.ndarray
    visible: np.ndarray
    on_object: np.ndarray


def track(store, K: np.ndarray, pose: np.ndarray, guide: np.ndarray, masks: np.ndarray | None,
          queries: np.ndarray, images: photometric.Images | None = None) -> RigidTracks:
    """Rigid tracks for the queries on moving objects; with `images` (photometric.images of the frames) placed
    by the photometric poses, else by the PnP poses. Visibility comes from the PnP poses either way.

    Queries on the same object share its chain: a query at frame f on a chain's region there is lifted with
    the chain's depth at f and carried by the chain's poses relative to f (about the drift a chain started at
    f would have, at a fraction of the cost: 1,000 queries stay within seconds)."""
    n = len(queries)
    F, H, W = guide.shape
    xy = np.full((F, n, 2), np.nan, np.float32)
    xy_flow = np.full((F, n, 2), np.nan, np.float32)
    depth = np.full((F, n), np.nan, np.float32)
    visible = np.zeros((F, n), bool)
    on_object = np.zeros(n, bool)
    if masks is None or not masks.any() or n == 0:
        return RigidTracks(xy, xy_flow, depth, visible, on_object)
    pixels = object_pixels(store, K, pose, guide, masks)
    labels = parts(pixels)
    qf = np.clip(np.round(queries[:, 0]).astype(int), 0, F - 1)
    qx = np.clip(np.floor(queries[:, 1]).astype(int), 0, W - 1)
    qy = np.clip(np.floor(queries[:, 2]).astype(int), 0, H - 1)
    part = labels[qf, qy, qx]
    chains: list[Chain] = []
    chain_of = np.full(n, -1)
    ys, xs = np.mgrid[0:H, 0:W]
    for i in np.flatnonzero(part > 0):
        f = qf[i]
        near = (xs + 0.5 - queries[i, 1]) ** 2 + (ys + 0.5 - queries[i, 2]) ** 2 < NEAR_PX ** 2
        found = [c for c, ch in enumerate(chains) if ch.covers(f, qx[i], qy[i]) and
                 _follows(store, K, guide, ch, f, near)]
        if not found:
            ch = carry(store, K, pose, guide, pixels, masks, f, labels[f] == part[i], near & (labels[f] == part[i]),
                       images)
            if ch is None or not ch.covers(f, qx[i], qy[i]):
                continue
            chains.append(ch)
            found = [len(chains) - 1]
        chain_of[i] = found[0]
    for c, ch in enumerate(chains):
        idx = np.flatnonzero(chain_of == c)
        for f in np.unique(qf[idx]):
            sel = idx[qf[idx] == f]
            # the queries' points in the chain's cloud coordinates
            cam = unproject(K[f], queries[sel, 1:3].astype(np.float64),
                            guide[f][qy[sel], qx[sel]].astype(np.float64) * ch.scale[f])
            local = _transform(np.linalg.inv(ch.poses[f]), cam)
            photo_local = _transform(np.linalg.inv(ch.photo_poses[f]), cam)
            for j in range(F):
                if not np.isfinite(ch.poses[j]).all():
                    continue
                X = _transform(ch.poses[j], local)
                p = _project(K[j], X)
                xy_flow[j, sel] = p
                photo_X = _transform(ch.photo_poses[j], photo_local)
                xy[j, sel] = _project(K[j], photo_X)
                depth[j, sel] = photo_X[:, 2]
                inside = (p[:, 0] >= 0) & (p[:, 0] < W) & (p[:, 1] >= 0) & (p[:, 1] < H) & (X[:, 2] > 0)
                ix = np.clip(p[:, 0].astype(int), 0, W - 1)
                iy = np.clip(p[:, 1].astype(int), 0, H - 1)
                visible[j, sel] = inside & ch.seen[j][iy, ix]
                # another moving object in front (the ball over the box: the motion masks hold both): the
                # flow where the point lands does not move with the point (checked flow only)
                u = j + 1 if j + 1 < F else j - 1
                if np.isfinite(ch.poses[u]).all():
                    step = _project(K[u], _transform(ch.poses[u], local)) - p
                    visible[j, sel] &= ~flow_disagrees(store, p, step, j, u, OCCLUDER_SHARE * max(W, H))
            xy[f, sel] = xy_flow[f, sel] = queries[sel, 1:3]
            visible[f, sel] = True
            on_object[sel] = True
    return RigidTracks(xy, xy_flow, depth, visible, on_object)
