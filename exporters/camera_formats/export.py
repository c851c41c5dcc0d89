"""`export_cameras`: write a solved camera in every camera format at once (used by the solve stage and
the CLI). numpy + standard library; usd-core is imported only when "usd" is asked for.

Layout under `out_dir` (each file written atomically):

    colmap/cameras.txt, colmap/images.txt, colmap/points3D.txt    "colmap"
    nerfstudio/transforms.json                                     "nerfstudio"
    nuke/camera.chan                                               "nuke"
    usd/camera.usda                                                "usd"
    table/cameras.json, table/cameras.csv                          "json", "csv"
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..cameras_json import Cameras
from . import colmap_text, nerfstudio, nuke_chan, table

FORMATS = ("colmap", "nerfstudio", "nuke", "usd", "json", "csv")


@dataclass
class ExportedCameras:
    """What `export_cameras` wrote: format name -> paths, in the order of `formats`."""

    out_dir: Path
    files: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def paths(self) -> list[Path]:
        return [p for paths in self.files.values() for p in paths]


def export_cameras(cameras: Cameras, out_dir: str | os.PathLike, formats=FORMATS, points=None, fps: float = 24.0,
                   *, frame_start: int = 1, frames_dir: str | os.PathLike | None = None,
                   points_rgb=None) -> ExportedCameras:
    """Write `cameras` under `out_dir` in each of `formats` (see the module docstring for the layout).

    points: optional sparse world points (N, 3) for COLMAP's points3D.txt; points_rgb (N, 3) uint8 (or
    floats in 0..1) their colours. Alternatively `points` may be an (N, 6) array [x, y, z, r, g, b].
    fps: USD's timeCodesPerSecond. frame_start: the scene frame of job frame 0 (Nuke and USD).
    frames_dir: the folder of the NNNNN.png images (e.g. JOB/frames), which nerfstudio's file paths
    point to relative to transforms.json; default: "frames/NNNNN.png" beside transforms.json.
    """
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown camera formats {unknown}; known: {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    result = ExportedCameras(out_dir)

    xyz, rgb = None, points_rgb
    if points is not None:
        points = np.asarray(points)
        assert points.ndim == 2 and points.shape[1] in (3, 6), points.shape
        xyz = points[:, :3].astype(np.float64)
        if points.shape[1] == 6 and rgb is None:
            rgb = points[:, 3:]

    for name in formats:
        if name == "colmap":
            result.files[name] = colmap_text.write_colmap_text(out_dir / "colmap", cameras, xyz, rgb)
        elif name == "nerfstudio":
            folder = out_dir / "nerfstudio"
            image_dir = _relative_frames_dir(folder, frames_dir)
            result.files[name] = [nerfstudio.write_transforms(folder / "transforms.json", cameras, image_dir)]
        elif name == "nuke":
            result.files[name] = [nuke_chan.write_chan(out_dir / "nuke" / "camera.chan", cameras, frame_start)]
        elif name == "usd":
            from . import usd_camera  # usd-core only when asked for

            result.files[name] = [usd_camera.write_usd_camera(out_dir / "usd" / "camera.usda", cameras, fps, frame_start)]
        elif name == "json":
            result.files[name] = [table.write_table_json(out_dir / "table" / "cameras.json", cameras)]
        elif name == "csv":
            result.files[name] = [table.write_table_csv(out_dir / "table" / "cameras.csv", cameras)]
    return result


def _relative_frames_dir(folder: Path, frames_dir) -> str:
    """The images' folder as nerfstudio wants it: relative to transforms.json's folder, '/'-separated."""
    if frames_dir is None:
        return "frames"
    return Path(os.path.relpath(Path(frames_dir).resolve(), folder.resolve())).as_posix()
