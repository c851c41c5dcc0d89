"""Reading footage: video files (through OpenCV/FFmpeg) and image sequences (a folder or a printf pattern).

Every problem becomes a one-line `FootageError` naming the file and what to do. Frames come out as
8-bit sRGB RGB arrays (H, W, 3); EXR frames (scene-linear) are converted to sRGB and flagged `linear` so the
stages that write images back (clean plates) can write EXR again.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

# FFmpeg and OpenCV print their own diagnostics ("moov atom not found") on stderr; our one-line
# FootageError says the same thing in words the user can act on. Read when a capture opens.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import FootageError

VIDEO_EXTENSIONS = {".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".mxf"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp"}
# printf-style frame number (%04d, %d) or hashes (####) as Blender and Nuke write them.
_PATTERN = re.compile(r"%0?(\d*)d|#+")


@dataclass
class FootageInfo:
    source: str                  # absolute path of the video, folder or pattern
    kind: str                    # "video" | "images"
    frame_count: int
    size: tuple[int, int]        # (W, H) in pixels
    fps: float | None            # None for image sequences (the settings' fps, default 24, applies)
    files: list[str] = field(default_factory=list)  # image sequences: one path per frame, in order
    linear: bool = False         # EXR input: pixels are scene-linear

    def fingerprint(self) -> list:
        """What changes when the footage changes: paths, sizes and modification times (not the pixels:
        hashing gigabytes of plates on every run would cost more than it saves)."""
        paths = self.files if self.kind == "images" else [self.source]
        return [self.source, self.kind] + [[p, *_stat(p)] for p in paths]


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def probe_footage(source: str | os.PathLike) -> FootageInfo:
    """Find out what `source` is and check it can be read. Raises FootageError."""
    text = str(source)
    path = Path(text).expanduser()
    if _PATTERN.search(path.name) and not path.exists():
        return _probe_images(str(path.absolute()), _pattern_files(path))
    if not path.exists():
        raise FootageError(f"{path}: no such file or folder; check the footage path")
    if path.is_dir():
        return _probe_images(str(path.absolute()), _folder_files(path))
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        raise FootageError(f"{path}: a single image is not a shot; pass its folder or a pattern like name.%04d{suffix}")
    return _probe_video(path.absolute())


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _folder_files(folder: Path) -> list[Path]:
    files = []
    for entry in sorted(folder.iterdir(), key=lambda p: _natural_key(p.name)):
        if entry.name.startswith(".") or entry.is_dir():
            continue  # hidden files (.DS_Store) and sub-folders (proxies) are not frames
        if entry.suffix.lower() not in IMAGE_EXTENSIONS:
            raise FootageError(f"{entry}: not an image file ({entry.suffix or 'no extension'}) in the image sequence "
                               f"folder; move it out or pass a pattern such as {folder}/name.%04d.png")
        files.append(entry)
    return files


def _pattern_files(pattern: Path) -> list[Path]:
    folder = pattern.parent
    if not folder.is_dir():
        raise FootageError(f"{folder}: no such folder for the image pattern {pattern.name}")
    # Build a regex from the literal pieces with a digit group for the frame number.
    regex, pos = "", 0
    for m in _PATTERN.finditer(pattern.name):
        regex += re.escape(pattern.name[pos:m.start()]) + r"(\d+)"
        pos = m.end()
    regex = re.compile(regex + re.escape(pattern.name[pos:]) + "$")
    numbered = []
    for entry in folder.iterdir():
        m = regex.match(entry.name)
        if m:
            numbered.append((int(m.group(1)), entry))
    return [p for _, p in sorted(numbered)]


def _image_size(path: Path) -> tuple[int, int]:
    if path.suffix.lower() == ".exr":
        from exporters.exr import exr_size  # EXR headers are not PIL's business

        try:
            return exr_size(path)
        except Exception as exc:
            raise FootageError(f"{path}: cannot read this EXR ({exc}); re-export the frame") from exc
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise FootageError(f"{path}: cannot read this image (corrupt or not really {path.suffix}); re-export the frame") from exc


def _probe_images(source: str, files: list[Path]) -> FootageInfo:
    if len(files) < 2:
        what = "no images" if not files else f"only one image ({files[0].name})"
        raise FootageError(f"{source}: {what}; a shot needs at least 2 frames")
    sizes = {}
    for f in files:
        sizes.setdefault(_image_size(f), f)
    if len(sizes) > 1:
        (s0, f0), (s1, f1) = list(sizes.items())[:2]
        raise FootageError(f"{f1}: is {s1[0]}x{s1[1]} but {f0.name} is {s0[0]}x{s0[1]}; all frames of a sequence "
                           "must have the same size")
    linear = any(f.suffix.lower() == ".exr" for f in files)
    return FootageInfo(source, "images", len(files), next(iter(sizes)), None, [str(f) for f in files], linear)


def _probe_video(path: Path) -> FootageInfo:
    cap = cv2.VideoCapture(str(path))
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok or frame is None:
            hint = "" if path.suffix.lower() in VIDEO_EXTENSIONS else f" ({path.suffix or 'no extension'} is not a known video type)"
            raise FootageError(f"{path}: cannot decode this video{hint}; it may be corrupt — re-export it "
                               "(e.g. H.264 MP4) or pass an image sequence")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        h, w = frame.shape[:2]
    finally:
        cap.release()
    if count <= 0:  # some containers do not say; count by decoding
        count = sum(1 for _ in _decode_video(path))
    if count < 2:
        raise FootageError(f"{path}: has {count} frame(s); a shot needs at least 2")
    return FootageInfo(str(path), "video", count, (w, h), fps)


def _decode_video(path: Path) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def linear_to_srgb8(rgb: np.ndarray) -> np.ndarray:
    """Scene-linear float RGB -> 8-bit sRGB (IEC 61966-2-1 transfer function), clipped to [0, 1]."""
    x = np.clip(rgb, 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.round(srgb * 255).astype(np.uint8)


def _read_image(path: str) -> np.ndarray:
    if path.lower().endswith(".exr"):
        from exporters.exr import read_exr

        ch = read_exr(path)
        if all(c in ch for c in "RGB"):
            rgb = np.stack([ch["R"], ch["G"], ch["B"]], axis=-1)
        elif "RGBA" in ch or "RGB" in ch:  # interleaved channels as the bindings return them
            rgb = (ch.get("RGBA") if "RGBA" in ch else ch["RGB"])[..., :3]
        else:
            y = ch.get("Y", next(iter(ch.values())))
            rgb = np.repeat(y[..., None], 3, axis=-1)
        return linear_to_srgb8(rgb)
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FootageError(f"{path}: cannot decode this image; re-export the frame")
    if image.dtype == np.uint16:  # 16-bit TIFF/PNG: keep the top 8 bits' worth of precision
        image = np.round(image / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image * 255.0 if image.dtype.kind == "f" else image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)


def read_frames(info: FootageInfo, positions: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (position, RGB uint8 (H, W, 3)) for the given frame positions, in increasing order."""
    if info.kind == "images":
        for p in positions:
            yield p, _read_image(info.files[p])
        return
    wanted = set(positions)
    last = max(positions)
    for p, bgr in enumerate(_decode_video(Path(info.source))):
        if p in wanted:
            yield p, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if p >= last:
            return
    if positions:  # the loop ended before the last wanted frame
        raise FootageError(f"{info.source}: stops decoding after frame {p} (the file says {info.frame_count} frames); "
                           "it may be truncated — re-export it or choose a shorter --frames range")


def working_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(W, H) scaled so the long side is `long_side` (never upscaled), aspect kept to the nearest pixel."""
    w, h = size
    scale = min(1.0, long_side / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))
