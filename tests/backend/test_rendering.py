"""`shotfield render`'s shared part (backend/rendering.py): argument checks and the times of the cameras.
Rendering itself is tested with each source (tests/backend/field, tests/backend/layers)."""
from __future__ import annotations

import json

import numpy as np

from backend.rendering import camera_times
from exporters.cameras_json import cameras_from_dict

from .conftest import shotfield


def _cameras(times):
    frames = [{"index": i, "K": np.eye(3).tolist(), "world_from_camera": np.eye(4).tolist(),
               **({"time": t} if t is not None else {})} for i, t in enumerate(times)]
    return {"convention": "opencv", "width": 8, "height": 6, "frames": frames}


def test_a_camera_without_time_renders_at_its_index():
    cams = cameras_from_dict(_cameras([None, 2.5, None]))
    assert camera_times(cams).tolist() == [0.0, 2.5, 2.0]


def test_render_refuses_a_folder_that_is_no_job(tmp_path):
    (tmp_path / "cams.json").write_text(json.dumps(_cameras([None])))
    r = shotfield("render", tmp_path / "nojob", "--cameras", tmp_path / "cams.json", "--out", tmp_path / "out")
    assert r.returncode == 2 and "not a job folder" in r.stderr


def test_render_names_a_bad_cameras_file(tmp_path):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "job.json").write_text("{}")
    (tmp_path / "cams.json").write_text('{"frames": [{"index": 0}]}')
    r = shotfield("render", tmp_path / "job", "--cameras", tmp_path / "cams.json", "--out", tmp_path / "out")
    assert r.returncode == 2 and "cams.json" in r.stderr
    assert not (tmp_path / "out").exists()
