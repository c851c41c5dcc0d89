"""Stage `ingest`: the kinds of footage it reads, and a clear one-line error for each kind of bad input."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from backend.footage import linear_to_srgb8, probe_footage
from exporters.exr import write_exr
from exporters.job_manifest import read_manifest

from .conftest import shotfield, textured_frames, write_sequence, write_video


def _ingest(footage, job, *extra):
    return shotfield("run", footage, "--job", job, "--stages", "ingest", "--no-progress", *extra)


def test_video_pattern_and_hash_pattern_read_the_same_frames(tmp_path):
    frames = textured_frames(n=6)
    folder = write_sequence(tmp_path / "seq", frames)
    for footage in (folder / "shot.%04d.png", folder / "shot.####.png", folder):
        job = tmp_path / f"job{abs(hash(str(footage)))}"
        assert _ingest(footage, job).returncode == 0
        first = cv2.imread(str(job / "frames" / "00000.png"))
        np.testing.assert_array_equal(first, frames[0])  # PNG in, PNG out: lossless
        assert read_manifest(job)["frames"]["count"] == 6
    video = write_video(tmp_path / "clip.mp4", frames)
    assert _ingest(video, tmp_path / "jv").returncode == 0
    decoded = cv2.imread(str(tmp_path / "jv" / "frames" / "00005.png")).astype(float)
    assert np.abs(decoded - frames[5]).mean() < 8  # mp4v is lossy, but it is the same picture


def test_exr_and_16bit_tiff_sequences(tmp_path):
    linear = np.linspace(0, 1, 32 * 48, dtype=np.float32).reshape(32, 48)
    exr_dir = tmp_path / "exr"
    exr_dir.mkdir()
    for i in range(3):
        write_exr(exr_dir / f"plate.{i:04d}.exr", {"R": linear, "G": linear * 0.5, "B": linear * 0.25})
    assert _ingest(exr_dir, tmp_path / "je").returncode == 0
    m = read_manifest(tmp_path / "je")
    assert m["footage"]["linear"] is True
    rgb = cv2.cvtColor(cv2.imread(str(tmp_path / "je" / "frames" / "00001.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(rgb[..., 0], linear_to_srgb8(linear))

    tif_dir = tmp_path / "tif"
    tif_dir.mkdir()
    for i in range(2):
        cv2.imwrite(str(tif_dir / f"f{i}.tif"), np.full((20, 30, 3), 257 * 200, np.uint16))
    assert _ingest(tif_dir, tmp_path / "jt").returncode == 0
    assert cv2.imread(str(tmp_path / "jt" / "frames" / "00000.png"))[0, 0, 0] == 200


def test_srgb_transfer_function_known_values():
    out = linear_to_srgb8(np.array([0.0, 0.0031308, 0.18, 1.0, 4.0]))
    np.testing.assert_array_equal(out, [0, 10, 118, 255, 255])  # 0.0031308 -> 0.04045 -> 10.3


def _bad_inputs(tmp_path):
    frames = textured_frames(n=3)
    cases = {}
    cases["missing file"] = (tmp_path / "nope.mp4", "no such file")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    cases["corrupt video"] = (corrupt, "cannot decode this video")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases["zero frames"] = (empty, "no images")
    one = write_sequence(tmp_path / "one", frames[:1])
    cases["one frame"] = (one, "only one image")
    one_frame_video = write_video(tmp_path / "single.mp4", frames[:1])
    cases["one-frame video"] = (one_frame_video, "1 frame")
    mixed = write_sequence(tmp_path / "mixed", frames)
    cv2.imwrite(str(mixed / "shot.0004.png"), np.zeros((10, 10, 3), np.uint8))
    cases["mixed sizes"] = (mixed, "same size")
    stray = write_sequence(tmp_path / "stray", frames)
    (stray / "notes.txt").write_text("camera notes")
    cases["non-image file"] = (stray, "notes.txt")
    broken = write_sequence(tmp_path / "broken", frames)
    (broken / "shot.0002.png").write_bytes(b"not a png at all")
    cases["corrupt image"] = (broken, "shot.0002.png")
    return cases


@pytest.mark.parametrize("case", ["missing file", "corrupt video", "zero frames", "one frame", "one-frame video",
                                  "mixed sizes", "non-image file", "corrupt image"])
def test_bad_footage_fails_clearly_and_keeps_what_was_there(tmp_path, image_folder, case):
    job = tmp_path / "job"
    assert shotfield("run", image_folder, "--job", job, "--stages", "ingest,flow", "--no-progress").returncode == 0
    before = sorted(p.name for p in (job / "frames").iterdir())
    footage, needle = _bad_inputs(tmp_path)[case]

    r = _ingest(footage, job)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shotfield: "), r.stderr
    assert needle in lines[0] and "Traceback" not in r.stderr
    m = read_manifest(job)
    assert m["stages"]["ingest"]["status"] == "failed" and needle in m["stages"]["ingest"]["error"]
    # Nothing earlier lost: the previous frames and flow are all still there.
    assert sorted(p.name for p in (job / "frames").iterdir()) == before
    assert (job / "flow" / "flow.json").exists() and (job / "flow" / "gap_001" / "forward.npy").exists()


def test_unwritable_job_folder(tmp_path, image_folder):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = _ingest(image_folder, blocker / "job")
    assert r.returncode == 1
    assert "cannot write to the job folder" in r.stderr and str(blocker / "job") in r.stderr


def test_a_single_image_is_not_a_shot(tmp_path):
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), textured_frames(n=1)[0])
    with pytest.raises(Exception, match="single image is not a shot"):
        probe_footage(path)
