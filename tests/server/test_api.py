"""The HTTP API of a real `shotfield serve` on loopback: tokens, bad names and paths, limits, bad footage,
unknown ids. Every refusal must be a clean 4xx with a {"detail": ...} sentence, and change nothing."""
from __future__ import annotations

import io
import os
import stat
import zipfile

import pytest

from .conftest import ServerError, ServerProcess, wait_for_state


def listing(root):
    """Every path under the server's uploads/ and jobs/ (to prove a refused request changed nothing)."""
    return sorted(str(p.relative_to(root)) for sub in ("uploads", "jobs") for p in (root / sub).rglob("*"))


@pytest.fixture(scope="module")
def done_job(server, small_video):
    client = server.client()
    job_id = client.create_job(client.upload(str(small_video)), {"stages": ["ingest"]})
    assert wait_for_state(client, job_id)["state"] == "done"
    return job_id


def test_openapi_is_served_and_the_token_is_private(server):
    status, schema, _ = server.http("GET", "/openapi.json", token=None)
    assert status == 200
    assert {"/v1/jobs", "/v1/uploads", "/v1/jobs/{job_id}/download", "/v1/jobs/{job_id}/events"} <= set(schema["paths"])
    token_file = server.root / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.root.stat().st_mode) == 0o700
    assert len(server.token) >= 40
    assert server.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("token", [None, "wrong-token", "", " "])
def test_missing_or_wrong_token_is_401_and_changes_nothing(server, small_video, done_job, token):
    sent = {"Authorization": f"Bearer {token}"} if token is not None else {}
    upload_id = server.client().upload(str(small_video))  # a real upload the attacker aims at
    before = listing(server.root)
    requests = [("GET", "/v1/jobs", None), ("GET", f"/v1/jobs/{done_job}", None),
                ("POST", "/v1/uploads", {"name": "x.mp4", "size": 10}),
                ("PUT", f"/v1/uploads/{upload_id}?offset=0", b"0123456789"),
                ("POST", "/v1/jobs", {"upload_id": upload_id}),
                ("POST", f"/v1/jobs/{done_job}/resume", None), ("DELETE", f"/v1/jobs/{done_job}", None),
                ("DELETE", f"/v1/uploads/{upload_id}", None), ("GET", f"/v1/jobs/{done_job}/download", None),
                ("GET", f"/v1/jobs/{done_job}/files/job.json", None), ("GET", "/v1/version", None)]
    for method, path, body in requests:
        status, data, headers = server.http(method, path, body, token=None, headers=sent)
        assert status == 401, (method, path, status, data)
        assert "token" in data["detail"] and headers["WWW-Authenticate"] == "Bearer"
    assert listing(server.root) == before
    assert server.client().status(done_job)["state"] == "done"
    assert server.http("DELETE", f"/v1/uploads/{upload_id}")[0] == 204


@pytest.mark.parametrize("name", ["../evil.mp4", "../../etc/passwd", "a/b.mp4", "..\\evil.mp4", "/abs.mp4", "..",
                                  ".hidden.mp4", "evil.sh", "frames.tar", "nul\x00.mp4", "bell\x07.mp4", ""])
def test_upload_names_that_are_not_plain_files_are_400(server, name):
    before = listing(server.root)
    status, data, _ = server.http("POST", "/v1/uploads", {"name": name, "size": 100})
    assert status in (400, 422), (name, status, data)
    assert isinstance(data["detail"], (str, list)) and data["detail"]
    assert listing(server.root) == before


def test_odd_characters_are_replaced_not_trusted(server):
    status, data, _ = server.http("POST", "/v1/uploads", {"name": "my shot (v2) é;rm -rf.MP4", "size": 10})
    assert status == 201
    assert data["name"] == "my shot _v2_ __rm -rf.mp4"
    assert server.http("DELETE", f"/v1/uploads/{data['id']}")[0] == 204


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _upload_bytes(server, name: str, data: bytes):
    status, upload, _ = server.http("POST", "/v1/uploads", {"name": name, "size": len(data)})
    assert status == 201, upload
    status, reply, _ = server.http("PUT", f"/v1/uploads/{upload['id']}?offset=0", data,
                                   headers={"Content-Type": "application/octet-stream"})
    assert status == 200 and reply["received"] == len(data), reply
    return upload["id"], server.http("POST", f"/v1/uploads/{upload['id']}/complete")


@pytest.mark.parametrize("member", ["../escape.png", "/abs/escape.png", "frames/../../escape.png", "C:/escape.png"])
def test_zip_members_that_climb_out_are_refused(server, tmp_path, member):
    upload_id, (status, data, _) = _upload_bytes(server, "plates.zip", _zip({member: b"x", "a.png": b"y"}))
    assert status == 422 and "not allowed" in data["detail"], data
    assert not (server.root / "escape.png").exists() and not (server.root.parent / "escape.png").exists()
    assert not (server.root / "uploads" / upload_id).exists()


def test_corrupt_video_and_images_are_422_and_leave_nothing(server):
    upload_id, (status, data, _) = _upload_bytes(server, "clip.mp4", os.urandom(20000))
    assert status == 422 and data["detail"].startswith("clip.mp4: cannot decode this video"), data
    assert str(server.root) not in data["detail"]  # the server's folders are not the client's business
    assert not (server.root / "uploads" / upload_id).exists()
    _, (status, data, _) = _upload_bytes(server, "plates.zip", _zip({"a.png": b"not a png", "b.png": b"nor this"}))
    assert status == 422 and "cannot read this image" in data["detail"], data
    _, (status, data, _) = _upload_bytes(server, "plates.zip", b"PK\x03\x04 this is no zip")
    assert status == 422 and "zip" in data["detail"], data


