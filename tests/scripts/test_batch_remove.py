"""scripts/batch_remove.py as a user runs it (its own process, the real backend): one command removes the
moving objects of the test shot and saves a .blend whose compositor puts the clean plate under the render.

The job is a copy of the ground-truth pipeline job (real ingest and flow, ground-truth camera and depth), so
the test does not wait for, or depend on, the depth stage."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import copy_job

REPO_ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="shotfield_test_blender_"))
bpy = pytest.importorskip("bpy")


def run_script(*args, tmp_path, timeout=600):
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"))
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "batch_remove.py"), "--", *map(str, args)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def test_batch_remove_saves_a_blend_with_the_clean_plates(ground_truth_pipeline, test_shot, tmp_path):
    from PIL import Image

    job = copy_job(ground_truth_pipeline, tmp_path / "job")
    out = tmp_path / "out" / "removed.blend"
    result = run_script(test_shot / "frames", "--job", job, "--remove", "moving", "--blend", out, "--effort", "0.3",
                        "--render", 3, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (job / "plates" / "00000.png").is_file() and (job / "masks" / "00000.png").is_file()
    try:
        bpy.ops.wm.open_mainfile(filepath=str(out))
        scene = bpy.context.scene
        groups = [n for n in scene.node_tree.nodes if n.bl_idname == "CompositorNodeGroup"]
        assert len(groups) == 1 and groups[0].node_tree.name.endswith("Clean Plate")
        assert any(c.name.endswith("Clean Plate") for c in bpy.data.movieclips)
        assert scene.render.film_transparent
    finally:
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    # The quick look render of scene frame 3 (job frame 2) is the plate: the scene has nothing to add.
    render = np.asarray(Image.open(out.with_name("removed_0003.png")).convert("RGB")).astype(int)
    plate = np.asarray(Image.open(job / "plates" / "00002.png").convert("RGB")).astype(int)
    assert render.shape == plate.shape
    assert np.mean(np.abs(render - plate).max(axis=-1) <= 2) > 0.99


def test_bad_remove_argument_is_refused(test_shot, tmp_path):
    result = run_script(test_shot / "frames", "--job", tmp_path / "job", "--remove", tmp_path / "nowhere",
                        "--blend", tmp_path / "x.blend", tmp_path=tmp_path)
    assert result.returncode == 2 and "give 'moving' or a folder of masks" in result.stderr
