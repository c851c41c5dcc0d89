"""The pure parts of running a job: progress events -> panel state, exit codes -> outcome in words, the
command line, clip paths -> footage, and the PLY reader. No Blender UI involved."""

import numpy as np
import pytest

from blender_addon import command, footage, progress
from exporters import ply


def events(*rows, t0=1000.0):
    return [{"time": t0 + t, "stage": s, "fraction": f, "message": m} for t, s, f, m in rows]


def test_fold_events_tracks_stage_fraction_and_finished_stages():
    state = progress.RunState("/job", ("ingest", "flow", "solve"), started=1000.0)
    assert state.state == "starting" and state.fraction() == 0.0
    progress.apply_events(state, events((0, "ingest", 1.0, progress.SKIPPED_MESSAGE), (1, "flow", 0.0, "started"),
                                        (2, "flow", 0.5, "gap 1: pair 3/6")))
    assert state.state == "running" and state.stage == "flow" and state.message == "gap 1: pair 3/6"
    assert state.finished == {"ingest": "skipped"}
    # skipped stages do not count: flow half done out of flow + solve
    w = progress.STAGE_WEIGHTS
    assert state.fraction() == pytest.approx(0.5 * w["flow"] / (w["flow"] + w["solve"]))
    progress.apply_events(state, events((3, "flow", 1.0, "done in 2.0 s"), (4, "solve", 0.25, "matching")))
    assert state.finished == {"ingest": "skipped", "flow": "done"}
    assert state.fraction() == pytest.approx((w["flow"] + 0.25 * w["solve"]) / (w["flow"] + w["solve"]))
    assert state.headline() == "solve 25%: matching"


def test_eta_extrapolates_the_work_done_and_waits_for_enough_of_it():
    state = progress.RunState("/job", ("flow",), started=1000.0)
    progress.apply_events(state, events((0, "flow", 0.0, "started")))
    assert state.eta(now=1000.5) is None                       # under a second of work: no guess
    progress.apply_events(state, events((5, "flow", 0.25, "x")))
    assert state.eta(now=1010.0) == pytest.approx(30.0)         # 10 s for a quarter -> 30 s left
    assert "about 30 s left" in state.timing(now=1010.0)
    progress.finish(state, progress.Outcome("done"), now=1040.0)
    assert state.eta() is None and state.fraction() == 1.0 and state.elapsed() == 40.0


@pytest.mark.parametrize("code, stages, output, state, words", [
    (0, {}, "", "done", None),
    (143, {"flow": {"status": "cancelled"}}, "", "cancelled", "Finished stages are kept"),
    (130, {}, "", "cancelled", "Run again"),
    (1, {"ingest": {"status": "done"}, "flow": {"status": "failed", "error": "flow: out of memory"}}, "", "failed",
     "flow: out of memory"),
    (1, {"solve": {"status": "failed", "error": "too little texture"}}, "", "failed", "solve failed: too little texture"),
    (2, {}, "Traceback...\nshotfield: --stages: unknown or not yet built stage(s) depth; available: ingest, flow\n",
     "failed", "unknown or not yet built stage(s) depth"),
    (1, {}, "shotfield: the job /j is being run by process 12; wait for it or cancel it\n", "failed", "being run by process 12"),
    (-9, {}, "", "failed", "killed"),
    (None, {"flow": {"status": "running"}}, "", "failed", "stopped in the middle"),
    (None, {"flow": {"status": "done"}}, "", "done", None),
    (None, {"flow": {"status": "cancelled"}}, "", "cancelled", "kept"),
    (7, {}, "segfault somewhere\n", "failed", "exit code 7): segfault somewhere"),
])
def test_outcome_in_plain_words(code, stages, output, state, words):
    result = progress.outcome(code, {"stages": stages}, output)
    assert result.state == state
    if words is None:
        assert result.error is None
    else:
        assert words in result.error


def test_format_duration_and_wrap():
    assert [progress.format_duration(s) for s in (0.4, 7, 65, 3720)] == ["0 s", "7 s", "1 min 05 s", "1 h 02 min"]
    lines = progress.wrap("a " * 60, width=20)
    assert all(len(line) <= 20 for line in lines) and " ".join(lines) == ("a " * 60).strip()


