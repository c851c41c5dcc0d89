"""The whole round trip through a real server on loopback, with the add-on's own client (remote.py):
upload a rendered test shot, run it, poll its progress, download the job folder and import it in Blender
(bpy as a module). Then the live parts: the server-sent-events stream, cancel and resume, the queue."""
from __future__ import annotations

import json
import sys
import time
import urllib.request

import pytest

from backend.flow_store import FlowStore
from exporters.job_manifest import read_manifest, read_progress

from .conftest import LONG_FLOW, REPO, FINISHED, ServerError, wait_for_state, wait_until


def poll_to_the_end(client, job_id, timeout=180.0):
    """Poll progress and status like the add-on's timer; returns (status, events)."""
    events, offset, deadline = [], 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.status(job_id)
        new, offset = client.progress(job_id, offset)
        events += new
        if status["state"] in FINISHED:
            new, offset = client.progress(job_id, offset)
            return status, events + new
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {client.status(job_id)}")


def import_in_blender(job_dir, out_blend):
    """The add-on's import of a job folder (scripts/import_job.py), then the saved .blend opened again."""
    sys.path.insert(0, str(REPO / "scripts"))
    import blender_env

    blender_env.use_temp_user_resources()
    bpy = pytest.importorskip("bpy")
    import import_job

    try:
        import_job.import_job(job_dir, out_blend)
        bpy.ops.wm.open_mainfile(filepath=str(out_blend))
        clip = bpy.data.movieclips[0]
        return {"clip_frames": clip.frame_duration, "clip_size": tuple(clip.size),
                "clip_path": bpy.path.abspath(clip.filepath), "scene_clip": bpy.context.scene.active_clip == clip}
    finally:
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)


def test_upload_run_poll_download_and_import(server, test_shot, tmp_path):
    client = server.client()
    assert client.version()["version"] == "0.1.0"
    sent = []
    upload_id = client.upload(str(test_shot / "frames"), on_progress=lambda done, total: sent.append((done, total)))
    assert sent and sent[-1][0] == sent[-1][1] and [d for d, _ in sent] == sorted(d for d, _ in sent)

    job_id = client.create_job(upload_id, {"stages": ["ingest", "flow"], "quality": "preview"})
    status, events = poll_to_the_end(client, job_id)
    assert status["state"] == "done" and status["error"] is None, status
    assert {n: s["status"] for n, s in status["stages"].items()} == {"ingest": "done", "flow": "done"}
    assert events == read_progress(server.root / "jobs" / job_id / "job")[0]  # polled in pieces: all of it
    assert [e for e in events if e["stage"] == "flow"][-1]["fraction"] == 1.0

    seen = []
    dest = client.download(job_id, str(tmp_path / "downloads" / "shot"), on_progress=lambda d, t: seen.append(d))
    assert seen and dest == str(tmp_path / "downloads" / "shot")
    manifest = read_manifest(dest)
    assert manifest["frames"]["count"] == test_shot.frame_count and manifest["working_size"] == list(test_shot.size)
    assert {n: s["status"] for n, s in manifest["stages"].items()} == {"ingest": "done", "flow": "done"}
    assert len(list((tmp_path / "downloads" / "shot" / "frames").glob("*.png"))) == test_shot.frame_count
    assert FlowStore(dest).frames == test_shot.frame_count
    assert not list((tmp_path / "downloads").glob(".shotfield-download-*"))  # the temporary zip is gone

    imported = import_in_blender(tmp_path / "downloads" / "shot", tmp_path / "shot.blend")
    assert imported["clip_frames"] == test_shot.frame_count and imported["clip_size"] == test_shot.size
    assert imported["clip_path"] == f"{dest}/frames/00000.png" and imported["scene_clip"]


def test_event_stream_follows_the_job_to_its_end(server, small_video):
    client = server.client()
    job_id = client.create_job(client.upload(str(small_video)), {"stages": ["ingest", "flow"]})
    request = urllib.request.Request(f"{server.url}/v1/jobs/{job_id}/events",
                                     headers={"Authorization": f"Bearer {server.token}"})
    kinds, states, progress = [], [], []
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=120) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        for block in stream.read().decode().split("\n\n"):  # the server closes the stream when the job ends
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
            if "event" in fields:
                kinds.append(fields["event"])
                data = json.loads(fields["data"])
                (states if fields["event"] == "state" else progress).append(data)
    assert states[-1]["state"] == "done" and kinds[-1] == "state"
    assert {e["stage"] for e in progress} == {"ingest", "flow"} and progress[-1]["fraction"] == 1.0


def test_cancel_keeps_finished_stages_and_resume_finishes(server, long_video):
    client = server.client()
    job_id = client.create_job(client.upload(str(long_video)), LONG_FLOW)
    job_dir = server.root / "jobs" / job_id / "job"
    assert wait_until(lambda: any(e["stage"] == "flow" and 0 < e["fraction"] < 0.7
                                  for e in read_progress(job_dir)[0]), timeout=120), client.status(job_id)
    client.cancel(job_id)
    status = wait_for_state(client, job_id)
    assert status["state"] == "cancelled", status
    assert status["stages"]["ingest"]["status"] == "done" and status["stages"]["flow"]["status"] == "cancelled"
    ingest_finished = status["stages"]["ingest"]["finished"]
    client.cancel(job_id)  # cancelling a job that ended is a no-op for the client
    with pytest.raises(ServerError) as err:
        client._call("POST", f"/v1/jobs/{job_id}/cancel")
    assert err.value.status == 409

    client.resume(job_id)
    status = wait_for_state(client, job_id, timeout=180)
    assert status["state"] == "done" and status["runs"] == 2, status
    assert status["stages"]["ingest"]["finished"] == ingest_finished  # not run again
    assert any(e["stage"] == "ingest" and "skipped" in e["message"] for e in read_progress(job_dir)[0])


def test_one_job_at_a_time_the_rest_wait_in_order(server, small_video):
    client = server.client()
    ids = [client.create_job(client.upload(str(small_video)), {"stages": ["ingest"]}) for _ in range(3)]
    states = [client.status(i) for i in ids]
    assert sum(s["state"] == "running" for s in states) <= 1
    assert [s["queue_position"] for s in states if s["state"] == "queued"] == sorted(
        s["queue_position"] for s in states if s["state"] == "queued")
    finals = [wait_for_state(client, i) for i in ids]
    assert all(s["state"] == "done" for s in finals)
    spans = sorted((s["started"], s["finished"]) for s in finals)
    assert all(a_end <= b_start + 0.05 for (_, a_end), (b_start, _) in zip(spans, spans[1:])), spans  # no overlap
    client.delete(ids[0])
    with pytest.raises(ServerError) as err:
        client.status(ids[0])
    assert err.value.status == 404 and not (server.root / "jobs" / ids[0]).exists()
