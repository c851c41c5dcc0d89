"""Test shots and real footage for the benchmarks: which shots exist, rendering them once into a cache, and
the working frames the peers read.

Test shots are rendered by `scripts/make_test_shot.py` (Blender + Cycles, exact ground truth) and cached under
`benchmark_results/shots/`, keyed by their options and the generator's source (`shot_key`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2

from .runs import REPO_ROOT, log, run_measured

RESULTS = REPO_ROOT / "benchmark_results"
SEEDS = {"test_shot": 0}  # make_test_shot --seed; nothing else here draws random numbers


@dataclass(frozen=True)
class ShotSpec:
    """A rendered test shot: `make_test_shot.py --frames --width --height --seed` plus extra flags."""

    name: str
    frames: int
    width: int
    height: int
    flags: tuple[str, ...] = ()

    def args(self) -> list[str]:
        return ["--frames", str(self.frames), "--width", str(self.width), "--height", str(self.height),
                "--seed", str(SEEDS["test_shot"]), *self.flags]

    @property
    def tripod(self) -> bool:
        """The camera only rotates (ground truth with no translation)."""
        return "--tripod" in self.flags


SHOTS = {
    "default": ShotSpec("default", 40, 320, 240),   # the 2-core CPU budget shot of DESIGN.md (--objects 2)
    "quick": ShotSpec("quick", 24, 160, 120),
    "large-object": ShotSpec("large-object", 40, 320, 240, ("--large-object",)),  # the ball covers ~half the frame
    "tripod": ShotSpec("tripod", 40, 320, 240, ("--tripod",)),                    # pure rotation pan
    "low-texture": ShotSpec("low-texture", 40, 320, 240, ("--low-texture",)),     # faint, large-scale textures
    "h100": ShotSpec("h100", 100, 960, 540),        # the H100 budget shot of DESIGN.md
}


@dataclass
class Shot:
    """What a stage benchmark runs on: `footage` for Shotfield, `frames` (folder of PNGs) for the peers
    once known, and `gt` (folder) for a rendered shot (None for real footage)."""

    name: str
    footage: Path
    frames: Path | None
    gt: Path | None
    long_side: int | None = None
    tripod: bool = False                   # the ground-truth camera only rotates
    size: tuple[int, int] | None = None    # (width, height) of a rendered shot

    @property
    def slug(self) -> str:
        """The name as a folder name."""
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name)


#: What a rendered shot depends on (as in tests/conftest.py): the generator and the project modules it uses.
GENERATOR_INPUTS = ["scripts/make_test_shot.py"] + [f"exporters/{n}.py" for n in ("conventions", "cameras_json", "exr", "atomic")]


def generator_digest() -> str:
    h = hashlib.sha256()
    for name in GENERATOR_INPUTS:
        path = REPO_ROOT / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"missing") + b"\0")
    return h.hexdigest()[:10]


def shot_key(spec: ShotSpec, digest: str) -> str:
    """Cache folder name: the options that change the pixels, and the generator's source digest."""
    flags = "".join("-" + f.lstrip("-") for f in spec.flags)
    return f"{spec.frames}f-{spec.width}x{spec.height}-seed{SEEDS['test_shot']}{flags}-{digest}"


def ensure_shot(spec: ShotSpec, cache: Path) -> Shot:
    """Render the shot unless the cache holds it complete (`shot.json` is written last)."""
    folder = cache / shot_key(spec, generator_digest())
    if not (folder / "shot.json").is_file():
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log(f"rendering test shot {spec.name!r} -> {folder} ...")
        cmd = [sys.executable, str(REPO_ROOT / "scripts" / "make_test_shot.py"), "--out", str(tmp), *spec.args()]
        run = run_measured(cmd, cache / f"{folder.name}.log")
        if run.returncode != 0:
            raise RuntimeError(f"make_test_shot failed ({run.returncode}); see {cache / f'{folder.name}.log'}")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return Shot(spec.name, folder / "frames", folder / "frames", folder / "gt", long_side=max(spec.width, spec.height),
                tripod=spec.tripod, size=(spec.width, spec.height))


def working_frames(shot: Shot, work: Path, quality: str, job_frames: Path | None) -> Path:
    """A stable copy of the frames real footage was reduced to: Shotfield's working frames when it ran,
    else the footage decoded with OpenCV and shrunk to the working long side (Shotfield's default if not
    given). Later stages of the same run reuse it (`shot.frames`)."""
    out = work / "frames" / shot.slug
    shutil.rmtree(out, ignore_errors=True)
    if job_frames is not None and job_frames.is_dir():
        shutil.copytree(job_frames, out)
        return out
    out.mkdir(parents=True)
    cap = cv2.VideoCapture(str(shot.footage))
    long_side, i = shot.long_side or (320 if quality == "preview" else 960), 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        s = min(1.0, long_side / max(h, w))
        frame = cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA) if s < 1 else frame
        cv2.imwrite(str(out / f"{i:05d}.png"), frame)
        i += 1
    return out


def shot_info(shot: Shot) -> dict:
    info = {"footage": str(shot.footage), "gt": str(shot.gt) if shot.gt else None, "long_side": shot.long_side}
    meta = shot.gt.parent / "shot.json" if shot.gt else None
    if meta is not None and meta.is_file():
        data = json.loads(meta.read_text())
        info.update({k: data.get(k) for k in ("options", "frame_count", "width", "height", "total_seconds")})
    return info
