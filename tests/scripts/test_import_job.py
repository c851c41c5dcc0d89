"""scripts/import_job.py in its own process (as a user runs it), then the .blend it saved, opened here."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "import_job.py"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
# Before the first `import bpy` of this process: never touch ~/.config/blender.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="shotfield_test_blender_"))
bpy = pytest.importorskip("bpy")

from exporters import cameras_json, job_manifest  # noqa: E402

N_FRAMES, WIDTH, HEIGHT = 5, 64, 48


def make_job(job_dir: Path, with_cameras: bool = True) -> Path:
    """Frames as PNGs, a camera dollying along +X while looking down +Y, and a job.json at 12 fps."""
    from PIL import Image

    (job_dir / "frames").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(N_FRAMES):
        Image.fromarray(rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(job_dir / "frames" / f"{i:05d}.png")
    if with_cameras:
        frames = []
        for i in range(N_FRAMES):
            pose = np.eye(4)
            pose[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # OpenCV axes x, y (down), z (forward) in world
            pose[:3, 3] = [0.1 * i, -5.0, 1.0]
            K = np.array([[60.0, 0, 32.0], [0, 60.0, 24.0], [0, 0, 1]])
            frames.append(cameras_json.CameraFrame(i, K, pose))
        cameras_json.write_cameras(job_dir / "camera" / "cameras.json", cameras_json.Cameras(WIDTH, HEIGHT, frames))
    manifest = job_manifest.new_manifest()
    manifest.update(fps=12.0, frames={"start": 0, "end": None, "step": 1, "count": N_FRAMES})
    job_manifest.write_manifest(job_dir, manifest)
    return job_dir


def run_script(*args, tmp_path):
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"))
    return subprocess.run([sys.executable, str(SCRIPT), "--", *map(str, args)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def reset_blender():
    yield
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)  # leave no opened file behind


def test_import_job_writes_blend_with_animated_camera(tmp_path, reset_blender):
    job = make_job(tmp_path / "shot_a")
    out = tmp_path / "out" / "shot_a.blend"

    result = run_script(job, out, tmp_path=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    bpy.ops.wm.open_mainfile(filepath=str(out))
    scene = bpy.context.scene
    camera = scene.camera
    assert camera is not None and camera.animation_data.action is not None
    assert (scene.frame_start, scene.frame_end) == (1, N_FRAMES)
    assert scene.render.fps == 12
    assert (scene.render.resolution_x, scene.render.resolution_y) == (WIDTH, HEIGHT)
    for i in range(N_FRAMES):
        scene.frame_set(1 + i)
        # OpenCV (x, y, z) = world (x, -z, y) -> Blender camera looking down -Z along world +Y, no rotation
        # but a quarter turn about X; position straight from the pose.
        assert tuple(camera.matrix_world.translation) == pytest.approx((0.1 * i, -5.0, 1.0), abs=1e-5)
        assert tuple(camera.rotation_euler) == pytest.approx((np.pi / 2, 0.0, 0.0), abs=1e-5)
    clip = scene.active_clip
    assert clip is not None and clip.name == "shot_a" and clip.frame_duration == N_FRAMES
    assert camera.data.background_images[0].clip == clip
    assert scene["shotfield"]["job_dir"] == str(job)  # stored as an ID property; the add-on is not enabled here


def test_import_job_without_cameras_still_saves_clip(tmp_path, reset_blender):
    job = make_job(tmp_path / "shot_b", with_cameras=False)
    out = tmp_path / "shot_b.blend"

    result = run_script(job, out, tmp_path=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no camera/cameras.json" in result.stdout
    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert bpy.context.scene.camera is None
    assert bpy.context.scene.active_clip.frame_duration == N_FRAMES


def test_import_job_reports_a_bad_job(tmp_path):
    job = make_job(tmp_path / "shot_c")
    (job / "camera" / "cameras.json").write_text("{broken")

    result = run_script(job, tmp_path / "never.blend", tmp_path=tmp_path)

    assert result.returncode == 1
    assert "cameras.json" in result.stderr and "cannot read JSON" in result.stderr
    assert not (tmp_path / "never.blend").exists()
