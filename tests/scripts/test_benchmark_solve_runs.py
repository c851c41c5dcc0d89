"""The solve benchmark's orchestration (scripts/benchmarks/solve.py) with stand-in solvers: tiny Python
commands that copy the ground truth or fail, so what is checked is the bookkeeping (failed rows, flaky
runs, the best pycolmap mark, the metrics read back), never speed."""
import sys
from pathlib import Path

import numpy as np
import pytest

from exporters.cameras_json import CameraFrame, Cameras, write_cameras
from scripts.benchmarks import solve
from scripts.benchmarks.runs import Context
from scripts.benchmarks.shots import Shot

# A stand-in solver: copies GT_DIR/cameras.json into JOB/camera/ (dropping frame DROP, -1: none; moving the
# last camera by NUDGE along x) and fails on the run numbered FAIL_ON (counted in COUNTER; 0: never).
FAKE = r"""
import json, sys, pathlib
job, result, gt, drop, fail_on, counter, nudge = sys.argv[1:8]
c = pathlib.Path(counter); n = int(c.read_text()) + 1 if c.exists() else 1; c.write_text(str(n))
if n == int(fail_on):
    print("segmentation fault (pretend)"); sys.exit(139)
data = json.loads((pathlib.Path(gt) / "cameras.json").read_text())
data["frames"] = [f for f in data["frames"] if f["index"] != int(drop)]
data["frames"][-1]["world_from_camera"][0][3] += float(nudge)
data["reprojection_error_px"] = 0.5
(pathlib.Path(job) / "camera").mkdir(parents=True)
(pathlib.Path(job) / "camera" / "cameras.json").write_text(json.dumps(data))
pathlib.Path(result).write_text(json.dumps({"compute_s": 0.1}))
"""


class FakePeer:
    def __init__(self, gt: Path, counter: Path, drop=-1, fail_on=0, nudge=0.0, tripod_only=False):
        self.args = [str(gt), str(drop), str(fail_on), str(counter), str(nudge)]
        self.tripod_only = tripod_only

    def command(self, frames, job, result):
        return [sys.executable, "-c", FAKE, str(job), str(result), *self.args]


@pytest.fixture
def shot(tmp_path):
    frames = tmp_path / "shot" / "frames"
    frames.mkdir(parents=True)
    for i in range(6):
        (frames / f"{i:05d}.png").write_bytes(b"")  # only counted, never read
    K = np.array([[100.0, 0, 32], [0, 100, 24], [0, 0, 1]])
    poses = np.tile(np.eye(4), (6, 1, 1))
    poses[:, :3, 3] = [[0.1 * i, 0.01 * i * i, 0.02 * (i % 2)] for i in range(6)]
    write_cameras(tmp_path / "shot" / "gt" / "cameras.json", Cameras(64, 48, [CameraFrame(i, K, p) for i, p in enumerate(poses)]))
    return Shot("synthetic", frames, frames, tmp_path / "shot" / "gt", long_side=64, size=(64, 48))


def test_failed_shotfield_and_flaky_peers(tmp_path, shot, monkeypatch):
    gt = shot.gt
    monkeypatch.setattr(solve, "shotfield_solve_command", lambda ctx, shot, job: [
        sys.executable, "-c", "import sys; print('unknown stage: solve'); sys.exit(2)"])
    monkeypatch.setattr(solve, "SOLVE_PEERS", {
        "pycolmap-incremental": FakePeer(gt, tmp_path / "n1", drop=3, nudge=0.05),
        "pycolmap-global": FakePeer(gt, tmp_path / "n2", fail_on=2),          # crashes on its second run
        "blender-tracker": FakePeer(gt, tmp_path / "n3", fail_on=1),          # crashes on its first run
        "blender-tracker-tripod": FakePeer(gt, tmp_path / "n4", tripod_only=True),
    })
    ctx = Context(work=tmp_path / "work", repeats=3, device="cpu", quality="preview", peer_timeout_s=60)
    records = {r.method.split(" ")[0]: r for r in solve.bench_solve(ctx, shot)}
    assert set(records) == {"shotfield", "pycolmap-incremental", "pycolmap-global", "blender-tracker"}

    ours = records["shotfield"]
    assert ours.error == "exit 2: unknown stage: solve" and ours.details["failed_runs"] == [ours.error]
    assert (tmp_path / "n1").read_text() == "3"                       # the peers ran every repeat regardless
    incremental, global_ = records["pycolmap-incremental"], records["pycolmap-global"]
    assert incremental.error is None and len(incremental.wall_s) == 3
    assert incremental.metrics["registered_str"] == "5/6" and incremental.metrics["reprojection_px"] == 0.5
    assert incremental.metrics["ate_percent"] > 0.1
    assert global_.method == "pycolmap-global [1 of 3 runs failed] (best)"
    assert global_.metrics["ate"] == pytest.approx(0, abs=1e-9) and len(global_.wall_s) == 2
    assert global_.details["failed_runs"] == ["exit 139: segmentation fault (pretend)"]
    blender = records["blender-tracker"]
    assert blender.error.startswith("exit 139") and (tmp_path / "n3").read_text() == "1"   # not run again
    assert ours.details["shot"] == {"frames": 6, "tripod": False, "size": (64, 48), "gt": True}
