"""exporters/ply.py: what the backend writes, the add-on reads back exactly (and trimesh agrees)."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from exporters import ply


def test_written_points_read_back_exactly_and_open_in_trimesh(tmp_path):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3)).astype(np.float32)
    colours = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    ply.write_points(tmp_path / "p.ply", points, colours)
    got_points, got_colours = ply.points_and_colours(tmp_path / "p.ply")
    np.testing.assert_array_equal(got_points, points)
    np.testing.assert_array_equal(got_colours, colours)
    cloud = trimesh.load(tmp_path / "p.ply")  # an independent reader
    np.testing.assert_allclose(cloud.vertices, points, rtol=1e-6)
    np.testing.assert_array_equal(cloud.colors[:, :3], colours)


def test_points_without_colours(tmp_path):
    ply.write_points(tmp_path / "p.ply", np.zeros((3, 3)))
    points, colours = ply.points_and_colours(tmp_path / "p.ply")
    assert points.shape == (3, 3) and colours is None


def test_bad_files_name_themselves(tmp_path):
    (tmp_path / "bad.ply").write_bytes(b"not a ply")
    with pytest.raises(ply.PlyError, match="bad.ply"):
        ply.read_vertices(tmp_path / "bad.ply")
