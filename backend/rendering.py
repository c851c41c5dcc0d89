"""`shotfield render JOB --cameras CAMS.json --out OUT [--source field|layers]`: RGB and depth at any cameras and
times, written as OUT/00000.png and OUT/00000.depth.exr, numbered by position in CAMS.json's `frames`.

One command serves both renderable outputs; each source is a module of its stage's package with

    render_views(job_dir: Path, cameras: Cameras, times: np.ndarray (F,) float, device: str)
        -> Iterator[tuple[np.ndarray (H, W, 3) uint8 sRGB, np.ndarray (H, W) float32 planar depth]]

(`backend.field.render` for the dynamic scene field, `backend.layers.render` for the layered meshes), which
raises ShotfieldError when the job lacks what it needs. Times are frame numbers of the job (fractional between
frames); a camera's "time" defaults to its `index`. The same path renders the benchmark's held-out views and a
camera move keyed in Blender.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import cv2
import numpy as np

from exporters.atomic import atomic_path
from exporters.cameras_json import CamerasFileError, read_cameras
from exporters.exr import write_depth_exr

from .device import resolve_device
from .errors import ShotfieldError

RENDER_SOURCES = ("field", "layers")
SOURCE_MODULES = {"field": "backend.field.render", "layers": "backend.layers.render"}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def camera_times(cameras) -> np.ndarray:
    """Each camera's time: its "time", else its index (a frame of the job)."""
    return np.array([f.time if f.time is not None else float(f.index) for f in cameras.frames], dtype=np.float64)


def render_source(source: str):
    """The module that renders `source`, or a ShotfieldError saying which stage to run."""
    if source not in SOURCE_MODULES:
        raise ShotfieldError(f"--source {source!r} is not one of {', '.join(RENDER_SOURCES)}")
    try:
        return importlib.import_module(SOURCE_MODULES[source])
    except ModuleNotFoundError as exc:
        if exc.name and SOURCE_MODULES[source].startswith(exc.name):
            raise ShotfieldError(f"rendering from the {source} is not built into this version of shotfield") from None
        raise


def render_to_folder(job_dir, cameras, out, source: str = "field", device: str = "cpu") -> list[Path]:
    """Render every camera of `cameras` (a Cameras) into `out`; returns the PNG paths."""
    module = render_source(source)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ShotfieldError(f"--out {out}: cannot create the folder ({exc.strerror}); choose a writable one") from None
    written = []
    views = module.render_views(Path(job_dir), cameras, camera_times(cameras), device)
    for n, (rgb, depth) in enumerate(views):
        png = out / f"{n:05d}.png"
        with atomic_path(png) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise ShotfieldError(f"could not write {png}")
        write_depth_exr(out / f"{n:05d}.depth.exr", depth.astype(np.float32))
        written.append(png)
    return written


def render_command(job_dir, cameras_path, out, source: str, device: str) -> int:
    job_dir = Path(job_dir)
    if not (job_dir / "job.json").is_file():
        print(f"shotfield render: {job_dir} is not a job folder (no job.json); run `shotfield run` first", file=sys.stderr)
        return EXIT_USAGE
    try:
        cameras = read_cameras(cameras_path)
        device = resolve_device(device)
    except (CamerasFileError, ShotfieldError) as exc:
        print(f"shotfield render: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        written = render_to_folder(job_dir, cameras, out, source, device)
    except ShotfieldError as exc:
        print(f"shotfield render: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"rendered {len(written)} view(s) from the {source} into {out}", file=sys.stderr)
    return EXIT_OK
