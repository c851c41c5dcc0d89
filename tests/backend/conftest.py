"""Small synthetic footage written with OpenCV: fast, and each case exactly what a test needs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def textured_frames(n: int = 8, width: int = 96, height: int = 64, shift: tuple[float, float] = (1.5, 0.75),
                    seed: int = 0) -> np.ndarray:
    """(n, H, W, 3) uint8: a smooth random texture panning by `shift` px a frame (BGR, as OpenCV writes)."""
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (height * 2, width * 2, 3)).astype(np.float32), (0, 0), 2.0)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX)
    frames = []
    for t in range(n):
        # warpAffine maps src p to dst M p: content at src x appears at x + shift * t - size / 2.
        m = np.float32([[1, 0, shift[0] * t - width / 2], [0, 1, shift[1] * t - height / 2]])
        frames.append(cv2.warpAffine(big, m, (width, height), flags=cv2.INTER_LINEAR))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def write_sequence(folder: Path, frames: np.ndarray, ext: str = ".png", name: str = "shot.{:04d}") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / (name.format(i + 1) + ext)), f)
    return folder


def write_video(path: Path, frames: np.ndarray, fps: float = 25.0) -> Path:
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def shotfield(*args, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run the real CLI in a child process (what the add-on and farm scripts do)."""
    return subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)}, **kwargs)


def with_stage_gaps(*gaps: int, frames: int) -> list[int]:
    """The flow gaps a job of `frames` frames gets: those asked for plus those the registered stages read."""
    from backend.stages import required_flow_gaps

    return sorted(g for g in set(gaps) | set(required_flow_gaps()) if g < frames)


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return write_sequence(tmp_path / "plates", textured_frames())


@pytest.fixture
def video_file(tmp_path) -> Path:
    return write_video(tmp_path / "clip.mp4", textured_frames(n=10))
