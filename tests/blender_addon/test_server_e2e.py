"""Server mode end to end: a real `shotfield serve` on 127.0.0.1, the add-on's Run operator uploads the clip,
follows the job, downloads the job folder and imports it (skipped where the server is not installed)."""
import os
import subprocess
import sys
import time
from pathlib import Path

import bpy
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (REPO_ROOT / "backend" / "server").is_dir(), reason="no backend/server yet")


@pytest.fixture
def server(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    root = tmp_path / "server"
    root.mkdir()
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "backend", "serve", "--root", str(root), "--port", "0"],
                                cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while not ((root / "address").is_file() and (root / "token").is_file()):
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.05)
        yield (root / "address").read_text().strip(), (root / "token").read_text().strip()
    finally:
        proc.terminate()
        proc.wait(30)


def test_run_on_a_server_and_import(scene, addon, server, test_shot, tmp_path):
    url, token = server
    prefs = bpy.context.preferences.addons[addon].preferences
    prefs.mode, prefs.server_url, prefs.server_token = "server", url, token
    try:
        deadline = time.time() + 30
        while True:  # the address file appears just before the server answers
            try:
                assert bpy.ops.shotfield.check_backend() == {"FINISHED"}
                break
            except RuntimeError:
                assert time.time() < deadline
                time.sleep(0.2)
        scene.active_clip = bpy.data.movieclips.load(str(test_shot / "frames" / "00000.png"))
        props = scene.shotfield
        props.job_dir, props.use_frame_range, props.clip_frame_end = str(tmp_path / "job"), True, 8
        props.import_when_done = True
        assert bpy.ops.shotfield.run(stages="ingest,flow") == {"FINISHED"}
        state = sys.modules[f"{addon}.blender_addon.monitor"].state_for(str(tmp_path / "job"))
        assert state.state == "done" and state.where == url and "imported footage" in state.message
        assert len(os.listdir(tmp_path / "job" / "frames")) == 8
        assert (scene.frame_start, scene.frame_end) == (1, 8)
        saved = sys.modules[f"{addon}.blender_addon.remote_jobs"].saved_server_job(tmp_path / "job")
        assert saved and saved["url"] == url
    finally:
        prefs.mode, prefs.server_token = "local", ""
