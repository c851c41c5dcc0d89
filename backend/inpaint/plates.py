"""Writing the clean plates.

    plates/00000.png         uint8 sRGB plate at the working size
    plates/00000.exr         scene-linear float RGB (channels R, G, B), only when the footage was EXR
    plates/full/00000.png    the plate at the footage's own size: the original footage pixels outside the
                             removal mask, the upscaled plate inside it, blended over the feathered edge
                             (.exr, linear, when the footage was EXR: the original linear pixels are kept)

The folder is filled under `plates.partial/` and swapped in whole, so a cancelled run leaves the old plates.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from exporters.atomic import swap_in_folder, write_bytes, write_json
from exporters.exr import read_exr, write_exr

from ..errors import FootageError
from ..footage import probe_footage, read_frames


def srgb8_to_linear(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    write_bytes(path, png.tobytes())


def _write_linear_exr(path: Path, linear: np.ndarray) -> None:
    write_exr(path, {"R": linear[..., 0], "G": linear[..., 1], "B": linear[..., 2]})


def _read_linear(path: str) -> np.ndarray:
    ch = read_exr(path)
    if all(c in ch for c in "RGB"):
        return np.stack([ch["R"], ch["G"], ch["B"]], axis=-1)
    y = ch.get("Y", next(iter(ch.values())))
    return np.repeat(y[..., None], 3, axis=-1)


def write_plates(job_dir: Path, manifest: dict, plates: np.ndarray, fill: np.ndarray, alpha: np.ndarray, facts: dict,
                 progress=None, log=None) -> bool:
    """Write plates/: `plates` (working size, composited) and, at the footage size, `fill` upscaled and
    composited over the original footage with `alpha` upscaled. Returns whether the full-size plates were written (they
    need the footage; a job whose footage moved gets the working-size plates and a log line). `facts` goes to
    plates/plates.json, with "full_size" added."""
    say = progress or (lambda f, m: None)
    log = log or (lambda m: None)
    footage = manifest.get("footage") or {}
    linear = bool(footage.get("linear"))
    partial = job_dir / "plates.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "full").mkdir(parents=True)
    for i, plate in enumerate(plates):
        _write_png(partial / f"{i:05d}.png", plate)
        if linear:
            _write_linear_exr(partial / f"{i:05d}.exr", srgb8_to_linear(plate))
    full = True
    try:
        info = probe_footage(footage["source"])
        positions = (manifest.get("frames") or {}).get("source_indices") or list(range(len(plates)))
        width, height = info.size
        for n, (position, source) in enumerate(read_frames(info, list(positions))):
            a = cv2.resize(alpha[n], (width, height), interpolation=cv2.INTER_LINEAR)[..., None]
            if not a.any():
                up = None
            else:
                up = cv2.resize(fill[n], (width, height), interpolation=cv2.INTER_CUBIC)
            if linear:
                original = _read_linear(info.files[position])
                out = original if up is None else a * srgb8_to_linear(up) + (1 - a) * original
                _write_linear_exr(partial / "full" / f"{n:05d}.exr", out.astype(np.float32))
            else:
                out = source if up is None else np.round(a * up + (1 - a) * source).clip(0, 255).astype(np.uint8)
                _write_png(partial / "full" / f"{n:05d}.png", out)
            say((n + 1) / len(plates), f"full-size plate {n + 1}/{len(plates)}")
    except (FootageError, KeyError, TypeError) as exc:
        shutil.rmtree(partial / "full", ignore_errors=True)
        full = False
        log(f"inpaint: full-size plates skipped: the footage cannot be read ({exc}); the working-size plates are written")
    write_json(partial / "plates.json", {**facts, "full_size": full})
    swap_in_folder(partial, job_dir / "plates")
    return full
