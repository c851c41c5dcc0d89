"""scripts/batch_reconstruct.py and scripts/render_preview.py as a user runs them (own processes, the real
backend): one command turns the test shot into a saved .blend with the solved camera and the point cloud,
and the preview renders the footage with the ground grid and the points over it."""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"
SOLVE_BUILT = (REPO_ROOT / "backend" / "stages" / "solve.py").is_file()
SCREENSHOTS = Path(os.environ.get("SHOTFIELD_SCREENSHOTS", REPO_ROOT / "tests" / ".cache" / "screenshots"))
FRAMES = 8
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="shotfield_test_blender_"))
bpy = pytest.importorskip("bpy")

pytestmark = pytest.mark.skipif(not SOLVE_BUILT, reason="the solve stage is not built yet")


def run_script(name, *args, tmp_path, timeout=600):
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"))
    return subprocess.run([sys.executable, str(SCRIPTS / name), "--", *map(str, args)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def reconstructed(test_shot, tmp_path_factory):
    """(the .blend, the run's output) from one batch_reconstruct.py command on the first 8 frames."""
    tmp = tmp_path_factory.mktemp("batch")
    out = tmp / "out" / "plate.blend"
    result = run_script("batch_reconstruct.py", test_shot / "frames", out, "--frames", f"0:{FRAMES}", tmp_path=tmp)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


@pytest.fixture
def reset_blender():
    yield
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)  # leave no opened file behind


def test_one_command_makes_a_blend_with_camera_and_point_cloud(reconstructed, test_shot, reset_blender):
    out, stdout = reconstructed
    assert "shotfield: [" in stdout and "solve" in stdout  # progress lines while it waited
    assert (out.parent / "shotfield").is_dir() and not out.with_suffix(".blend1").exists()
    bpy.ops.wm.open_mainfile(filepath=str(out))
    scene = bpy.context.scene
    collection = next(c for c in bpy.data.collections if c.get("shotfield_job"))
    made = {o["shotfield_output"]: o for o in collection.objects}
    assert set(made) == {"camera", "points", "ground"}
    assert scene.camera == made["camera"] and made["camera"].animation_data.action is not None
    assert len(made["points"].data.vertices) > 100 and "Col" in made["points"].data.color_attributes
    assert made["points"].modifiers["Points"].node_group is not None
    assert (scene.frame_start, scene.frame_end) == (1, FRAMES)
    assert (scene.render.resolution_x, scene.render.resolution_y) == test_shot.size
    assert scene.active_clip is not None and made["camera"].data.background_images[0].clip == scene.active_clip


def test_preview_render_shows_grid_and_points_over_the_footage(reconstructed, tmp_path):
    out, _ = reconstructed
    png = tmp_path / "preview.png"
    modified = out.stat().st_mtime_ns
    result = run_script("render_preview.py", out, png, "--long-side", "320", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, SCREENSHOTS / "preview_batch.png")
    from PIL import Image

    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert image.shape == (240, 3 * 320 + 2 * 4, 3)  # first, middle and last frame side by side
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    grid = (b > 200) & (g > 180) & (r < 100)      # the cyan ground grid
    points = (r > 200) & (g > 100) & (g < 190) & (b < 60)  # the orange points
    footage = ~grid & ~points
    assert grid.mean() > 0.01 and points.mean() > 0.002 and footage.mean() > 0.8
    assert out.stat().st_mtime_ns == modified  # the source .blend was only read


def test_bad_footage_is_refused(tmp_path):
    result = run_script("batch_reconstruct.py", tmp_path / "missing.mov", tmp_path / "x.blend", tmp_path=tmp_path)
    assert result.returncode == 2 and "no such file" in result.stderr
