"""Background jobs through the add-on's operators, with a stand-in backend (fake_backend.py) that keeps the real
one's contract: run without waiting and follow with the timer, cancel, resume, re-attach to a run started
elsewhere, errors in words, no orphan processes when the file closes, the "Check" button, server mode."""
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import blender_env
import bpy
import numpy as np
import pytest

from .layout_recorder import RecordingLayout

FAKE = Path(__file__).with_name("fake_backend.py")


def addon_module(addon, name):
    return sys.modules[f"{addon}.blender_addon.{name}"]


@pytest.fixture
def fake_backend(addon, tmp_path, monkeypatch):
    """`shotfield` -> fake_backend.py, set as the add-on's backend command; a clip of 4 frames; the job folder."""
    from PIL import Image

    command = tmp_path / "bin" / "shotfield"
    command.parent.mkdir()
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    command.chmod(command.stat().st_mode | stat.S_IXUSR)
    prefs = bpy.context.preferences.addons[addon].preferences
    old = prefs.backend_command, prefs.mode
    prefs.backend_command, prefs.mode = str(command), "local"
    (tmp_path / "footage").mkdir()
    for i in range(4):
        Image.fromarray(np.full((48, 64, 3), 40 * i, np.uint8)).save(tmp_path / "footage" / f"plate.{i + 1:04d}.png")
    scene = bpy.context.scene
    scene.active_clip = bpy.data.movieclips.load(str(tmp_path / "footage" / "plate.0001.png"))
    scene.shotfield.job_dir = str(tmp_path / "job")
    scene.shotfield.import_when_done = False
    monkeypatch.setenv("FAKE_SECONDS", "0.4")
    yield tmp_path / "job"
    addon_module(addon, "monitor").stop_all()
    prefs.backend_command, prefs.mode = old


def tick_until(monitor, condition, timeout=20.0):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        monitor.tick()
        time.sleep(0.02)


def stages_of(job):
    return {name: rec["status"] for name, rec in json.loads((job / "job.json").read_text())["stages"].items()}


def test_run_without_waiting_cancel_and_resume(scene, addon, fake_backend, monkeypatch):
    monitor = addon_module(addon, "monitor")
    job = str(fake_backend)
    monkeypatch.setenv("FAKE_SECONDS", "1.5")
    assert bpy.ops.shotfield.run(blocking="OFF") == {"FINISHED"}
    assert monitor.is_active(job) and not bpy.ops.shotfield.run.poll()   # Run greys out while it runs
    run = monitor._watches[job].run
    assert run.command[1:3] == ["run", str(Path(fake_backend).parent / "footage" / "plate.%04d.png")]

    tick_until(monitor, lambda: monitor.state_for(job).stage == "flow")
    state = monitor.state_for(job)
    assert state.finished == {"ingest": "done"} and 0 < state.fraction() < 1
    assert bpy.ops.shotfield.cancel() == {"FINISHED"}
    tick_until(monitor, lambda: not monitor.is_active(job))

    assert state.state == "cancelled" and "Finished stages are kept" in state.error
    assert run.exit_code == 143
    assert stages_of(fake_backend) == {"ingest": "done", "flow": "cancelled"}  # finished stages intact
    # The next run goes on from there: ingest is skipped, flow is redone.
    monkeypatch.setenv("FAKE_SECONDS", "0.2")
    assert bpy.ops.shotfield.run(blocking="ON") == {"FINISHED"}
    state = monitor.state_for(job)
    assert state.state == "done" and state.finished == {"ingest": "skipped", "flow": "done"}
    assert stages_of(fake_backend) == {"ingest": "done", "flow": "done"}


