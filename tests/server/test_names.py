"""backend/server/names.py and archive.py without a server: what a client-supplied name or path may be,
and what goes into a job's zip."""
from __future__ import annotations

import io
import os
import zipfile

import pytest

from backend.server.archive import extract_images, zip_folder
from backend.server.names import BadName, file_in_folder, is_id, new_id, safe_upload_name, zip_member_name


def test_ids_are_server_made_hex():
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100 and all(is_id(i) for i in ids)
    assert not any(is_id(s) for s in ("", "..", "0123456789abcde", "0123456789ABCDEF", "0123456789abcdef/", "../x"))


@pytest.mark.parametrize("name, expected", [("shot.MP4", ("shot.mp4", "video")), ("plates.zip", ("plates.zip", "images")),
                                            ("a b;c.mov", ("a b_c.mov", "video")), ("x" * 300 + ".mkv", ("x" * 116 + ".mkv", "video"))])
def test_upload_names_become_plain_names(name, expected):
    assert safe_upload_name(name) == expected


@pytest.mark.parametrize("name", ["../a.mp4", "a/b.mp4", "a\\b.mp4", ".a.mp4", "..", "a.exe", "a", "a.mp4\x00.zip", "\n.mp4"])
def test_upload_names_that_are_refused(name):
    with pytest.raises(BadName):
        safe_upload_name(name)


def test_zip_member_names():
    assert zip_member_name("shot/0001.png") == "0001.png"
    assert zip_member_name("shot/") is None and zip_member_name("__MACOSX/._0001.png") is None
    assert zip_member_name(".DS_Store") is None
    for bad in ("../0001.png", "/0001.png", "a/../../0001.png", "C:/0001.png", "a\\0001.png", "notes.txt"):
        with pytest.raises(BadName):
            zip_member_name(bad)


def test_file_in_folder_never_leaves_it(tmp_path):
    job = tmp_path / "job"
    (job / "frames").mkdir(parents=True)
    (job / "frames" / "00000.png").write_bytes(b"png")
    (tmp_path / "secret").write_text("secret")
    (job / "link").symlink_to(tmp_path / "secret")
    (job / ".job.lock").write_text("1")
    assert file_in_folder(job, "frames/00000.png") == (job / "frames" / "00000.png").resolve()
    for bad in ("../secret", "/etc/passwd", "frames/../../secret", "link"):
        with pytest.raises(BadName):
            file_in_folder(job, bad)
    for missing in ("frames", "nope.png", ".job.lock"):
        with pytest.raises(FileNotFoundError):
            file_in_folder(job, missing)


def test_zip_of_a_job_holds_its_regular_files_only(tmp_path):
    job = tmp_path / "job"
    (job / "frames").mkdir(parents=True)
    (job / "frames" / "00000.png").write_bytes(os.urandom(3 << 20))  # larger than a chunk
    (job / "job.json").write_text("{}")
    (job / ".job.lock").write_text("1")
    (job / "frames" / ".00001.abc.tmp.png").write_bytes(b"half")
    (tmp_path / "outside").write_text("x")
    (job / "escape").symlink_to(tmp_path / "outside")
    data = b"".join(zip_folder(job))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == ["frames/00000.png", "job.json"]
        assert zf.read("frames/00000.png") == (job / "frames" / "00000.png").read_bytes()
        assert zf.testzip() is None


def test_extract_images_refuses_links_clashes_and_bombs(tmp_path):
    def make(members, links=()):
        path = tmp_path / f"z{len(list(tmp_path.iterdir()))}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
            for name in links:
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o120777 << 16
                zf.writestr(info, "/etc/passwd")
        return path

    assert extract_images(make({"s/1.png": b"a", "s/2.png": b"b"}), tmp_path / "ok", 100) == 2
    assert sorted(os.listdir(tmp_path / "ok")) == ["1.png", "2.png"]
    for zip_path, needle in ((make({"1.png": b"a"}, links=["2.png"]), "links"),
                             (make({"a/1.png": b"a", "b/1.png": b"b"}), "same file name"),
                             (make({"1.png": b"\0" * 10_000}), "limit")):
        with pytest.raises(BadName, match=needle):
            extract_images(zip_path, tmp_path / "out", 1000)
