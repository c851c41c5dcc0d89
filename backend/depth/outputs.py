"""Writing the depth stage's outputs, all under one folder published at once (swap_in_folder), so a cancel
never leaves a mix of old and new frames:

    depth/00000.exr             float32 planar depth, channel "Z", world units of camera/cameras.json
                                (DESIGN.md's contract; later stages read it with exporters.exr.read_depth_exr)
    depth/motion/00000.exr      float32 channels "X", "Y", "Z": the (object) motion of each pixel's surface
                                point from frame t to t+1, world axes and units, as scene_flow.py measures
                                it (0 outside the motion masks; the last frame holds its motion from the
                                frame before)
    depth/confidence/00000.exr  float32 channel "Y" in [0, 1]: agreement of the pixel's depth with the
                                neighbouring frames after reprojection, and its triangulation support
    depth/compositor/00000.exr  the same depth as channels "Z" and "Y" (Blender reads "Y"; see
                                exporters/depth_maps.py), header "shotfieldDepth" = "planar"
    depth/points/00000.ply      the frame's depth unprojected through its camera (K, world_from_camera) into
                                world points, coloured with the frame's RGB, every `points_step`-th pixel
                                of every `points_step`-th row (exporters.depth_maps.write_frame_points)
    depth/depth.json            summary: scale source, cameras used or learned, losses, the failure-mode
                                check, temporal consistency, timings, and "frame_points" (step, counts)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from exporters.atomic import swap_in_folder, write_json
from exporters.depth_maps import write_compositor_depth, write_frame_points
from exporters.exr import write_depth_exr, write_exr

#: About this many points per frame's PLY. A 320x240 working frame (the preview size) unprojected at every
#: pixel is 76,800 points; in Blender every frame's points stay in the .blend (importers/depth_points.py),
#: so 100 frames of full clouds would be 7.7 million points, where ~20,000 per frame (every 2nd pixel of
#: every 2nd row at 320x240) still shows the surfaces and leaves the full resolution to the depth EXRs.
POINTS_PER_FRAME = 20_000


def points_step(height: int, width: int, target: int = POINTS_PER_FRAME) -> int:
    """The stride in pixels (rows and columns alike) that unprojects about `target` pixels of an H x W frame:
    320x240 -> 2 (19,200 points), 160x120 -> 1 (19,200), 960x540 -> 5 (20,736), 1920x1080 -> 10."""
    return max(1, round(float(np.sqrt(height * width / target))))


def write_outputs(job_dir: Path, depth: np.ndarray, motion: np.ndarray, confidence: np.ndarray, summary: dict,
                  K: np.ndarray, world_from_camera: np.ndarray, rgb: np.ndarray) -> dict:
    """depth, confidence: (F, H, W) float; motion: (F, H, W, 3); K: (F, 3, 3) and world_from_camera (F, 4, 4),
    the cameras the depth belongs to (OpenCV axes); rgb: (F, H, W, 3) uint8, the working frames.
    `summary` goes to depth.json with "frame_points" (folder, step, point counts) added; returns that entry."""
    f, h, w = depth.shape
    assert motion.shape == (f, h, w, 3) and confidence.shape == (f, h, w), (motion.shape, confidence.shape)
    assert K.shape == (f, 3, 3) and world_from_camera.shape == (f, 4, 4), (K.shape, world_from_camera.shape)
    assert rgb.shape == (f, h, w, 3) and rgb.dtype == np.uint8, (rgb.shape, rgb.dtype)
    final = Path(job_dir) / "depth"
    partial = final.with_name("depth.partial")
    import shutil

    shutil.rmtree(partial, ignore_errors=True)
    for folder in ("motion", "confidence", "compositor", "points"):
        (partial / folder).mkdir(parents=True)
    step = points_step(h, w)
    counts = []
    for i in range(f):
        write_depth_exr(partial / f"{i:05d}.exr", depth[i].astype(np.float32))
        write_compositor_depth(partial / "compositor" / f"{i:05d}.exr", depth[i], units="world units", grey=True)
        m = motion[i].astype(np.float32)
        write_exr(partial / "motion" / f"{i:05d}.exr", {"X": m[..., 0], "Y": m[..., 1], "Z": m[..., 2]})
        write_exr(partial / "confidence" / f"{i:05d}.exr", {"Y": confidence[i].astype(np.float32)})
        counts.append(write_frame_points(partial / "points" / f"{i:05d}.ply", depth[i], K[i], world_from_camera[i],
                                         rgb[i], step))
    frame_points = {"folder": "depth/points", "step": step, "points": int(sum(counts)),
                    "per_frame": [int(min(counts)), int(max(counts))]}
    write_json(partial / "depth.json", {**summary, "frame_points": frame_points})
    swap_in_folder(partial, final)
    return frame_points
