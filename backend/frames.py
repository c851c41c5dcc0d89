"""The job's working frames (`frames/00000.png`, written by ingest), read back for later stages."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from exporters import job_manifest

from .errors import ShotfieldError


def frame_paths(job_dir: str | os.PathLike) -> list[Path]:
    job_dir = Path(job_dir)
    count = (job_manifest.read_manifest(job_dir).get("frames") or {}).get("count")
    paths = [job_dir / "frames" / f"{i:05d}.png" for i in range(count or 0)]
    if not paths or not all(p.is_file() for p in paths):
        raise ShotfieldError(f"{job_dir / 'frames'}: working frames missing; run the 'ingest' stage again")
    return paths


def load_frames(job_dir: str | os.PathLike, gray: bool = False) -> np.ndarray:
    """All working frames: (F, H, W, 3) uint8 RGB, or (F, H, W) uint8 when `gray`."""
    out = []
    for p in frame_paths(job_dir):
        image = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        if image is None:
            raise ShotfieldError(f"{p}: unreadable working frame; run the 'ingest' stage again")
        out.append(image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return np.stack(out)
