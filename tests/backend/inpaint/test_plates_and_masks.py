"""Writing plates at the footage size (original pixels outside the mask, EXR kept linear) and reading user
masks (naming, sizes, alpha), without running the stage."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from backend.errors import ShotfieldError
from backend.inpaint import masks, plates
from backend.inpaint.fill import feather_alpha
from exporters.exr import read_exr, write_exr


def _scene(n=3, w=32, h=24):
    rng = np.random.default_rng(0)
    working = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    removed = np.zeros((n, h, w), bool)
    removed[:, 8:16, 10:20] = True
    fill = working.copy()
    fill[removed] = (10, 200, 30)
    alpha = np.stack([feather_alpha(m, np.ones_like(m), 2) for m in removed])
    composed = np.round(alpha[..., None] * fill + (1 - alpha[..., None]) * working).astype(np.uint8)
    return working, removed, fill, alpha, composed


def test_full_size_png_plates_keep_the_footage_outside_the_mask(tmp_path):
    working, removed, fill, alpha, composed = _scene()
    footage = tmp_path / "footage"
    footage.mkdir()
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)  # the source is twice the working size
    for i, f in enumerate(big):
        cv2.imwrite(str(footage / f"s.{i:04d}.png"), f[..., ::-1])
    manifest = {"footage": {"source": str(footage), "kind": "images", "linear": False},
                "frames": {"source_indices": [0, 1, 2], "count": 3}}
    job = tmp_path / "job"
    job.mkdir()
    assert plates.write_plates(job, manifest, composed, fill, alpha, {"how": "test"})
    full = cv2.imread(str(job / "plates" / "full" / "00001.png"))[..., ::-1]
    assert full.shape == (48, 64, 3)
    a = cv2.resize(alpha[1], (64, 48), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(full[a == 0], big[1][a == 0])
    assert np.abs(full[20:28, 26:34].astype(int) - (10, 200, 30)).max() <= 2
    assert np.array_equal(cv2.imread(str(job / "plates" / "00001.png"))[..., ::-1], composed[1])
    assert not (job / "plates" / "00001.exr").exists()


def test_exr_footage_gets_linear_exr_plates(tmp_path):
    working, removed, fill, alpha, composed = _scene()
    footage = tmp_path / "footage"
    rng = np.random.default_rng(2)
    linear = rng.uniform(0, 4, (3, 24, 32, 3)).astype(np.float32)  # scene-linear, over 1 in places
    for i, f in enumerate(linear):
        write_exr(footage / f"s.{i:04d}.exr", {"R": f[..., 0], "G": f[..., 1], "B": f[..., 2]})
    manifest = {"footage": {"source": str(footage), "kind": "images", "linear": True},
                "frames": {"source_indices": [0, 1, 2], "count": 3}}
    job = tmp_path / "job"
    job.mkdir()
    assert plates.write_plates(job, manifest, composed, fill, alpha, {})
    small = read_exr(job / "plates" / "00002.exr")
    assert np.allclose(small["G"], plates.srgb8_to_linear(composed[2])[..., 1])
    full = read_exr(job / "plates" / "full" / "00002.exr")
    outside = alpha[2] == 0
    assert np.array_equal(full["R"][outside], linear[2][..., 0][outside])  # the original linear values, > 1 kept
    assert np.allclose(full["G"][12, 15], plates.srgb8_to_linear(np.array([[[10, 200, 30]]], np.uint8))[0, 0, 1], atol=1e-3)


def test_missing_footage_still_writes_working_plates(tmp_path):
    working, removed, fill, alpha, composed = _scene()
    manifest = {"footage": {"source": str(tmp_path / "gone"), "kind": "images"}, "frames": {"source_indices": [0, 1, 2]}}
    logged = []
    job = tmp_path / "job"
    job.mkdir()
    assert not plates.write_plates(job, manifest, composed, fill, alpha, {}, log=logged.append)
    assert (job / "plates" / "00000.png").is_file() and not (job / "plates" / "full").exists()
    assert "full-size plates skipped" in logged[0]


def test_user_masks_by_frame_number_any_size(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    m = np.zeros((48, 64), np.uint8)
    m[10:30, 20:40] = 255
    cv2.imwrite(str(folder / "frame_0007.png"), m)
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = m  # white everywhere, the mask in alpha (how Blender's Mask output saves with RGBA)
    cv2.imwrite(str(folder / "12.png"), rgba)
    (folder / "notes.txt").write_text("ignored")
    found = masks.user_mask_files(folder)
    assert sorted(found) == [7, 12]
    for n in (7, 12):
        small = masks.read_user_mask(found[n], 32, 24)
        assert small.shape == (24, 32) and small[5:15, 10:20].all() and small.sum() == 100
    cv2.imwrite(str(folder / "mask.0007.png"), m)
    with pytest.raises(ShotfieldError, match="two masks for frame 7"):
        masks.user_mask_files(folder)
    with pytest.raises(ShotfieldError, match="no such folder"):
        masks.user_mask_files(tmp_path / "nowhere")
