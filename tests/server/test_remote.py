"""blender_addon/remote.py (the add-on's client) against a real server: image sequences, resumed uploads,
downloads, and every failure explained in words the panel can show."""
from __future__ import annotations

import ast
import socket
import sys

import pytest

from exporters.job_manifest import read_manifest

from .conftest import REPO, ServerError, ShotfieldServer, remote, textured_frames, wait_for_state, write_sequence


def test_remote_needs_only_the_standard_library():
    tree = ast.parse((REPO / "blender_addon" / "remote.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]  # nothing of the add-on


@pytest.mark.parametrize("pattern", ["shot.%04d.png", "shot.####.png", None])
def test_image_sequences_go_up_as_one_zip(server, tmp_path, pattern):
    folder = write_sequence(tmp_path / "plates", textured_frames(n=6))
    (folder / "notes.txt").write_text("not a frame")  # left behind by the client, not sent
    client = server.client()
    upload_id = client.upload(str(folder / pattern) if pattern else str(folder))
    job_id = client.create_job(upload_id, {"stages": "ingest"})
    status = wait_for_state(client, job_id)
    assert status["state"] == "done" and status["footage"]["frames"] == 6, status
    assert status["name"] == ("shot.zip" if pattern else "plates.zip")


def test_footage_that_is_no_shot_is_explained_before_sending(server, tmp_path):
    client = server.client()
    write_sequence(tmp_path / "one", textured_frames(n=1))
    for path, needle in ((tmp_path / "missing.mp4", "no such file"), (tmp_path / "one" / "shot.0001.png", "single image"),
                         (tmp_path / "one", "at least 2 frames")):
        with pytest.raises(ServerError, match=needle):
            client.upload(str(path))


def test_an_upload_resumes_after_the_connection_drops(server, long_video, monkeypatch):
    """The connection breaks in the middle of a chunk: the client asks the server where it got to and goes on."""
    monkeypatch.setattr(remote, "CHUNK", 30_000)  # http.client sends 8192 bytes at a time
    real_read, broken = remote._Reader.read, []

    def flaky_read(self, n=-1):
        if self._done >= 16384 and not broken and self._left > 0:
            broken.append(self._done)
            raise ConnectionResetError("simulated drop")
        return real_read(self, n)

    monkeypatch.setattr(remote._Reader, "read", flaky_read)
    progress = []
    client = server.client()
    upload_id = client.upload(str(long_video), on_progress=lambda d, t: progress.append(d))
    assert broken and progress[-1] == long_video.stat().st_size > 30_000
    status = wait_for_state(client, client.create_job(upload_id, {"stages": ["ingest"]}))
    assert status["state"] == "done" and status["footage"]["frames"] == 12


def test_download_replaces_an_earlier_download(server, small_video, tmp_path):
    client = server.client()
    job_id = client.create_job(client.upload(str(small_video)), {"stages": ["ingest"]})
    wait_for_state(client, job_id)
    dest = tmp_path / "job"
    dest.mkdir()
    (dest / "stale.txt").write_text("from an older download")
    assert client.download(job_id, str(dest)) == str(dest)
    assert not (dest / "stale.txt").exists() and read_manifest(dest)["stages"]["ingest"]["status"] == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["job"]  # no temporary left beside it


def test_failures_are_explained(server, tmp_path):
    with pytest.raises(ServerError, match=r"refused the token \(401"):
        server.client(token="not-the-token").version()
    with pytest.raises(ServerError, match=r"refused the token \(401"):
        ShotfieldServer(server.url, "").status("0123456789abcdef")
    with pytest.raises(ServerError, match=r"no job .* \(404\)") as err:
        server.client().status("0123456789abcdef")
    assert err.value.status == 404
    with pytest.raises(ServerError, match="not valid"):
        ShotfieldServer("127.0.0.1:8000", "t")

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServerError, match="connection refused: is `shotfield serve` running") as err:
        ShotfieldServer(f"http://127.0.0.1:{port}", "t", timeout=2).version()
    assert err.value.status is None

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(ServerError, match="no answer within 0.5 s"):
            ShotfieldServer(f"http://127.0.0.1:{silent.getsockname()[1]}", "t", timeout=0.5).version()
