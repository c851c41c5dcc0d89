"""Shots on a local Ray cluster on loopback (`ray start --head` on 127.0.0.1, 2 CPUs): `shotfield submit`
runs three shots side by side as far as the CPUs allow, with the same outputs as local `shotfield run`;
`shotfield serve --ray` runs, cancels and resumes jobs there. Slow (a Ray cluster takes ~10 s to start)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from exporters.job_manifest import read_manifest, read_progress

from .conftest import LONG_FLOW, REPO, ServerProcess, textured_frames, wait_for_state, wait_until, write_video

pytestmark = pytest.mark.slow
pytest.importorskip("ray")
CPUS = 2


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """(address, environment for drivers). Ray resolves 127.0.0.1 to the machine's network address unless
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (its single-machine mode), which keeps every Ray service on loopback."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONPATH": str(REPO)}
    temp = Path(tempfile.mkdtemp(prefix="ray-sf-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port = free_port()
    log = temp / "head.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                                 "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", str(CPUS),
                                 "--num-gpus", "0", "--include-dashboard", "false", "--disable-usage-stats",
                                 "--temp-dir", str(temp)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        assert wait_until(lambda: b"Ray runtime started" in log.read_bytes() or proc.poll() is not None, 180), \
            log.read_text()
        assert proc.poll() is None, log.read_text()
        yield f"127.0.0.1:{port}", env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the cluster is this process group and nothing else
        try:
            proc.wait(10)  # Ray drains for up to 30 s; nothing here needs draining
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(temp, ignore_errors=True)


def span(job_dir: Path) -> tuple[float, float]:
    events = read_progress(job_dir)[0]
    return events[0]["time"], events[-1]["time"]


def most_at_once(spans) -> int:
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    running = best = 0
    for _, step in edges:
        running += step
        best = max(best, running)
    return best


def same_outputs(a: Path, b: Path) -> None:
    ma, mb = read_manifest(a), read_manifest(b)
    assert {n: s["key"] for n, s in ma["stages"].items()} == {n: s["key"] for n, s in mb["stages"].items()}
    assert ma["outputs"] == mb["outputs"] and ma["working_size"] == mb["working_size"]
    frames = sorted(p.name for p in (a / "frames").iterdir())
    assert frames == sorted(p.name for p in (b / "frames").iterdir())
    assert all((a / "frames" / f).read_bytes() == (b / "frames" / f).read_bytes() for f in frames)
    arrays = sorted(p.relative_to(a) for p in (a / "flow").rglob("*.npy"))
    assert arrays == sorted(p.relative_to(b) for p in (b / "flow").rglob("*.npy")) and arrays
    for rel in arrays:
        np.testing.assert_array_equal(np.load(a / rel), np.load(b / rel))


def test_three_shots_run_side_by_side_with_the_same_outputs_as_local_runs(ray_cluster, tmp_path):
    address, env = ray_cluster
    shots = [write_video(tmp_path / f"shot{i}.mp4", textured_frames(n=12, width=160, height=120, seed=i)) for i in range(3)]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "backend", "submit", *map(str, shots), "--ray", address,
                           "--jobs", str(tmp_path / "ray_jobs"), "--stages", "ingest,flow"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    ray_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    for i in range(3):
        assert f"shot{i}: done" in done.stderr
    spans = [span(tmp_path / "ray_jobs" / f"shot{i}") for i in range(3)]
    assert most_at_once(spans) == CPUS, spans  # two at once on 2 CPUs, the third when one is free

    for i, shot in enumerate(shots):
        local = subprocess.run([sys.executable, "-m", "backend", "run", str(shot), "--job", str(tmp_path / "local" / f"shot{i}"),
                                "--stages", "ingest,flow", "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True)
        assert local.returncode == 0, local.stderr
        same_outputs(tmp_path / "ray_jobs" / f"shot{i}", tmp_path / "local" / f"shot{i}")
    print(f"\nray: 3 shots in {ray_seconds:.1f} s, spans {[(round(a - spans[0][0], 2), round(b - spans[0][0], 2)) for a, b in spans]}")


def test_serve_on_ray_runs_cancels_and_resumes(ray_cluster, tmp_path, long_video, small_video):
    address, env = ray_cluster
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # the server process inherits it
    try:
        srv = ServerProcess(tmp_path / "root", "--ray", address).start(timeout=180)
    finally:
        del os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]
    try:
        client = srv.client()
        assert "Ray cluster" in client.version()["device"]
        quick = client.create_job(client.upload(str(small_video)), {"stages": ["ingest", "flow"]})
        slow = client.create_job(client.upload(str(long_video)), LONG_FLOW)
        job_dir = srv.root / "jobs" / slow / "job"
        assert wait_until(lambda: any(e["stage"] == "flow" and 0 < e["fraction"] < 0.7
                                      for e in read_progress(job_dir)[0]), timeout=240), srv.output()
        client.cancel(slow)
        status = wait_for_state(client, slow, timeout=120)
        assert status["state"] == "cancelled" and status["stages"]["flow"]["status"] == "cancelled", status
        assert status["stages"]["ingest"]["status"] == "done"
        assert wait_for_state(client, quick, timeout=240)["state"] == "done"
        client.resume(slow)
        status = wait_for_state(client, slow, timeout=240)
        assert status["state"] == "done" and status["stages"]["flow"]["status"] == "done", status
        dest = client.download(quick, str(tmp_path / "quick"))
        assert len(list(Path(dest, "frames").glob("*.png"))) == 10
    finally:
        srv.stop()
