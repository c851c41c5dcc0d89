"""exporters/tracks_npz.py: tracks.npz and query files round-trip, and bad files are refused with a message."""
import json

import numpy as np
import pytest

from exporters import tracks_npz


def sample_tracks(frames=5, n=4) -> tracks_npz.Tracks:
    rng = np.random.default_rng(0)
    queries = np.stack([rng.integers(0, frames, n), rng.uniform(0, 64, n), rng.uniform(0, 48, n)], 1)
    xy = rng.uniform(0, 64, (frames, n, 2))
    visible = rng.random((frames, n)) > 0.3
    world = rng.normal(size=(frames, n, 3))
    world[:, 0] = np.nan   # unknown world position
    return tracks_npz.Tracks(queries, xy, visible, world, extra={"query_object": np.arange(n, dtype=np.int32)})


def test_tracks_round_trip(tmp_path):
    tracks = sample_tracks()
    path = tmp_path / "tracks" / "tracks.npz"
    tracks_npz.write_tracks(path, tracks)
    back = tracks_npz.read_tracks(path)
    np.testing.assert_allclose(back.queries, tracks.queries, rtol=1e-6)
    np.testing.assert_allclose(back.xy, tracks.xy, rtol=1e-6)
    np.testing.assert_array_equal(back.visible, tracks.visible)
    np.testing.assert_allclose(back.world, tracks.world, rtol=1e-6)     # NaN == NaN here
    np.testing.assert_array_equal(back.extra["query_object"], np.arange(4))
    assert back.xy.dtype == np.float32 and back.visible.dtype == bool and (back.frames, back.count) == (5, 4)
    assert not list(path.parent.glob(".*tmp*"))   # written atomically, no temporaries left


@pytest.mark.parametrize("field, value, message", [
    ("queries", np.zeros((4, 2)), "queries must be"),
    ("xy", np.zeros((5, 3, 2)), "xy must be"),
    ("visible", np.ones((5, 4)), "bool"),
    ("world", np.zeros((5, 4, 2)), "world must be"),
    ("queries", np.array([[9, 1, 1]] * 4, float), "query frames"),
])
def test_inconsistent_tracks_are_refused(tmp_path, field, value, message):
    tracks = sample_tracks()
    setattr(tracks, field, value)
    with pytest.raises(tracks_npz.TracksFileError, match=message):
        tracks_npz.write_tracks(tmp_path / "t.npz", tracks)


def test_missing_or_incomplete_files(tmp_path):
    with pytest.raises(tracks_npz.TracksFileError, match="no such"):
        tracks_npz.read_tracks(tmp_path / "none.npz")
    np.savez(tmp_path / "partial.npz", queries=np.zeros((1, 3)))
    with pytest.raises(tracks_npz.TracksFileError, match="missing array"):
        tracks_npz.read_tracks(tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(tracks_npz.TracksFileError, match="readable"):
        tracks_npz.read_tracks(tmp_path / "junk.npz")


def test_queries_json_and_npy(tmp_path):
    rows = [[0, 10.5, 20.5], [3, 1.0, 2.0]]
    tracks_npz.write_queries(tmp_path / "q.json", rows)
    assert json.loads((tmp_path / "q.json").read_text()) == rows
    np.testing.assert_array_equal(tracks_npz.read_queries(tmp_path / "q.json", frames=4, width=32, height=24), rows)
    np.save(tmp_path / "q.npy", np.array(rows))
    np.testing.assert_array_equal(tracks_npz.read_queries(tmp_path / "q.npy"), rows)


@pytest.mark.parametrize("content, message", [
    ("[]", "no query points"),
    ("[[0, 1]]", "rows of"),
    ("{not json", "JSON list"),
    ("[[7, 1, 1]]", "whole numbers in 0..4"),
    ("[[0.5, 1, 1]]", "whole numbers"),
    ("[[0, 40, 1]]", "inside the 32x24 frame"),
])
def test_bad_queries_are_refused(tmp_path, content, message):
    (tmp_path / "q.json").write_text(content)
    with pytest.raises(tracks_npz.TracksFileError, match=message):
        tracks_npz.read_queries(tmp_path / "q.json", frames=5, width=32, height=24)
