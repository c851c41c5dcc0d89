"""Writing the depth stage's outputs, all under one folder published at once (swap_in_folder), so a cancel
never leaves a mix of old and new frames:

    depth/00000.exr             float32 planar depth, channel "Z", world units of camera/cameras.json
                                (DESIGN.md's contract; later stages read it with exporters.exr.read_depth_exr)
    depth/motion/00000.exr      float32 channels "X", "Y", "Z": the residual (object) translation of each
                                pixel's surface point from frame t to t+1, world axes and units (0 on the
                                static scene; the last frame holds its motion from the frame before)
    depth/confidence/00000.exr  float32 channel "Y" in [0, 1]: agreement of the pixel's depth with the
                                neighbouring frames after reprojection, and its triangulation support
    depth/compositor/00000.exr  the same depth as channels "Z" and "Y" (Blender reads "Y"; see
                                exporters/depth_maps.py), header "shotfieldDepth" = "planar"
    depth/depth.json            summary: scale source, cameras used or learned, losses, the failure-mode
                                check, temporal consistency, timings
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from exporters.atomic import swap_in_folder, write_json
from exporters.depth_maps import write_compositor_depth
from exporters.exr import write_depth_exr, write_exr


def write_outputs(job_dir: Path, depth: np.ndarray, motion: np.ndarray, confidence: np.ndarray, summary: dict) -> None:
    final = Path(job_dir) / "depth"
    partial = final.with_name("depth.partial")
    import shutil

    shutil.rmtree(partial, ignore_errors=True)
    (partial / "motion").mkdir(parents=True)
    (partial / "confidence").mkdir()
    (partial / "compositor").mkdir()
    for i in range(len(depth)):
        write_depth_exr(partial / f"{i:05d}.exr", depth[i].astype(np.float32))
        write_compositor_depth(partial / "compositor" / f"{i:05d}.exr", depth[i], units="world units", grey=True)
        m = motion[i].astype(np.float32)
        write_exr(partial / "motion" / f"{i:05d}.exr", {"X": m[..., 0], "Y": m[..., 1], "Z": m[..., 2]})
        write_exr(partial / "confidence" / f"{i:05d}.exr", {"Y": confidence[i].astype(np.float32)})
    write_json(partial / "depth.json", summary)
    swap_in_folder(partial, final)
