"""Optical flow in the job folder: compact on disk, loaded lazily, one place that knows the layout.

    flow/gap_001/forward.npy    (F-g, H, W, 2) int16: flow from frame t to t+g, in 1/32 pixel
    flow/gap_001/backward.npy   (F-g, H, W, 2) int16: flow from frame t+g back to frame t
    flow/gap_001/forward_valid.npy   (F-g, H, W) uint8: 1 where forward flow passes the forward-backward check
    flow/gap_001/backward_valid.npy  (F-g, H, W) uint8: likewise for the backward flow
    flow/flow.json              {"gaps": [1, ...], "scale": 32, "frames": F, "width": W, "height": H, ...}

Why fixed point int16 and not float16: the same 2 bytes per value, but a uniform 1/32 px step over
±1023 px, where float16 loses precision as the flow grows (0.5 px steps above 512 px). The `.npy` files are
opened as memory maps, so a stage that reads a few pairs reads only those pages.
`flow[t]` is indexed by the *first* frame of the pair for both directions: `backward(t, g)` maps pixels of
frame t+g to frame t.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporters.atomic import write_json

FLOW_DIR = "flow"
SCALE = 32.0  # fixed-point steps per pixel
LIMIT = np.iinfo(np.int16).max / SCALE


@dataclass
class FlowPair:
    """Flow between frames t and t+gap. Arrays are float32 pixels (H, W, 2) `(dx, dy)` and bool (H, W)."""

    t: int
    gap: int
    forward: np.ndarray
    backward: np.ndarray
    forward_valid: np.ndarray
    backward_valid: np.ndarray


def gap_dir(job_dir: str | os.PathLike, gap: int) -> Path:
    return Path(job_dir) / FLOW_DIR / f"gap_{gap:03d}"


def encode(flow: np.ndarray) -> np.ndarray:
    """float pixels -> int16 fixed point (clipped to ±1023.97 px)."""
    return np.clip(np.rint(flow * SCALE), -32767, 32767).astype(np.int16)


def decode(flow_fixed: np.ndarray) -> np.ndarray:
    return flow_fixed.astype(np.float32) / SCALE


class FlowWriter:
    """Fills the arrays of one gap frame pair by frame pair, then publishes them with one rename each.

    Until `close()` the arrays live under temporary names, so a killed run never leaves flow that looks
    complete; `close(ok=False)` throws them away.
    """

    NAMES = ("forward", "backward", "forward_valid", "backward_valid")

    def __init__(self, job_dir: str | os.PathLike, gap: int, pairs: int, height: int, width: int):
        self.final_dir = gap_dir(job_dir, gap)
        self.final_dir.mkdir(parents=True, exist_ok=True)
        self._arrays: dict[str, np.memmap] = {}
        for name in self.NAMES:
            shape = (pairs, height, width, 2) if name in ("forward", "backward") else (pairs, height, width)
            dtype = np.int16 if name in ("forward", "backward") else np.uint8
            self._arrays[name] = np.lib.format.open_memmap(self._tmp(name), mode="w+", dtype=dtype, shape=shape)

    def _tmp(self, name: str) -> Path:
        return self.final_dir / f".{name}.{os.getpid()}.tmp.npy"

    def put(self, i: int, forward: np.ndarray, backward: np.ndarray, forward_valid: np.ndarray, backward_valid: np.ndarray) -> None:
        self._arrays["forward"][i] = encode(forward)
        self._arrays["backward"][i] = encode(backward)
        self._arrays["forward_valid"][i] = forward_valid
        self._arrays["backward_valid"][i] = backward_valid

    def close(self, ok: bool = True) -> None:
        """Flush and rename into place (ok) or delete the temporaries."""
        for array in self._arrays.values():
            array.flush()
        self._arrays.clear()
        for name in self.NAMES:
            if ok:
                os.replace(self._tmp(name), self.final_dir / f"{name}.npy")
            else:
                self._tmp(name).unlink(missing_ok=True)


def write_index(job_dir: str | os.PathLike, gaps: list[int], frames: int, width: int, height: int, **extra) -> None:
    write_json(Path(job_dir) / FLOW_DIR / "flow.json",
               {"gaps": sorted(gaps), "scale": SCALE, "frames": frames, "width": width, "height": height, **extra})


class FlowStore:
    """Lazy reader of a job's flow. `store.pair(t, gap)` or `store.forward(t, gap)` etc."""

    def __init__(self, job_dir: str | os.PathLike):
        self.job_dir = Path(job_dir)
        index_path = self.job_dir / FLOW_DIR / "flow.json"
        if not index_path.is_file():
            raise FileNotFoundError(f"{index_path}: no optical flow in this job; run the 'flow' stage first")
        self.index = json.loads(index_path.read_text())
        self.gaps: list[int] = list(self.index["gaps"])
        self.frames: int = int(self.index["frames"])
        self.width: int = int(self.index["width"])
        self.height: int = int(self.index["height"])
        self._maps: dict[tuple[int, str], np.ndarray] = {}

    def _array(self, gap: int, name: str) -> np.ndarray:
        if gap not in self.gaps:
            raise KeyError(f"flow for frame gap {gap} was not computed (have {self.gaps}); add it to the flow stage's gaps")
        key = (gap, name)
        if key not in self._maps:
            self._maps[key] = np.load(gap_dir(self.job_dir, gap) / f"{name}.npy", mmap_mode="r")
        return self._maps[key]

    def _check(self, t: int, gap: int) -> None:
        if not 0 <= t < self.frames - gap:
            raise IndexError(f"no frame pair ({t}, {t + gap}) in a {self.frames}-frame shot")

    def forward(self, t: int, gap: int = 1) -> np.ndarray:
        """(H, W, 2) float32: where each pixel of frame t moves to in frame t+gap (displacement)."""
        self._check(t, gap)
        return decode(self._array(gap, "forward")[t])

    def backward(self, t: int, gap: int = 1) -> np.ndarray:
        """(H, W, 2) float32: displacement of each pixel of frame t+gap to frame t."""
        self._check(t, gap)
        return decode(self._array(gap, "backward")[t])

    def forward_valid(self, t: int, gap: int = 1) -> np.ndarray:
        """(H, W) bool: forward flow of frame t passes the forward-backward consistency check."""
        self._check(t, gap)
        return self._array(gap, "forward_valid")[t].astype(bool)

    def backward_valid(self, t: int, gap: int = 1) -> np.ndarray:
        self._check(t, gap)
        return self._array(gap, "backward_valid")[t].astype(bool)

    def pair(self, t: int, gap: int = 1) -> FlowPair:
        return FlowPair(t, gap, self.forward(t, gap), self.backward(t, gap), self.forward_valid(t, gap), self.backward_valid(t, gap))
