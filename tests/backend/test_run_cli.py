"""`shotfield run` end to end through the real CLI: job folder contents, resume, skip, cancel."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from backend.flow_store import FlowStore
from exporters.job_manifest import read_manifest, read_progress

from .conftest import REPO, shotfield, textured_frames, with_stage_gaps, write_video


def test_run_writes_the_job_folder_contract(image_folder, tmp_path):
    job = tmp_path / "job"
    r = shotfield("run", image_folder, "--job", job, "--stages", "ingest,flow", "--no-progress")
    assert r.returncode == 0, r.stderr
    m = read_manifest(job)
    assert m["format"] == "shotfield-job" and m["version"] == 1
    assert m["footage"]["kind"] == "images" and m["footage"]["source"] == str(image_folder)
    assert m["frames"]["count"] == 8 and m["frames"]["source_indices"] == list(range(8))
    assert m["source_size"] == [96, 64] and m["working_size"] == [96, 64]  # never upscaled
    assert m["fps"] == 24.0
    for name in ("ingest", "flow"):
        rec = m["stages"][name]
        assert rec["status"] == "done" and rec["device"] == "cpu" and rec["seconds"] >= 0 and rec["key"]
    assert sorted(p.name for p in (job / "frames").iterdir()) == [f"{i:05d}.png" for i in range(8)]
    store = FlowStore(job)
    assert store.gaps == with_stage_gaps(1, 2, 4, frames=8) and store.frames == 8
    # The texture pans by (1.5, 0.75) px a frame: the stored flow says so where it is trusted.
    fwd, ok = store.forward(2, gap=2), store.forward_valid(2, gap=2)
    assert ok.mean() > 0.6
    np.testing.assert_allclose(np.median(fwd[ok], axis=0), [3.0, 1.5], atol=0.2)
    events, _ = read_progress(job)
    assert {e["stage"] for e in events} == {"ingest", "flow"}
    assert all(0.0 <= e["fraction"] <= 1.0 and "time" in e and "message" in e for e in events)
    assert [e for e in events if e["stage"] == "flow"][-1]["fraction"] == 1.0
    assert not list(job.glob("**/*.tmp*")) and not (job / "frames.partial").exists()


def test_second_run_skips_and_changed_settings_rerun_only_what_they_affect(image_folder, tmp_path):
    job = tmp_path / "job"
    assert shotfield("run", image_folder, "--job", job, "--stages", "ingest,flow", "--no-progress").returncode == 0
    stamp = (job / "frames" / "00000.png").stat().st_mtime_ns, (job / "flow/gap_001/forward.npy").stat().st_mtime_ns
    keys = {n: r["key"] for n, r in read_manifest(job)["stages"].items()}

    again = shotfield("run", image_folder, "--job", job, "--stages", "ingest,flow", "--no-progress")
    assert again.returncode == 0
    assert "ingest: up to date, skipped" in again.stderr and "flow: up to date, skipped" in again.stderr
    assert ((job / "frames" / "00000.png").stat().st_mtime_ns, (job / "flow/gap_001/forward.npy").stat().st_mtime_ns) == stamp

    # Another flow gap changes the flow's settings only: ingest stays, flow is recomputed.
    third = shotfield("run", "--job", job, "--stages", "ingest,flow", "--flow-gaps", "1,3", "--no-progress")
    assert third.returncode == 0, third.stderr
    m = read_manifest(job)
    assert "ingest: up to date, skipped" in third.stderr and "flow: up to date" not in third.stderr
    assert m["stages"]["ingest"]["key"] == keys["ingest"] and m["stages"]["flow"]["key"] != keys["flow"]
    assert FlowStore(job).gaps == with_stage_gaps(1, 3, frames=8)

    # Touching the footage (new size/mtime) re-ingests.
    f = next(image_folder.iterdir())
    f.write_bytes(f.read_bytes())
    assert "ingest: up to date" not in shotfield("run", "--job", job, "--stages", "ingest,flow", "--flow-gaps", "1,3", "--no-progress").stderr


def test_frame_range_stride_and_working_size(tmp_path):
    video = write_video(tmp_path / "wide.mp4", textured_frames(n=12, width=200, height=100), fps=30)
    job = tmp_path / "job"
    r = shotfield("run", video, "--job", job, "--frames", "2:11:3", "--long-side", "100", "--stages", "ingest", "--no-progress")
    assert r.returncode == 0, r.stderr
    m = read_manifest(job)
    assert m["frames"]["source_indices"] == [2, 5, 8] and m["frames"]["count"] == 3
    assert m["working_size"] == [100, 50] and m["source_size"] == [200, 100]
    assert m["fps"] == pytest.approx(10.0)  # 30 fps, every third frame
    assert "flow" not in m["stages"] or m["stages"]["flow"]["status"] == "pending"


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cancel_during_flow_keeps_ingest_and_resumes(tmp_path, sig, code):
    # Big enough that the flow stage runs for a few seconds on 2 cores (about 200 DIS calls).
    video = write_video(tmp_path / "long.mp4", textured_frames(n=30, width=480, height=360, shift=(2.0, 1.0)))
    job = tmp_path / "job"
    cmd = [sys.executable, "-m", "backend", "run", str(video), "--job", str(job), "--long-side", "480",
           "--stages", "ingest,flow", "--flow-gaps", "1,2,4,8", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def flow_running():
        events, _ = read_progress(job)
        return any(e["stage"] == "flow" and 0 < e["fraction"] < 0.7 for e in events)

    assert _wait_for(flow_running), "the flow stage never started"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "cancelled" in err
    m = read_manifest(job)
    assert m["stages"]["ingest"]["status"] == "done"
    assert m["stages"]["flow"]["status"] == "cancelled" and "cancelled by" in m["stages"]["flow"]["error"]
    assert len(list((job / "frames").glob("*.png"))) == 30
    assert not list((job / "flow").glob("**/*.tmp.npy")), "temporaries of the cancelled flow were left behind"
    assert not (job / "flow" / "flow.json").exists()

    resumed = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "ingest: up to date, skipped" in resumed.stderr
    m = read_manifest(job)
    assert m["stages"]["flow"]["status"] == "done" and m["stages"]["flow"]["error"] is None
    assert FlowStore(job).gaps == with_stage_gaps(1, 2, 4, 8, frames=30)


def test_status_command_and_version(image_folder, tmp_path):
    job = tmp_path / "job"
    shotfield("run", image_folder, "--job", job, "--stages", "ingest", "--no-progress")
    out = shotfield("status", job, "--json")
    assert json.loads(out.stdout)["ingest"]["status"] == "done"
    version = shotfield("--version")
    assert version.returncode == 0 and version.stdout.startswith("shotfield 0.1.0") and "device" in version.stdout


def test_bad_settings_are_usage_errors(image_folder, tmp_path):
    for args, needle in ((["--frames", "10:5"], "--frames"), (["--long-side", "3"], "--long-side"),
                         (["--stages", "ingest,bogus"], "bogus")):
        r = shotfield("run", image_folder, "--job", tmp_path / "job", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and r.stderr.count("\n") == 1, r.stderr
