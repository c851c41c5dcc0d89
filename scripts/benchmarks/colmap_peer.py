"""Peers `pycolmap-incremental` and `pycolmap-global`: COLMAP through pycolmap with its default options on
every frame, as a user would run it on the frames of a shot.

    python -m scripts.benchmarks.colmap_peer --frames DIR --job JOB --mapper incremental|global [--result R]

    extract_features (one shared camera, SIMPLE_RADIAL, no focal prior: COLMAP's EXIF-less default of
    1.2 · the long side) -> match_exhaustive (match_sequential above SEQUENTIAL_ABOVE frames)
    -> incremental_mapping or global_mapping (GLOMAP) -> the largest reconstruction

The only options set are the random seeds (for repeatable runs) and the CPU device. Frames that the
reconstruction does not register are left out of cameras.json: they count as missing.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from exporters.cameras_json import CameraFrame, Cameras

from .solve_peers import K_matrix, world_from_camera_from_cam_from_world, write_solution

MAPPERS = ("incremental", "global")
#: Exhaustive matching is quadratic in the frames: longer shots use COLMAP's sequential matching (its
#: default overlap of 10 neighbours; loop detection needs a vocabulary tree, which would be a download).
SEQUENTIAL_ABOVE = 100
SEED = 0


def cameras_from_reconstruction(rec, frame_count: int) -> tuple[Cameras, np.ndarray]:
    """A pycolmap Reconstruction whose images are named by frame index (00012.png) -> (Cameras with only the
    registered frames, sparse points (P, 3)). One shared camera; its f, cx, cy make K (SIMPLE_RADIAL's k1
    is reported, not applied)."""
    camera = next(iter(rec.cameras.values()))
    params = [float(p) for p in camera.params]
    f, cx, cy = params[:3]
    frames = []
    for image in rec.images.values():
        if not image.has_pose:
            continue
        pose = world_from_camera_from_cam_from_world(image.cam_from_world().matrix())
        frames.append(CameraFrame(int(Path(image.name).stem), K_matrix(f, cx, cy), pose))
    frames.sort(key=lambda fr: fr.index)
    points = np.array([p.xyz for p in rec.points3D.values()], np.float64).reshape(-1, 3)
    extra = {"frame_count": frame_count, "registered": len(frames), "camera_model": camera.model.name,
             "camera_params": params, "points": len(points),
             # COLMAP reports 0 for a model without points: no error was measured.
             "reprojection_error_px": float(rec.compute_mean_reprojection_error()) if len(points) else None}
    return Cameras(int(camera.width), int(camera.height), frames, extra), points


def run_pycolmap(frames_dir: Path, job_dir: Path, mapper: str) -> dict:
    """Solve the PNG frames of `frames_dir` with `mapper` ("incremental" | "global"); write the job's
    camera/ files. Returns {"compute_s", "registered", "models"}."""
    import pycolmap  # here, so that the pure conversions above import without it

    assert mapper in MAPPERS, mapper
    start = time.perf_counter()
    pycolmap.set_random_seed(SEED)
    names = sorted(p.name for p in frames_dir.glob("*.png"))
    with tempfile.TemporaryDirectory(prefix="bench-colmap-") as tmp:
        db, out = Path(tmp) / "database.db", Path(tmp) / "sparse"
        out.mkdir()
        pycolmap.extract_features(db, frames_dir, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                                  device=pycolmap.Device.cpu)
        if len(names) > SEQUENTIAL_ABOVE:
            pycolmap.match_sequential(db, device=pycolmap.Device.cpu)
        else:
            pycolmap.match_exhaustive(db, device=pycolmap.Device.cpu)
        if mapper == "incremental":
            recs = pycolmap.incremental_mapping(db, frames_dir, out,
                                                options=pycolmap.IncrementalPipelineOptions(random_seed=SEED))
        else:
            recs = pycolmap.global_mapping(db, frames_dir, out, options=pycolmap.GlobalPipelineOptions(random_seed=SEED))
    seconds = time.perf_counter() - start
    if recs:
        rec = max(recs.values(), key=lambda r: r.num_reg_images())
        cameras, points = cameras_from_reconstruction(rec, len(names))
    else:  # no model at all: every frame is missing
        width, height = _image_size(frames_dir / names[0])
        cameras, points = Cameras(width, height, [], {"frame_count": len(names), "registered": 0}), np.zeros((0, 3))
    cameras.extra.update({"method": f"pycolmap-{mapper}", "models": len(recs), "seconds": round(seconds, 3)})
    write_solution(job_dir, cameras, points)
    return {"compute_s": seconds, "registered": len(cameras.frames), "models": len(recs)}



def _image_size(path: Path) -> tuple[int, int]:
    import cv2

    h, w = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape[:2]
    return w, h


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=Path, required=True, help="folder of 00000.png, 00001.png, ...")
    p.add_argument("--job", type=Path, required=True, help="where camera/cameras.json is written")
    p.add_argument("--mapper", choices=MAPPERS, required=True)
    p.add_argument("--result", type=Path, help="JSON with the compute seconds")
    args = p.parse_args(argv)
    result = run_pycolmap(args.frames, args.job, args.mapper)
    if args.result:
        args.result.write_text(json.dumps(result))
    print(f"pycolmap {args.mapper}: {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
