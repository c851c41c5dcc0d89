from __future__ import annotations

import json

import pytest

from exporters import atomic, job_manifest


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "cameras.json"
    atomic.write_json(path, {"v": 1})
    with pytest.raises(ZeroDivisionError):
        with atomic.atomic_path(path) as tmp:
            tmp.write_text("half")
            1 / 0
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["cameras.json"]


def test_progress_polling_reads_whole_lines_only(tmp_path):
    job_manifest.append_progress(tmp_path, "flow", 0.25, "pair 1")
    events, offset = job_manifest.read_progress(tmp_path)
    assert [e["fraction"] for e in events] == [0.25]
    with open(tmp_path / job_manifest.PROGRESS, "a") as f:
        f.write('{"time": 1, "stage": "flow", "frac')  # a writer mid-line
    assert job_manifest.read_progress(tmp_path, offset) == ([], offset)
    with open(tmp_path / job_manifest.PROGRESS, "a") as f:
        f.write('tion": 0.5, "message": ""}\n')
    events, _ = job_manifest.read_progress(tmp_path, offset)
    assert events[0]["fraction"] == 0.5


def test_manifest_checks(tmp_path):
    with pytest.raises(job_manifest.JobFolderError, match="no job manifest"):
        job_manifest.read_manifest(tmp_path)
    (tmp_path / "job.json").write_text("{not json")
    with pytest.raises(job_manifest.JobFolderError, match="cannot read"):
        job_manifest.read_manifest(tmp_path)
    m = job_manifest.new_manifest()
    m["stages"]["flow"] = dict(job_manifest.empty_stage_record(), status="exploded")
    job_manifest.write_manifest(tmp_path, m)
    with pytest.raises(job_manifest.JobFolderError, match="unknown status"):
        job_manifest.read_manifest(tmp_path)
    m["stages"]["flow"]["status"] = "done"
    job_manifest.write_manifest(tmp_path, m)
    assert job_manifest.read_manifest(tmp_path)["stages"]["flow"]["status"] == "done"
