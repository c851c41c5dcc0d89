"""export_cameras: every format lands where the layout says, atomically (no temporary files left),
and reads back to the same cameras."""
import json

import numpy as np
import pytest

from exporters.camera_formats import FORMATS, colmap_text, export_cameras, nerfstudio, nuke_chan, table

from .conftest import HEIGHT, WIDTH, assert_cameras_match, make_cameras


def test_all_formats(tmp_path, moving_cameras):
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.normal(size=(20, 3)), rng.integers(0, 256, size=(20, 3))])
    out = export_cameras(moving_cameras, tmp_path / "export", points=points, fps=25.0)
    rel = sorted(p.relative_to(tmp_path / "export").as_posix() for p in out.paths)
    assert rel == ["colmap/cameras.txt", "colmap/images.txt", "colmap/points3D.txt", "nerfstudio/transforms.json",
                   "nuke/camera.chan", "table/cameras.csv", "table/cameras.json", "usd/camera.usda"]
    assert list(out.files) == list(FORMATS)
    every_file = [p for p in (tmp_path / "export").rglob("*") if p.is_file()]
    assert sorted(every_file) == sorted(out.paths)  # nothing half-written or temporary left behind

    assert_cameras_match(colmap_text.read_colmap_text(tmp_path / "export/colmap"), moving_cameras, rtol=1e-12)
    np.testing.assert_array_equal(colmap_text.read_colmap_points(tmp_path / "export/colmap").xyz, points[:, :3])
    assert_cameras_match(nerfstudio.read_transforms(out.files["nerfstudio"][0]), moving_cameras, rtol=1e-12)
    assert_cameras_match(nuke_chan.read_chan(out.files["nuke"][0], WIDTH, HEIGHT), moving_cameras, rtol=1e-9,
                         check_K=False)
    assert_cameras_match(table.read_table_json(out.files["json"][0]), moving_cameras, rtol=1e-15)
    assert_cameras_match(table.read_table_csv(out.files["csv"][0]), moving_cameras, rtol=1e-15)
    pytest.importorskip("pxr")
    from exporters.camera_formats import usd_camera

    assert_cameras_match(usd_camera.read_usd_camera(out.files["usd"][0]), moving_cameras, rtol=1e-6)


def test_some_formats_and_frames_dir(tmp_path):
    job = tmp_path / "job"
    (job / "frames").mkdir(parents=True)
    out = export_cameras(make_cameras(frames=3), job / "export", formats=("nerfstudio",), frames_dir=job / "frames")
    data = json.loads(out.files["nerfstudio"][0].read_text())
    assert data["frames"][1]["file_path"] == "../../frames/00001.png"
    assert sorted(p.name for p in (job / "export").rglob("*") if p.is_file()) == ["transforms.json"]


def test_unknown_format(tmp_path, moving_cameras):
    with pytest.raises(ValueError, match="unknown camera formats"):
        export_cameras(moving_cameras, tmp_path, formats=("fbx",))
    assert not any(tmp_path.iterdir())
