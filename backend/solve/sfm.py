"""Sparse structure from motion with pycolmap on keyframes, then every other frame registered by PnP.

Keyframes: every `stride`-th frame (and the last), at most MAX_KEYFRAMES of them. Global mapping (GLOMAP)
measured better than incremental mapping as the initialisation on the rendered shots (keyframes with the
motion masks; ATE / focal error of the keyframes: hand-held 40 frames 0.027 % / 0.06 % against 0.031 % /
0.33 %, large moving object 0.44 % / 3.0 % against 1.3 % / 4.7 %, hand-held 24 frames at 160x120 0.06 % /
0.9 % against 1.0 % / 34 %), in the same time; incremental mapping is the second attempt where global
mapping solves too little. Either is the initialisation only: the dense bundle adjustment refines it. The motion masks go to COLMAP as per-image masks (black = no
features), so nothing on a moving object is matched or bundle-adjusted.

Matching: exhaustive between keyframes up to EXHAUSTIVE_MAX of them (covers loops for free: 30 images
are 435 pairs, seconds with SIFT at this size), else sequential neighbours plus "loop pairs" between
every LOOP_STRIDE-th keyframe. COLMAP's vocabulary-tree loop detection is off: its tree would have to be
downloaded, which the ground rules forbid.

Remaining frames: the 2D observations of the sparse points in the nearest registered keyframes are carried
to the frame through the stored flow, and pycolmap's LO-RANSAC PnP + refinement gives its pose.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pycolmap

from ..flow_store import FlowStore
from .track import CameraTrack, Intrinsics

MAX_KEYFRAMES = 24
EXHAUSTIVE_MAX = 30
LOOP_STRIDE = 5
MIN_PNP_POINTS = 12
#: SIFT's contrast threshold (COLMAP's default is 0.0067). On the low-texture test shot the default found so few
#: features that global mapping registered 4-17 of 21 keyframes from run to run (then the learned fallback took
#: over, 109 s); at 0.004 it registers 21 of 21 in every run, and the textured shots keep 21 of 21.
SIFT_PEAK_THRESHOLD = 0.004
#: COLMAP runs on one thread so that the same shot always gets the same solve. With 2 threads, feature
#: extraction, matching and the global mapper each reorder their work from run to run: on the low-texture shot
#: the keyframes registered went 4, 9, 11, 17 over identical runs (and one run took 94 s instead of 2 s), even
#: with fixed seeds. One thread costs about 4 s on the 40-frame 320x240 shots (SfM 11 -> 15 s); measured.
COLMAP_THREADS = 1
#: COLMAP's initial pair wants 100 inliers and a 16 degree triangulation angle; a 160x120 frame half covered
#: by a moving object, or a slow dolly, has neither. These values registered such shots (measured).
RELAXED_INIT = {"init_min_num_inliers": 30, "init_min_tri_angle": 4.0, "abs_pose_min_num_inliers": 20}


@dataclass
class SparseSolve:
    """What pycolmap found: the keyframe cameras (unregistered frames flagged), sparse points with colours."""

    track: CameraTrack
    points: np.ndarray          # (P, 3) world
    colours: np.ndarray         # (P, 3) uint8
    keyframes: list[int]
    registered_keyframes: int
    observations: dict = field(default_factory=dict)
    """frame -> (keypoints (K, 2) px, row of each in `points` (K,)): what each keyframe sees of the points."""
    pnp_registered: int = 0
    k1: float = 0.0             # COLMAP's SIMPLE_RADIAL distortion (reported, not used by the dense BA)


def choose_keyframes(frames: int, max_keyframes: int = MAX_KEYFRAMES) -> list[int]:
    stride = max(1, int(np.ceil((frames - 1) / (max_keyframes - 1))))
    keys = list(range(0, frames, stride))
    if keys[-1] != frames - 1:
        keys.append(frames - 1)
    return keys


def run_sfm(frames_rgb: np.ndarray, moving: np.ndarray | None, keyframes: list[int], mapper: str = "global",
            relaxed: bool = False, workdir: str | None = None) -> SparseSolve | None:
    """pycolmap on `keyframes` of frames_rgb (F, H, W, 3) uint8; moving (F, H, W) bool masks out features.
    mapper: "global" or "incremental"; `relaxed` lowers incremental mapping's demands on the initial pair
    (RELAXED_INIT), for small frames where masks leave few features or for short camera moves.
    Returns None when fewer than 3 keyframes are solved."""
    pycolmap.logging.minloglevel = int(os.environ.get("SHOTFIELD_COLMAP_LOG", 2))  # errors only: COLMAP's info log would flood the job's terminal
    pycolmap.set_random_seed(0)
    n, h, w = frames_rgb.shape[:3]
    with tempfile.TemporaryDirectory(prefix="shotfield-sfm-", dir=workdir) as tmp:
        tmp = Path(tmp)
        images, masks = tmp / "images", tmp / "masks"
        images.mkdir()
        masks.mkdir()
        names = []
        for k in keyframes:
            name = f"{k:05d}.png"
            cv2.imwrite(str(images / name), cv2.cvtColor(frames_rgb[k], cv2.COLOR_RGB2BGR))
            keep = np.full((h, w), 255, np.uint8) if moving is None else np.where(moving[k], 0, 255).astype(np.uint8)
            cv2.imwrite(str(masks / f"{name}.png"), keep)  # COLMAP looks for <image name>.png
            names.append(name)
        db = tmp / "database.db"
        reader = pycolmap.ImageReaderOptions(camera_model="SIMPLE_RADIAL", mask_path=str(masks))
        extraction = pycolmap.FeatureExtractionOptions(num_threads=COLMAP_THREADS)
        extraction.sift.peak_threshold = SIFT_PEAK_THRESHOLD
        pycolmap.extract_features(db, images, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                                  reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
        matching = pycolmap.FeatureMatchingOptions(num_threads=COLMAP_THREADS)
        if len(names) <= EXHAUSTIVE_MAX:
            pycolmap.match_exhaustive(db, matching_options=matching, device=pycolmap.Device.cpu)
        else:
            pairs = tmp / "pairs.txt"
            pairs.write_text("".join(f"{a} {b}\n" for a, b in _pairs(names)))
            pycolmap.match_image_pairs(db, matching_options=matching,
                                       pairing_options=pycolmap.ImportedPairingOptions(match_list_path=pairs),
                                       device=pycolmap.Device.cpu)
        if mapper == "global":
            recs = pycolmap.global_mapping(db, images, tmp / "sparse", options=_global_options())
        else:
            options = pycolmap.IncrementalPipelineOptions(num_threads=COLMAP_THREADS, random_seed=0, multiple_models=False)
            if relaxed:
                for name, value in RELAXED_INIT.items():
                    setattr(options.mapper, name, value)
            recs = pycolmap.incremental_mapping(db, images, tmp / "sparse", options=options)
    if not recs:
        return None
    rec = max(recs.values(), key=lambda r: r.num_reg_images())
    if rec.num_reg_images() < 3:
        return None
    return _from_reconstruction(rec, n, w, h, keyframes)


def _global_options() -> pycolmap.GlobalPipelineOptions:
    """GLOMAP with fixed seeds (its defaults, -1, seed every run differently). Seeds alone do not make a run
    repeatable: see COLMAP_THREADS."""
    options = pycolmap.GlobalPipelineOptions(num_threads=COLMAP_THREADS, random_seed=0)
    mapper = options.mapper
    mapper.num_threads = COLMAP_THREADS
    mapper.random_seed = mapper.rotation_averaging.random_seed = mapper.global_positioning.random_seed = 0
    mapper.retriangulation.random_seed = 0
    return options


def _pairs(names: list[str]) -> list[tuple[str, str]]:
    """Sequential neighbours (10 each side) plus loop pairs among every LOOP_STRIDE-th keyframe."""
    out = set()
    for i in range(len(names)):
        for j in range(i + 1, min(len(names), i + 11)):
            out.add((names[i], names[j]))
    loops = names[::LOOP_STRIDE]
    for i in range(len(loops)):
        for j in range(i + 1, len(loops)):
            out.add((loops[i], loops[j]))
    return sorted(out)


def _from_reconstruction(rec: pycolmap.Reconstruction, n: int, w: int, h: int, keyframes: list[int]) -> SparseSolve:
    camera = next(iter(rec.cameras.values()))
    f, cx, cy = camera.params[:3]
    k1 = float(camera.params[3]) if len(camera.params) > 3 else 0.0
    rotation = np.tile(np.eye(3), (n, 1, 1))
    centre = np.zeros((n, 3))
    registered = np.zeros(n, bool)
    observations = {}
    for image in rec.images.values():
        if not image.has_pose:
            continue
        i = int(Path(image.name).stem)
        m = image.cam_from_world().matrix()  # 3x4 camera_from_world
        rotation[i] = m[:, :3].T
        centre[i] = -m[:, :3].T @ m[:, 3]
        registered[i] = True
        pts = [(p.xy, p.point3D_id) for p in image.points2D if p.has_point3D()]
        observations[i] = (np.array([p[0] for p in pts]).reshape(-1, 2), np.array([p[1] for p in pts], np.int64))
    ids = np.array(sorted(rec.points3D.keys()), np.int64)
    xyz = np.array([rec.points3D[i].xyz for i in ids]).reshape(-1, 3)
    rgb = np.array([rec.points3D[i].color for i in ids], np.uint8).reshape(-1, 3)
    row = {int(p): k for k, p in enumerate(ids)}
    observations = {i: (kp, np.array([row[int(p)] for p in pid], np.int64)) for i, (kp, pid) in observations.items()}
    track = CameraTrack(Intrinsics(float(f), float(cx), float(cy)), rotation, centre, w, h, registered)
    return SparseSolve(track, xyz, rgb, keyframes, int(registered.sum()), observations, k1=k1)


def register_remaining(solve: SparseSolve, store: FlowStore) -> SparseSolve:
    """Pose every frame that is not a registered keyframe by PnP on sparse points carried there by flow."""
    track = solve.track
    n = track.frames
    k = track.intrinsics
    camera = pycolmap.Camera(model="SIMPLE_PINHOLE", width=track.width, height=track.height, params=[k.f, k.cx, k.cy])
    registered_keys = [i for i in solve.keyframes if track.registered[i]]
    added = 0
    for j in range(n):
        if track.registered[j]:
            continue
        xy2, xyz = [], []
        for key in sorted(registered_keys, key=lambda key: abs(key - j))[:4]:
            gap = abs(j - key)
            if gap not in store.gaps or key == j:
                continue
            kp, rows = solve.observations[key]
            if len(kp) == 0:
                continue
            moved, ok = _carry(store, kp, key, j)
            xy2.append(moved[ok])
            xyz.append(solve.points[rows[ok]])
        if not xy2 or sum(len(a) for a in xy2) < MIN_PNP_POINTS:
            continue
        result = pycolmap.estimate_and_refine_absolute_pose(np.concatenate(xy2), np.concatenate(xyz), camera)
        if result is None or result["num_inliers"] < MIN_PNP_POINTS:
            continue
        m = result["cam_from_world"].matrix()
        track.rotation[j] = m[:, :3].T
        track.centre[j] = -m[:, :3].T @ m[:, 3]
        track.registered[j] = True
        added += 1
    solve.pnp_registered = added
    return solve


def _carry(store: FlowStore, xy: np.ndarray, src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions xy (K, 2) of frame src moved to frame dst by the stored flow; (xy', valid)."""
    gap = abs(dst - src)
    flow, valid = (store.forward(src, gap), store.forward_valid(src, gap)) if dst > src else \
        (store.backward(dst, gap), store.backward_valid(dst, gap))
    pts = (xy - 0.5).astype(np.float32)
    d = cv2.remap(flow, pts[:, 0:1], pts[:, 1:2], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 2)
    xi = np.clip(np.rint(pts).astype(int), 0, [store.width - 1, store.height - 1])
    return xy + d, valid[xi[:, 1], xi[:, 0]]
