"""Fixtures shared by the whole test suite.

- ``repo_root``: the repository root (a Path). The root is also put on ``sys.path`` so that tests can
  ``import exporters`` / ``import backend`` without installing the project.
- ``make_shot(**options)``: renders a synthetic test shot with ``scripts/make_test_shot.py`` (options are the
  script's flags, e.g. ``make_shot(tripod=True, frames=8)`` -> ``--tripod --frames 8``) and returns a
  `RenderedShot`. Shots are cached in ``tests/.cache/shot-<hash>/``, keyed by the contents of the script and
  of the exporters modules it uses and by the options; a cached shot is reused across sessions once complete.
- ``test_shot``: the default shot (24 frames, 160x120, two moving objects), rendered once per session.

The format of a shot folder is documented at the top of scripts/make_test_shot.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SHOT_SCRIPT = REPO_ROOT / "scripts" / "make_test_shot.py"
CACHE_DIR = REPO_ROOT / "tests" / ".cache"
COMPLETE_MARKER = "COMPLETE"  # written last, before the folder is renamed into place
# A cached shot is stale when any of these change (the script and what it imports from the project).
SHOT_INPUTS = [SHOT_SCRIPT] + [REPO_ROOT / "exporters" / n for n in ("conventions.py", "cameras_json.py", "exr.py", "atomic.py")]


class RenderedShot:
    """A rendered test shot folder, with loaders for its files. ``os.fspath(shot)`` and ``shot / "frames"`` work."""

    def __init__(self, path: Path, options: dict):
        self.path = Path(path)
        self.options = dict(options)
        self.info = json.loads((self.path / "shot.json").read_text())

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, other) -> Path:
        return self.path / other

    def __repr__(self) -> str:
        return f"RenderedShot({str(self.path)!r}, {self.options})"

    @property
    def frame_count(self) -> int:
        return int(self.info["frame_count"])

    @property
    def size(self) -> tuple[int, int]:
        """(W, H)"""
        return int(self.info["width"]), int(self.info["height"])

    def frame(self, i: int, kind: str = "frames") -> np.ndarray:
        """(H, W, 3) uint8 RGB; kind "frames", "gt/clean" or "gt/heldout/frames"."""
        import cv2

        return cv2.imread(str(self.path / kind / f"{i:05d}.png"), cv2.IMREAD_COLOR)[..., ::-1].copy()

    def frames(self, kind: str = "frames") -> np.ndarray:
        """(F, H, W, 3) uint8 RGB"""
        return np.stack([self.frame(i, kind) for i in range(self.frame_count)])

    def depth(self, i: int, kind: str = "gt/depth") -> np.ndarray:
        """(H, W) float32 planar depth, inf where nothing was hit."""
        from exporters.exr import read_depth_exr

        return read_depth_exr(self.path / kind / f"{i:05d}.exr")

    def object_index(self, i: int, kind: str = "gt/object_index") -> np.ndarray:
        """(H, W) uint8: 0 static set, k moving object k."""
        import cv2

        return cv2.imread(str(self.path / kind / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)

    def cameras(self, kind: str = "gt"):
        from exporters.cameras_json import read_cameras

        return read_cameras(self.path / kind / "cameras.json")

    def flow(self) -> dict[str, np.ndarray]:
        with np.load(self.path / "gt" / "flow.npz") as f:
            return dict(f)

    def tracks(self) -> dict[str, np.ndarray]:
        with np.load(self.path / "gt" / "tracks.npz") as f:
            return dict(f)


def shot_cli_args(options: dict) -> list[str]:
    """{"tripod": True, "frames": 8} -> ["--frames", "8", "--tripod"] (sorted, so the cache key is stable)."""
    args = []
    for name in sorted(options):
        value, flag = options[name], "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not False and value is not None:
            args += [flag, str(value)]
    return args


def shot_cache_key(args: list[str]) -> str:
    """"<hash of the script and its inputs>-<hash of the arguments>"."""
    code = hashlib.sha256(b"".join(path.read_bytes() for path in SHOT_INPUTS)).hexdigest()[:12]
    return f"{code}-{hashlib.sha256(json.dumps(args).encode()).hexdigest()[:8]}"


def prune_stale_shots(cache_dir: Path, key: str) -> None:
    """Remove complete shots rendered by other versions of the script (they can never be used again)."""
    code = key.split("-")[0]
    for old in cache_dir.glob("shot-*"):
        if not old.name.startswith(f"shot-{code}-") and (old / COMPLETE_MARKER).is_file():
            shutil.rmtree(old, ignore_errors=True)


def ensure_shot(options: dict, cache_dir: Path = CACHE_DIR) -> RenderedShot:
    """Render the shot for `options` into the cache unless a complete one is there; return it."""
    args = shot_cli_args(options)
    key = shot_cache_key(args)
    final = cache_dir / f"shot-{key}"
    if (final / COMPLETE_MARKER).is_file():
        return RenderedShot(final, options)
    cache_dir.mkdir(parents=True, exist_ok=True)
    prune_stale_shots(cache_dir, key)
    tmp = cache_dir / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(cache_dir / "blender-user"))
    start = time.time()
    proc = subprocess.run([sys.executable, str(SHOT_SCRIPT), "--out", str(tmp), *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"make_test_shot.py {' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    (tmp / COMPLETE_MARKER).write_text(json.dumps({"args": args, "seconds": round(time.time() - start, 1)}) + "\n")
    if final.exists() and not (final / COMPLETE_MARKER).is_file():
        shutil.rmtree(final, ignore_errors=True)  # left by an interrupted run of an older version
    try:
        os.rename(tmp, final)
    except OSError:  # another process finished the same shot first
        shutil.rmtree(tmp, ignore_errors=True)
    return RenderedShot(final, options)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def make_shot():
    """Factory: ``make_shot(**options) -> RenderedShot``, rendered at most once per options (and cached on disk)."""
    made: dict[tuple, RenderedShot] = {}

    def make(**options) -> RenderedShot:
        key = tuple(shot_cli_args(options))
        if key not in made:
            made[key] = ensure_shot(options)
        return made[key]

    return make


@pytest.fixture(scope="session")
def test_shot(make_shot) -> RenderedShot:
    """The default test shot: 24 frames, 160x120, hand-held camera, two moving objects."""
    return make_shot()


# --- Job folders for the later stages' tests ----------------------------------------------------------------
#: --effort of each learned stage in the shared pipeline jobs (one line per stage; the test shot is small).
TEST_EFFORT = {
    "depth": 0.3,
    "field": 0.1,
    "tracks": 0.3,
    "layers": 0.3,
    "inpaint": 0.3,
}


def run_stages(shot: RenderedShot, job: Path, stages: list[str], effort: float = 1.0, extra: tuple = ()) -> None:
    """`shotfield run` of `stages` on `shot`'s frames into `job` at the shot's own size; fails the test with
    the tail of stderr if the run fails."""
    width, height = shot.size
    cmd = [sys.executable, "-m", "backend.cli", "run", str(shot.path / "frames"), "--job", str(job),
           "--long-side", str(max(width, height)), "--stages", ",".join(stages), "--effort", str(effort),
           "--no-progress", *map(str, extra)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=1200)
    if r.returncode != 0:
        pytest.fail(f"shotfield run --stages {','.join(stages)} failed ({r.returncode}):\n{r.stderr[-3000:]}")


def copy_job(source: Path, destination: Path) -> Path:
    """A writable copy of a job folder (the session's shared jobs are read-only by agreement)."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(".job.lock"))
    return destination


@pytest.fixture(scope="session")
def pipeline_job(test_shot, tmp_path_factory):
    """Factory: ``pipeline_job(*stages) -> Path``: the default test shot run through ingest, flow, solve and
    `stages` (with what they require), each learned stage at its TEST_EFFORT. Built once per session and
    shared: treat it as read-only and `copy_job` it before running anything more in it. A job with stages
    (a, b) is a copy of the job with (a) plus a run of b, so sessions share the expensive stages."""
    from backend.stages import STAGE_ORDER, registered_stages

    built: dict[tuple, Path] = {}
    stages_by_name = registered_stages()

    def closed(names) -> tuple:
        wanted = set(names) | {"ingest", "flow", "solve"}
        changed = True
        while changed:
            changed = False
            for name in list(wanted):
                for dep in stages_by_name[name].requires:
                    if dep not in wanted:
                        wanted.add(dep)
                        changed = True
        return tuple(s for s in STAGE_ORDER if s in wanted)

    def build(*names: str) -> Path:
        unknown = [n for n in names if n not in stages_by_name]
        if unknown:
            pytest.fail(f"pipeline_job: stage(s) {unknown} are not built")
        key = closed(names)
        if key not in built:
            job = tmp_path_factory.mktemp("pipeline") / "job"
            if key == ("ingest", "flow", "solve"):
                run_stages(test_shot, job, list(key))
            else:
                copy_job(build(*key[:-1]), job)
                run_stages(test_shot, job, [key[-1]], effort=TEST_EFFORT.get(key[-1], 1.0))
            built[key] = job
        return built[key]

    return build


def ground_truth_job(shot: RenderedShot, job: Path, depth: bool = True) -> Path:
    """A job whose camera (and depth, and motion masks) are the shot's ground truth instead of the solve's and
    the depth stage's, so that a later stage can be tested on exact inputs: real ingest and flow stages, then
    camera/cameras.json, depth/NNNNN.exr and masks/motion/NNNNN.png from gt/, with `solve` (and `depth`)
    marked done in job.json (key "ground-truth"). Runs of later stages then take them as they are."""
    import cv2

    from backend.job import Job
    from exporters.cameras_json import write_cameras
    from exporters.exr import write_depth_exr

    run_stages(shot, job, ["ingest", "flow"])
    write_cameras(job / "camera" / "cameras.json", shot.cameras())
    (job / "masks" / "motion").mkdir(parents=True, exist_ok=True)
    for i in range(shot.frame_count):
        cv2.imwrite(str(job / "masks" / "motion" / f"{i:05d}.png"), np.where(shot.object_index(i) > 0, 255, 0).astype(np.uint8))
        if depth:
            write_depth_exr(job / "depth" / f"{i:05d}.exr", shot.depth(i))
    with Job.open(job) as handle:
        for name in ("solve", "depth") if depth else ("solve",):
            handle.stage(name).update(status="done", key="ground-truth", error=None, seconds=0.0, device="cpu")
        handle.save()
    return job


@pytest.fixture(scope="session")
def ground_truth_pipeline(test_shot, tmp_path_factory) -> Path:
    """The default test shot as a job with ground-truth cameras, depth and motion masks (read-only; copy_job it)."""
    return ground_truth_job(test_shot, tmp_path_factory.mktemp("ground-truth") / "job")
