"""What to remove: masks from the solve's motion masks or from a folder of user masks.

    masks/motion/00000.png   (input, the solve's) uint8, 255 = moves independently of the camera
    REMOVE_DIR/<n>.png       (input, the user's) white = remove; named by job frame number (the last number
                             in the name: 00012.png, frame_12.png, mask.0012.png); any size (resized to the
                             working size); RGB, grey or RGBA (alpha is used when the colour is all white)
    masks/00000.png          (output) uint8, 255 = the region removed (the object, dilated)
    masks/object/00000.png   (output) uint8, 255 = the object itself (propagated, before dilation)
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from exporters.atomic import write_bytes

from ..errors import ShotfieldError

MASK_EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".exr"}


def dilation_radius(width: int, height: int) -> int:
    """Pixels the removal mask grows by: a 1 % margin of the long side (2 px at 160, 3 at 320, 10 at 960),
    enough to swallow the anti-aliased edge and a motion-mask boundary that is off by a pixel or two."""
    return max(2, int(round(0.01 * max(width, height))))


def disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def clean(mask: np.ndarray, min_area: int) -> np.ndarray:
    """bool (H, W): speckles below `min_area` pixels dropped, small holes closed and filled."""
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, disk(1))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    m = keep[labels]
    # Holes a region encloses completely (a textureless object interior the motion test could not see).
    inverse = (~m).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inverse, connectivity=4)
    h, w = m.shape
    for i in range(1, count):
        x, y, bw, bh, area = stats[i]
        if x > 0 and y > 0 and x + bw < w and y + bh < h and area < 0.01 * h * w:
            m |= labels == i
    return m


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), disk(radius)).astype(bool) if radius > 0 else mask.astype(bool)


def keep_nearest(best: np.ndarray, distance: np.ndarray, drawn: int, found: dict[int, np.ndarray]) -> None:
    """Each frame takes its mask from the nearest drawn frame: `found` (frame -> mask, followed from the mask
    drawn on frame `drawn`) replaces best[t] where `drawn` is nearer than the frame best[t] came from
    (`distance`, updated in place)."""
    for t, m in found.items():
        if abs(t - drawn) < distance[t]:
            distance[t] = abs(t - drawn)
            best[t] = m


def motion_masks(job_dir: Path, frames: int) -> np.ndarray:
    """(F, H, W) bool from masks/motion/ (the solve's)."""
    out = []
    for i in range(frames):
        p = job_dir / "masks" / "motion" / f"{i:05d}.png"
        m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise ShotfieldError(f"{p}: motion mask missing; run the 'solve' stage again")
        out.append(m > 127)
    return np.stack(out)


def frame_number(path: Path) -> int | None:
    numbers = re.findall(r"\d+", path.stem)
    return int(numbers[-1]) if numbers else None


def user_mask_files(folder: Path) -> dict[int, Path]:
    """{job frame: file} of a folder of user masks. Raises ShotfieldError naming what is wrong."""
    if not folder.is_dir():
        raise ShotfieldError(f"--remove {folder}: no such folder; pass 'moving' or a folder of masks "
                             "(PNG, white = remove, named by frame number)")
    found: dict[int, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in MASK_EXTENSIONS:
            continue
        n = frame_number(p)
        if n is None:
            raise ShotfieldError(f"{p}: a mask's name must carry its frame number (e.g. 00012.png)")
        if n in found:
            raise ShotfieldError(f"{p} and {found[n].name}: two masks for frame {n}; keep one")
        found[n] = p
    if not found:
        raise ShotfieldError(f"--remove {folder}: no mask images in it (PNG, white = remove, named by frame number)")
    return found


def read_user_mask(path: Path, width: int, height: int) -> np.ndarray:
    """bool (H, W) at the working size."""
    if path.suffix.lower() == ".exr":
        from exporters.exr import read_exr

        channels = read_exr(path)
        image = next(iter(channels[c] for c in ("A", "R", "Y", "Z") if c in channels), next(iter(channels.values())))
        grey = np.clip(image, 0, 1) * 255
    else:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ShotfieldError(f"{path}: cannot read this mask image; save it as an 8-bit PNG")
        if image.dtype == np.uint16:
            image = (image / 257.0).astype(np.uint8)
        if image.ndim == 3 and image.shape[2] == 4 and image[..., :3].min() == image[..., :3].max():
            grey = image[..., 3]  # a uniformly coloured image whose alpha is the mask (Blender's Mask output)
        elif image.ndim == 3:
            grey = image[..., :3].max(axis=2)
        else:
            grey = image
    grey = np.asarray(grey, np.float32)
    if grey.shape != (height, width):
        grey = cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)
    return grey > 127


def write_masks(folder: Path, masks: np.ndarray) -> None:
    """uint8 PNGs, 255 = True, each written atomically."""
    for i, m in enumerate(masks):
        ok, png = cv2.imencode(".png", np.where(m, 255, 0).astype(np.uint8))
        write_bytes(folder / f"{i:05d}.png", png.tobytes())