def test_command_line_for_a_run():
    request = command.RunRequest("/jobs/a", "/shots/a.%04d.png", command.stages_for_outputs({"camera", "clean_plates"}),
                                 frames="10:50:2", long_side=480, fps=23.976, remove="moving")
    assert request.stages == ("ingest", "flow", "solve", "inpaint")
    assert request.argv("/venv/bin/shotfield") == [
        "/venv/bin/shotfield", "run", "/shots/a.%04d.png", "--job", "/jobs/a", "--stages", "ingest,flow,solve,inpaint",
        "--quality", "preview", "--device", "auto", "--no-progress", "--frames", "10:50:2", "--long-side", "480",
        "--fps", "23.976", "--remove", "moving"]
    assert request.server_settings() == {"stages": ["ingest", "flow", "solve", "inpaint"], "quality": "preview",
                                         "device": "auto", "frames": "10:50:2", "long_side": 480, "fps": 23.976,
                                         "remove": "moving"}
    rerun = command.RunRequest("/jobs/a")  # no footage: the job's own
    assert rerun.argv("shotfield")[:4] == ["shotfield", "run", "--job", "/jobs/a"]
    assert command.parse_stages(" ingest, flow ") == ("ingest", "flow")
    with pytest.raises(ValueError, match="unknown stage"):
        command.parse_stages("ingest,bogus")


def test_learned_stage_options_reach_the_command_line_and_the_server():
    """Effort goes with any run; the layer options only with the layers stage; both parse in the backend."""
    from backend.cli import build_parser
    from backend.server.jobspec import JobSettings

    request = command.RunRequest("/jobs/a", "/shots/a.mov", command.stages_for_outputs({"layers"}), effort=0.25,
                                 layer_kind="msi", layer_reference=12)
    argv = request.argv("shotfield")
    assert argv[-6:] == ["--effort", "0.25", "--layer-kind", "msi", "--layer-reference", "12"]
    args = build_parser().parse_args(argv[1:])
    assert (args.effort, args.layer_kind, args.layer_reference) == (0.25, "msi", (12,))
    settings = request.server_settings()
    assert (settings["effort"], settings["layer_kind"], settings["layer_reference"]) == (0.25, "msi", [12])
    JobSettings(**{**settings, "stages": ["ingest"]}).check()  # the options validate on a server too
    plain = command.RunRequest("/jobs/a", stages=command.stages_for_outputs({"camera"}))
    assert not {"--effort", "--layer-kind"} & set(plain.argv("shotfield")) and "effort" not in plain.server_settings()


def test_footage_of_an_image_sequence_clip(tmp_path):
    for n in range(5, 12):
        (tmp_path / f"plate.{n:04d}.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    ref = footage.footage_for_clip(str(tmp_path / "plate.0008.png"), "SEQUENCE")
    assert ref == footage.Footage(str(tmp_path / "plate.%04d.png"), "images", 3)  # 0005, 0006, 0007 come first
    # The clip's frames 2..4 are footage positions 4..6 (END exclusive = 7)
    assert footage.frames_argument(ref.first_index, 2, 4, 1) == "4:7:1"
    assert footage.frames_argument(ref.first_index, None, None) == "3::1"
    assert footage.frames_argument(0, None, None) is None
    assert footage.footage_for_clip("/v/shot.mov", "MOVIE") == footage.Footage("/v/shot.mov", "video", 0)
    with pytest.raises(ValueError, match="numbered"):
        footage.footage_for_clip(str(tmp_path / "plate.png"), "SEQUENCE")


def _write_ply(path, points, colours, fmt="binary_little_endian", extra_faces=False):
    header = [f"ply", f"format {fmt} 1.0", "comment test", f"element vertex {len(points)}", "property float x",
              "property float y", "property float z", "property uchar red", "property uchar green", "property uchar blue"]
    if extra_faces:
        header += ["element face 0", "property list uchar int vertex_indices"]
    header.append("end_header")
    if fmt == "ascii":
        body = "".join(f"{p[0]} {p[1]} {p[2]} {c[0]} {c[1]} {c[2]}\n" for p, c in zip(points, colours)).encode()
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        rec = np.empty(len(points), [("p", order + "f4", 3), ("c", "u1", 3)])
        rec["p"], rec["c"] = points, colours
        body = rec.tobytes()
    path.write_bytes(("\n".join(header) + "\n").encode() + body)


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_ply_reader_round_trip(tmp_path, fmt):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(50, 3)).astype(np.float32)
    colours = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    _write_ply(tmp_path / "p.ply", points, colours, fmt, extra_faces=True)
    got_points, got_colours = ply.points_and_colours(tmp_path / "p.ply")
    np.testing.assert_allclose(got_points, points, rtol=1e-6)
    np.testing.assert_array_equal(got_colours, colours)


def test_ply_reader_rejects_what_it_cannot_read(tmp_path):
    (tmp_path / "a.ply").write_bytes(b"not a ply")
    with pytest.raises(ply.PlyError, match="not a PLY"):
        ply.read_vertices(tmp_path / "a.ply")
    _write_ply(tmp_path / "b.ply", np.zeros((10, 3), np.float32), np.zeros((10, 3), np.uint8))
    (tmp_path / "b.ply").write_bytes((tmp_path / "b.ply").read_bytes()[:-20])
    with pytest.raises(ply.PlyError, match="truncated"):
        ply.read_vertices(tmp_path / "b.ply")
    with pytest.raises(ply.PlyError, match="cannot read"):
        ply.read_vertices(tmp_path / "missing.ply")
