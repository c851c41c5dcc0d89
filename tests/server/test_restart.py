"""The server's state is its folder: a server killed mid-job (SIGKILL: no clean-up at all) or stopped
(SIGTERM) and started again re-lists its jobs and resumes them, with no finished stage lost or redone."""
from __future__ import annotations

import json
import signal

import pytest

from exporters.job_manifest import read_manifest, read_progress

from .conftest import LONG_FLOW, ServerProcess, wait_for_state, wait_until


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_restarted_server_resumes_the_interrupted_job(tmp_path, long_video, small_video, sig):
    srv = ServerProcess(tmp_path / "root").start()
    try:
        client = srv.client()
        running = client.create_job(client.upload(str(long_video)), LONG_FLOW)
        waiting = client.create_job(client.upload(str(small_video)), {"stages": ["ingest"]})
        job_dir = srv.root / "jobs" / running / "job"
        assert wait_until(lambda: any(e["stage"] == "flow" and 0 < e["fraction"] < 0.7
                                      for e in read_progress(job_dir)[0]), timeout=120), srv.output()
        assert client.status(waiting)["state"] == "queued"
        frames_before = {p.name: p.stat().st_mtime_ns for p in (job_dir / "frames").iterdir()}
        ingest_before = read_manifest(job_dir)["stages"]["ingest"]

        code = srv.stop(sig)
        assert code == -sig, srv.output()  # uvicorn re-raises SIGTERM after its graceful shutdown
        record = json.loads((srv.root / "jobs" / running / "server.json").read_text())
        # A graceful stop puts the job back in the queue itself; after SIGKILL it still says running.
        assert record["state"] == ("running" if sig == signal.SIGKILL else "queued")
        # The orphaned run gets SIGTERM when its parent dies: it marks flow cancelled and lets go of the job.
        assert wait_until(lambda: read_manifest(job_dir)["stages"]["flow"]["status"] == "cancelled", timeout=60)
        assert read_manifest(job_dir)["stages"]["ingest"] == ingest_before

        srv.restart()
        client = srv.client()
        assert {j["id"] for j in client.list_jobs()} >= {running, waiting}
        final = wait_for_state(client, running, timeout=180)
        assert final["state"] == "done" and final["runs"] == 2, final
        assert final["stages"]["ingest"] == ingest_before  # finished before the kill: kept, not redone
        assert {p.name: p.stat().st_mtime_ns for p in (job_dir / "frames").iterdir()} == frames_before
        assert any(e["stage"] == "ingest" and "skipped" in e["message"] for e in read_progress(job_dir)[0])
        assert wait_for_state(client, waiting)["state"] == "done"
        assert "resuming 2 unfinished job(s)" in srv.output()
    finally:
        srv.stop()
