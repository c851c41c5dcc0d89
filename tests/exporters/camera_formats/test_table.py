"""JSON and CSV tables: exact round trips; every column documented; the derived columns agree with the
matrix and the intrinsics."""
import csv
import json
import math

import numpy as np

from exporters.camera_formats import table
from exporters.camera_formats._common import matrix_from_quat_wxyz

from .conftest import assert_cameras_match


def test_json_round_trip(tmp_path, moving_cameras):
    path = table.write_table_json(tmp_path / "cameras.json", moving_cameras)
    data = json.loads(path.read_text())
    assert data["format"] == "shotfield-camera-table" and data["convention"] == "opencv"
    assert list(data["rows"][0]) == list(table.COLUMNS) == list(data["columns"])
    assert_cameras_match(table.read_table_json(path), moving_cameras, rtol=1e-15)


def test_csv_round_trip(tmp_path, moving_cameras):
    moving_cameras.frames[2].time = 2.5
    path = table.write_table_csv(tmp_path / "cameras.csv", moving_cameras)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(table.COLUMNS)
    assert len(rows) == len(moving_cameras.frames)
    back = table.read_table_csv(path)
    assert_cameras_match(back, moving_cameras, rtol=1e-15)
    assert [f.time for f in back.frames][1:4] == [None, 2.5, None]


def test_derived_columns(moving_cameras):
    for row, f in zip(table.table_rows(moving_cameras), moving_cameras.frames):
        R = matrix_from_quat_wxyz([row["qw"], row["qx"], row["qy"], row["qz"]])
        np.testing.assert_allclose(R, f.world_from_camera[:3, :3], atol=1e-12)
        np.testing.assert_allclose([row["px"], row["py"], row["pz"]], f.world_from_camera[:3, 3], atol=0)
        assert row["qw"] >= 0
        assert math.isclose(row["lens_mm"], f.K[0, 0] * 36.0 / 640)
        # The horizontal angle from the lens in mm and the sensor, independently of fx:
        assert math.isclose(row["hfov_deg"], math.degrees(2 * math.atan(36.0 / 2 / row["lens_mm"])))
        assert math.isclose(row["vfov_deg"], math.degrees(2 * math.atan(360 / 2 / f.K[1, 1])))
