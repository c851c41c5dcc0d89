"""Looks: the panel's layout in its four states (ready, running, failed, done with imports), drawn as mock-up
PNGs in tests/.cache/screenshots/ (or $SHOTFIELD_SCREENSHOTS) so that a change to the panel can be looked at.
A headless Blender has no window to draw the real panel in; layout_recorder draws what the panel asked for.
The preview render of a reconstruction (scripts/render_preview.py) is in tests/scripts/test_batch_reconstruct.py."""
import os
import sys
import time
from pathlib import Path

import bpy
import pytest

from .layout_recorder import RecordingLayout, render_png
from .test_importers import make_job

SCREENSHOTS = Path(os.environ.get("SHOTFIELD_SCREENSHOTS", Path(__file__).resolve().parents[1] / ".cache" / "screenshots"))


class StubRun:
    """A run the monitor follows without a process (the screenshot needs its state, not its work)."""

    def __init__(self, job_dir):
        self.job_dir, self.started = Path(job_dir), time.time() - 75

    def poll(self):
        return False

    def cancel(self):
        pass


@pytest.fixture
def panel_scene(scene, addon, tmp_path):
    from PIL import Image
    import numpy as np

    (tmp_path / "plate").mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "plate" / f"plate.{i + 1:04d}.png")
    clip = bpy.data.movieclips.load(str(tmp_path / "plate" / "plate.0001.png"))
    clip.name = "plate"
    scene.active_clip = clip
    scene.shotfield.job_dir = str(tmp_path / "job")
    yield scene
    sys.modules[f"{addon}.blender_addon.monitor"].stop_all()


def draw(addon, name: str) -> RecordingLayout:
    layout = RecordingLayout()
    sys.modules[f"{addon}.blender_addon.panel"].draw_panel(layout, bpy.context)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"panel_{name}.png"
    render_png(layout, path, title=f"Shotfield ({name})")
    from PIL import Image

    with Image.open(path) as image:
        assert image.width == 340 and image.height > 300
    return layout


def test_panel_states_render_to_png(panel_scene, addon, tmp_path):
    monitor = sys.modules[f"{addon}.blender_addon.monitor"]
    progress = sys.modules[f"{addon}.blender_addon.progress"]
    job = str(tmp_path / "job")

    ready = draw(addon, "ready")
    assert ("operator", "shotfield.run") in ready.calls and ("label", "Active clip: plate (3 frames)") in ready.calls
    assert not [c for c in ready.calls if c[0] == "progress"]

    w = monitor.watch(StubRun(job), ("ingest", "flow", "solve"), scene=panel_scene)
    now = time.time()
    progress.apply_events(w.state, [
        {"time": now - 70, "stage": "ingest", "fraction": 1.0, "message": "up to date, skipped"},
        {"time": now - 60, "stage": "flow", "fraction": 1.0, "message": "done in 9.0 s"},
        {"time": now - 50, "stage": "solve", "fraction": 0.45, "message": "dense bundle adjustment over the flow"}])
    running = draw(addon, "running")
    assert ("operator", "shotfield.cancel") in running.calls and ("operator", "shotfield.run") not in running.calls
    assert ("progress", "solve 45%: dense bundle adjustment over the flow") in running.calls
    assert any(kind == "label" and "elapsed, about" in text for kind, text in running.calls)

    progress.finish(w.state, progress.Outcome("failed", "solve failed: the footage has too little texture to track; "
                                                        "use a longer shot or a higher working size"))
    failed = draw(addon, "failed")
    assert ("progress", "Failed") in failed.calls and ("operator", "shotfield.run") in failed.calls
    assert any(kind == "label" and "too little texture" in text for kind, text in failed.calls)

    monitor.forget(job)
    make_job(Path(job))
    sys.modules[f"{addon}.blender_addon.panel"]._views.clear()  # the panel looks at the folder once a second
    done = draw(addon, "done")
    imports = [c for c in done.calls if c == ("operator", "shotfield.import_job")]
    assert len(imports) == 5  # footage, camera, points, ground, and Import All
    assert all(path.is_file() for path in (SCREENSHOTS / f"panel_{n}.png" for n in ("ready", "running", "failed", "done")))
