"""The add-on's "Track Selected Markers": markers the artist placed become `shotfield track` queries in job
pixels and frames; without a trained tracker the operator refuses with a message."""
import bpy
import numpy as np
import pytest

from exporters import tracks_npz

from .test_importers import H, N, W, make_job


def load_clip(job):
    clip = bpy.data.movieclips.load(str(job / "frames" / "00000.png"))
    bpy.context.scene.active_clip = clip
    return clip


def place(clip, name, frame, x, y, select=True):
    """A clip track with one marker at pixel (x, y) of job frame `frame` (clip frame frame + 1)."""
    track = clip.tracking.tracks.new(name=name, frame=frame + 1)
    track.markers.find_frame(frame + 1).co = (x / W, 1.0 - y / H)
    track.select = select
    return track


def test_selected_markers_become_queries(scene, tmp_path, addon):
    import importlib

    operators_tracks = importlib.import_module(f"{addon}.blender_addon.operators_tracks")
    job = make_job(tmp_path / "shot_Q", with_points=False)
    clip = load_clip(job)
    place(clip, "a", 2, 10.5, 20.5)
    place(clip, "b", 4, 30.0, 5.0)
    place(clip, "not selected", 1, 3.0, 3.0, select=False)
    place(clip, "Shotfield 001", 1, 3.0, 3.0)             # ours from an import: never a query
    queries = operators_tracks.queries_from_markers(clip, str(job), scene_frame=3)
    np.testing.assert_allclose(queries, [[2, 10.5, 20.5], [4, 30.0, 5.0]], atol=1e-4)
    for track in clip.tracking.tracks:
        track.select = False
    with pytest.raises(ValueError, match="Select the markers"):
        operators_tracks.queries_from_markers(clip, str(job), scene_frame=1)


def test_track_markers_needs_a_trained_tracker(scene, tmp_path, addon):
    job = make_job(tmp_path / "shot_R", with_points=False)
    clip = load_clip(job)
    place(clip, "a", 2, 10.5, 20.5)
    scene.shotfield.job_dir = str(job)
    with pytest.raises(RuntimeError, match="Tracks output first"):
        bpy.ops.shotfield.track_markers()
    assert not (job / "tracks" / "picked_queries.json").exists()
    # The queries file format is the exporters' (what the backend reads).
    tracks_npz.write_queries(tmp_path / "q.json", [[1, 2.5, 3.5]])
    assert tracks_npz.read_queries(tmp_path / "q.json", frames=N, width=W, height=H).shape == (1, 3)


def test_panel_section(scene, addon, tmp_path):
    """The sidebar's section: the Track button (enabled once the job has a trained tracker), and the import
    button once the job has tracks."""
    import importlib

    from .layout_recorder import RecordingLayout

    operators_tracks = importlib.import_module(f"{addon}.blender_addon.operators_tracks")
    layout = RecordingLayout()
    operators_tracks.draw_section(layout, bpy.context, str(tmp_path), [])
    assert ("operator", "shotfield.track_markers") in layout.calls
    assert ("operator", "shotfield.import_job") not in layout.calls
    layout = RecordingLayout()
    operators_tracks.draw_section(layout, bpy.context, str(tmp_path), ["footage", "camera", "tracks"])
    assert ("operator", "shotfield.import_job") in layout.calls