def test_unknown_and_malformed_ids_are_404(server):
    for method, path in [("GET", "/v1/jobs/0123456789abcdef"), ("GET", "/v1/jobs/not-an-id"),
                         ("GET", "/v1/jobs/..%2F..%2Ftoken"), ("POST", "/v1/jobs/0123456789abcdef/cancel"),
                         ("DELETE", "/v1/jobs/0123456789abcdef"), ("GET", "/v1/jobs/0123456789abcdef/download"),
                         ("GET", "/v1/jobs/0123456789abcdef/progress"), ("GET", "/v1/uploads/0123456789abcdef"),
                         ("POST", "/v1/uploads/../../token/complete"), ("DELETE", "/v1/uploads/..")]:
        status, data, _ = server.http(method, path)
        assert status == 404, (method, path, status, data)
    status, data, _ = server.http("POST", "/v1/jobs", {"upload_id": "0123456789abcdef"})
    assert status == 404 and "no upload" in data["detail"]


@pytest.mark.parametrize("path", ["../server.json", "..%2Fserver.json", "%2e%2e/server.json", "frames/../../server.json",
                                  "/etc/passwd", "%2Fetc%2Fpasswd", "../footage/clip.mp4", "../../token", ".job.lock"])
def test_single_file_downloads_stay_inside_the_job(server, done_job, path):
    status, data, _ = server.http("GET", f"/v1/jobs/{done_job}/files/{path}")
    assert status in (400, 404), (path, status)
    assert b"root:" not in (data if isinstance(data, bytes) else b"")


def test_zip_download_holds_the_job_folder_only(server, done_job, tmp_path):
    (server.root / "jobs" / done_job / "job" / "evil-link").symlink_to(server.root / "token")
    status, data, headers = server.http("GET", f"/v1/jobs/{done_job}/download")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "job.json" in names and "frames/00000.png" in names
    assert not [n for n in names if n.startswith(("/", "..")) or "server.json" in n or "token" in n
                or "footage" in n or n.endswith(".job.lock") or "evil-link" in n], names
    status, one, _ = server.http("GET", f"/v1/jobs/{done_job}/files/frames/00000.png")
    assert status == 200 and one[:4] == b"\x89PNG"
    status, files, _ = server.http("GET", f"/v1/jobs/{done_job}/files")
    assert {f["path"] for f in files["files"]} == set(names)


@pytest.mark.parametrize("settings, needle", [({"quality": "ultra"}, "quality"), ({"frames": "10:5"}, "frames"),
                                              ({"stages": ["bogus"]}, "bogus"), ({"remove": "/etc"}, "remove"),
                                              ({"long_side": 3}, "long_side"), ({"secret": 1}, "secret"),
                                              ({"flow_gaps": [0]}, "flow gaps")])
def test_bad_settings_are_422_before_a_job_exists(server, small_video, settings, needle):
    client = server.client()
    upload_id = client.upload(str(small_video))
    jobs = len(client.list_jobs())
    with pytest.raises(ServerError) as err:
        client.create_job(upload_id, settings)
    assert err.value.status == 422 and needle in str(err.value), str(err.value)
    assert len(client.list_jobs()) == jobs
    assert server.http("GET", f"/v1/uploads/{upload_id}")[1]["state"] == "complete"  # still there to retry


def test_upload_resumes_from_what_the_server_has(server, small_video):
    data = small_video.read_bytes()
    status, up, _ = server.http("POST", "/v1/uploads", {"name": "clip.mp4", "size": len(data)})
    put = lambda offset, chunk: server.http("PUT", f"/v1/uploads/{up['id']}?offset={offset}", chunk,  # noqa: E731
                                            headers={"Content-Type": "application/octet-stream"})
    assert put(0, data[:1000])[1]["received"] == 1000
    status, reply, headers = put(0, data[:1000])  # a retry that did not ask where to go on
    assert status == 409 and headers["X-Upload-Offset"] == "1000" and "offset 1000" in reply["detail"]
    assert server.http("POST", f"/v1/uploads/{up['id']}/complete")[0] == 409  # not all there yet
    assert server.http("GET", f"/v1/uploads/{up['id']}")[1]["received"] == 1000
    assert put(1000, data[1000:])[1]["received"] == len(data)
    status, done, _ = server.http("POST", f"/v1/uploads/{up['id']}/complete")
    assert status == 200 and done["footage"]["frames"] == 10


def test_limits_on_upload_size_job_count_and_request_rate(tmp_path, small_video):
    srv = ServerProcess(tmp_path / "root", "--max-upload-mb", "0.05", "--max-jobs", "1", "--rate-limit", "5").start()
    try:
        status, data, _ = srv.http("POST", "/v1/uploads", {"name": "big.mp4", "size": 10 ** 9})
        assert status == 413 and "up to" in data["detail"]
        status, up, _ = srv.http("POST", "/v1/uploads", {"name": "small.mp4", "size": 100})
        status, data, _ = srv.http("PUT", f"/v1/uploads/{up['id']}?offset=0", b"x" * 5000)
        assert status == 413 and srv.http("GET", f"/v1/uploads/{up['id']}")[1]["received"] == 0
        status, data, _ = srv.http("POST", "/v1/jobs", {"upload_id": "x" * 300_000})
        assert status == 413  # JSON bodies are small
        client = srv.client()
        client.create_job(client.upload(str(small_video)), {"stages": ["ingest"]})
        with pytest.raises(ServerError) as err:
            client.create_job(client.upload(str(small_video)), {"stages": ["ingest"]})
        assert err.value.status == 429 and "limit" in str(err.value)
        codes = [srv.http("GET", "/v1/jobs")[0] for _ in range(40)]
        assert 429 in codes and codes[0] == 200
    finally:
        srv.stop()