def test_a_failed_run_is_explained_with_the_log_at_hand(scene, addon, fake_backend, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_EXIT", "1")
    with pytest.raises(RuntimeError, match="the fake stage failed on purpose"):
        bpy.ops.shotfield.run()  # background mode: waits
    layout = RecordingLayout()
    addon_module(addon, "panel").draw_panel(layout, bpy.context)
    assert ("progress", "Failed") in layout.calls
    assert any(kind == "label" and "failed on purpose" in text for kind, text in layout.calls)
    assert ("operator", "shotfield.open_log") in layout.calls
    assert bpy.ops.shotfield.open_log() == {"FINISHED"}
    assert "fake backend" in capsys.readouterr().out  # background mode prints the log's end


def test_refusals_are_reported_not_raised(scene, addon, fake_backend):
    prefs = bpy.context.preferences.addons[addon].preferences
    prefs.backend_command = "/nonexistent/shotfield"
    with pytest.raises(RuntimeError, match="was not found"):
        bpy.ops.shotfield.run()
    scene.shotfield.job_dir = ""
    with pytest.raises(RuntimeError, match="save the file first"):
        bpy.ops.shotfield.run()
    scene.shotfield.job_dir = str(fake_backend)
    scene.active_clip = None
    with pytest.raises(RuntimeError, match="Choose the footage"):
        bpy.ops.shotfield.run()


def test_reattach_to_a_run_started_elsewhere(scene, addon, fake_backend):
    monitor = addon_module(addon, "monitor")
    job = fake_backend
    env = dict(os.environ, FAKE_SECONDS="0.8")
    other = subprocess.Popen([sys.executable, str(FAKE), "run", "--job", str(job)], env=env)  # e.g. a terminal
    try:
        deadline = time.time() + 10
        while not (job / ".job.lock").is_file() or (job / ".job.lock").read_text() != str(other.pid):
            assert time.time() < deadline
            time.sleep(0.02)
        with pytest.raises(RuntimeError, match=f"being run by process {other.pid}"):
            bpy.ops.shotfield.run()
        assert bpy.ops.shotfield.reattach() == {"FINISHED"}
        assert monitor.is_active(str(job))
        tick_until(monitor, lambda: monitor.state_for(str(job)).stage != "")   # replayed from progress.jsonl
        # Blender does not own it, but waits for it: the other process reaps its child.
        threading.Thread(target=other.wait, daemon=True).start()
        tick_until(monitor, lambda: not monitor.is_active(str(job)))
        assert monitor.state_for(str(job)).state == "done"
    finally:
        other.kill()
        other.wait()
    assert bpy.ops.shotfield.reattach() == {"CANCELLED"}  # nothing runs now


def test_closing_the_file_stops_its_runs(scene, addon, fake_backend, monkeypatch):
    monitor, jobs = addon_module(addon, "monitor"), addon_module(addon, "jobs")
    monkeypatch.setenv("FAKE_SECONDS", "5")
    bpy.ops.shotfield.run(blocking="OFF")
    run = monitor._watches[str(fake_backend)].run
    tick_until(monitor, lambda: monitor.state_for(str(fake_backend)).stage == "ingest")
    blender_env.reset_scene()  # File > New: load_pre
    assert run.finished and not jobs.pid_alive(run.pid)
    assert run.exit_code == 143 and stages_of(fake_backend)["ingest"] == "cancelled"
    assert monitor.state_for(str(fake_backend)) is None


def test_check_button_reports_version_and_device(scene, addon, fake_backend):
    assert bpy.ops.shotfield.check_backend() == {"FINISHED"}
    result = addon_module(addon, "operators_backend").last_check()
    assert result.ok and result.text == "shotfield 0.0-fake (torch none, device cpu (fake))"
    prefs = bpy.context.preferences.addons[addon].preferences
    prefs.backend_command = str(fake_backend.parent / "missing")
    with pytest.raises(RuntimeError, match="Not found"):
        bpy.ops.shotfield.check_backend()


class FakeServer:
    """An in-memory `remote.ShotfieldServer`: the job 'runs' for a few polls, then its folder downloads."""

    instances = []

    def __init__(self, url, token, timeout=10.0):
        self.url, self.token, self.calls, self.polls = url, token, [], 0
        FakeServer.instances.append(self)

    def version(self):
        return {"version": "0.1.0", "device": "cuda (fake)"}

    def upload(self, footage_path, on_progress=None):
        on_progress(50, 100)
        on_progress(100, 100)
        self.calls.append(("upload", footage_path))
        return "u1"

    def create_job(self, upload_id, settings):
        self.calls.append(("create_job", upload_id, settings))
        return "j1"

    def progress(self, job_id, offset):
        self.polls += 1
        return [{"time": time.time(), "stage": "flow", "fraction": min(1.0, self.polls / 3), "message": f"poll {self.polls}"}], offset + 1

    def status(self, job_id):
        return {"state": "done" if self.polls >= 3 else "running", "stages": {}, "error": None}

    def cancel(self, job_id):
        self.calls.append(("cancel", job_id))

    def download(self, job_id, dest_dir, on_progress=None):
        Path(dest_dir).mkdir(parents=True, exist_ok=True)
        (Path(dest_dir) / "job.json").write_text(json.dumps({"format": "shotfield-job", "version": 1, "stages": {"flow": {"status": "done"}}}))
        self.calls.append(("download", job_id, dest_dir))
        return dest_dir


class FakeRemote:
    ShotfieldServer = FakeServer

    class ServerError(Exception):
        pass


def test_server_mode(scene, addon, fake_backend, monkeypatch):
    remote_jobs, monitor = addon_module(addon, "remote_jobs"), addon_module(addon, "monitor")
    prefs = bpy.context.preferences.addons[addon].preferences
    prefs.mode, prefs.server_url = "server", "http://render-box:8000"
    monkeypatch.setattr(remote_jobs, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(remote_jobs, "server_module", lambda: None)
    with pytest.raises(RuntimeError, match="Server support is not installed"):
        bpy.ops.shotfield.run()
    layout = RecordingLayout()
    addon_module(addon, "panel").draw_panel(layout, bpy.context)
    assert ("label", "Server support not installed") in layout.calls

    monkeypatch.setattr(remote_jobs, "server_module", lambda: FakeRemote)
    assert bpy.ops.shotfield.run(blocking="ON") == {"FINISHED"}
    server = FakeServer.instances[-1]
    assert server.url == "http://render-box:8000"
    assert [c[0] for c in server.calls] == ["upload", "create_job", "download"]
    assert server.calls[1][2]["stages"] == ["ingest", "flow", "solve"]
    assert remote_jobs.saved_server_job(fake_backend) == {"url": "http://render-box:8000", "job_id": "j1"}
    assert monitor.state_for(str(fake_backend)).state == "done"
    assert bpy.ops.shotfield.check_backend() == {"FINISHED"}
    assert "cuda (fake)" in addon_module(addon, "operators_backend").last_check().text
    prefs.mode = "local"


def _wait_dead(jobs, pid, seconds=10.0):
    deadline = time.time() + seconds
    while jobs.pid_alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    return not jobs.pid_alive(pid)


@pytest.mark.parametrize("how", ["disable the add-on", "quit without cleaning up"])
def test_no_orphan_when_blender_goes_away(addon, fake_backend, tmp_path, how):
    """Another Blender (a bpy process) starts a long run and goes away: its backend process goes too."""
    jobs = addon_module(addon, "jobs")
    command = bpy.context.preferences.addons[addon].preferences.backend_command
    ending = ("" if how == "disable the add-on" else
              # atexit is what runs when Blender quits; the add-on stays registered, so leave with os._exit
              # after running the exit handlers ourselves, as Py_Finalize would.
              "import atexit; atexit._run_exitfuncs(); sys.stdout.flush(); os._exit(0)")
    script = f"""
import os, sys, time
sys.path[:0] = [{str(Path(blender_env.__file__).parent)!r}]
import blender_env
import bpy
with blender_env.addon_enabled() as module:
    bpy.context.preferences.addons[module].preferences.backend_command = {command!r}
    scene = bpy.context.scene
    scene.active_clip = bpy.data.movieclips.load({str(fake_backend.parent / "footage" / "plate.0001.png")!r})
    scene.shotfield.job_dir = {str(tmp_path / "other_job")!r}
    bpy.ops.shotfield.run(blocking="OFF")
    while not os.path.exists({str(tmp_path / "other_job" / "job.json")!r}):
        time.sleep(0.05)
    print("PID", open({str(tmp_path / "other_job" / ".job.lock")!r}).read(), flush=True)
    {ending}
"""
    env = dict(os.environ, FAKE_SECONDS="30", BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert "PID" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    pid = int(done.stdout.split("PID", 1)[1].split()[0])
    assert _wait_dead(jobs, pid), f"backend {pid} outlived its Blender"
    assert stages_of(tmp_path / "other_job")["ingest"] == "cancelled"


def test_opening_a_file_reattaches_to_its_running_job(scene, addon, fake_backend, tmp_path):
    monitor = addon_module(addon, "monitor")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    env = dict(os.environ, FAKE_SECONDS="1")
    other = subprocess.Popen([sys.executable, str(FAKE), "run", "--job", str(fake_backend)], env=env)
    try:
        deadline = time.time() + 10
        while not (fake_backend / "job.json").is_file():
            assert time.time() < deadline
            time.sleep(0.02)
        bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "shot.blend"))  # load_post
        assert monitor.is_active(str(fake_backend))
    finally:
        other.kill()
        other.wait()
    blender_env.reset_scene()
