"""exporters/cameras_json.py: a lossless round trip, and a CamerasFileError naming the file for every
malformed input."""
import json

import numpy as np
import pytest

from exporters.cameras_json import CameraFrame, Cameras, CamerasFileError, read_cameras, write_cameras


def sample_cameras() -> Cameras:
    rng = np.random.default_rng(0)
    frames = []
    for i in (0, 1, 3):  # frame 2 was not registered by the solve
        pose = np.eye(4)
        pose[:3, :3] = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        pose[:3, 3] = rng.normal(size=3)
        K = np.array([[300.0 + i, 0, 160.25], [0, 301.0, 119.75], [0, 0, 1]])
        frames.append(CameraFrame(i, K, pose, time=None if i else 0.5))
    return Cameras(320, 240, frames, extra={"model": "PINHOLE"})


def test_round_trip_is_exact(tmp_path):
    cameras = sample_cameras()
    path = tmp_path / "camera" / "cameras.json"
    write_cameras(path, cameras)
    back = read_cameras(path)

    assert (back.width, back.height, back.extra) == (320, 240, {"model": "PINHOLE"})
    assert [f.index for f in back.frames] == [0, 1, 3]
    assert [f.time for f in back.frames] == [0.5, None, None]
    np.testing.assert_array_equal(back.K, cameras.K)  # JSON floats round-trip exactly
    np.testing.assert_array_equal(back.world_from_camera, cameras.world_from_camera)
    assert back.K.shape == (3, 3, 3) and back.world_from_camera.shape == (3, 4, 4)
    assert json.loads(path.read_text())["convention"] == "opencv"
    assert [p.name for p in path.parent.iterdir()] == ["cameras.json"]  # no temporary file left


def test_index_defaults_to_position(tmp_path):
    path = tmp_path / "cameras.json"
    frame = {"K": np.eye(3).tolist(), "world_from_camera": np.eye(4).tolist()}
    path.write_text(json.dumps({"width": 4, "height": 3, "frames": [frame, frame]}))
    assert [f.index for f in read_cameras(path).frames] == [0, 1]


def test_empty_cameras_have_stackable_shapes():
    cameras = Cameras(4, 3)
    assert cameras.K.shape == (0, 3, 3) and cameras.world_from_camera.shape == (0, 4, 4)


GOOD_FRAME = {"index": 0, "K": np.eye(3).tolist(), "world_from_camera": np.eye(4).tolist()}


@pytest.mark.parametrize("text, problem", [
    ("{oops", "cannot read JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"convention": "opengl", "width": 4, "height": 3, "frames": []}), "convention"),
    (json.dumps({"height": 3, "frames": []}), "width"),
    (json.dumps({"width": 0, "height": 3, "frames": []}), "positive"),
    (json.dumps({"width": 4, "height": 3, "frames": [{"K": np.eye(3).tolist()}]}), "frames[0]"),
    (json.dumps({"width": 4, "height": 3, "frames": [GOOD_FRAME, {**GOOD_FRAME, "K": [[1, 0], [0, 1]]}]}), "frames[1].K"),
    (json.dumps({"width": 4, "height": 3, "frames": [{**GOOD_FRAME, "K": "abc"}]}), "frames[0].K"),
    # Python's json accepts NaN; a camera must not.
    ('{"width": 4, "height": 3, "frames": [{"K": [[NaN,0,0],[0,1,0],[0,0,1]], "world_from_camera": '
     + json.dumps(np.eye(4).tolist()) + "}]}", "finite"),
])
def test_malformed_files_name_the_file(tmp_path, text, problem):
    path = tmp_path / "shot_cameras.json"
    path.write_text(text)
    with pytest.raises(CamerasFileError) as info:
        read_cameras(path)
    assert "shot_cameras.json" in str(info.value) and problem in str(info.value)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(CamerasFileError, match=r"nothere\.json: file not found"):
        read_cameras(tmp_path / "nothere.json")
