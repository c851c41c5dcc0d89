"""The pure pieces of scripts/benchmark.py: records, table, JSON, peer flow and its evaluation. No timing,
no rendering; the one subprocess test checks that peak memory is measured, not how fast anything runs."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from backend import flow_store
from backend.metrics.flow import flow_errors

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"
spec = importlib.util.spec_from_file_location("shotfield_benchmark", SCRIPT)
bench = importlib.util.module_from_spec(spec)
sys.modules["shotfield_benchmark"] = bench
spec.loader.exec_module(bench)

SHIFT = (3.0, 2.0)


def texture(h=96, w=128, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, size=(h, w)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def shifted(img, dx, dy):
    """dst(x, y) = src(x - dx, y - dy): every pixel moves by (+dx, +dy)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("method", sorted(bench.FLOW_PEERS))
def test_peer_flow_recovers_a_known_translation(method):
    a = texture()
    b = shifted(a, *SHIFT)
    flow = bench.FLOW_PEERS[method]()(a, b)
    assert flow.shape == a.shape + (2,) and flow.dtype == np.float32
    gt = np.broadcast_to(np.float32(SHIFT), flow.shape)
    interior = np.zeros(a.shape, bool)
    interior[16:-16, 16:-16] = True
    errors = flow_errors(flow, gt, interior)
    assert errors.epe_median < 0.3, errors
    # The sign matters: the reversed translation is 7 px away.
    assert flow_errors(flow, -gt, interior).epe_median > 5


def write_frames(folder: Path, frames: int) -> None:
    folder.mkdir(parents=True)
    base = texture(64, 80, seed=1)
    for t in range(frames):
        cv2.imwrite(str(folder / f"{t:05d}.png"), shifted(base, SHIFT[0] * t, SHIFT[1] * t))


def write_gt(path: Path, pairs: int, h: int, w: int, flow=SHIFT) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    forward = np.broadcast_to(np.float32(flow), (pairs, h, w, 2)).copy()
    visible = np.zeros((pairs, h, w), bool)
    visible[:, 12:-12, 12:-12] = True
    np.savez(path, forward=forward, forward_visible=visible)


def test_peer_job_is_read_back_and_scored(tmp_path):
    write_frames(tmp_path / "frames", 3)
    seconds = bench.peer_flow_job("opencv-dis-medium", tmp_path / "frames", tmp_path / "job")
    assert seconds > 0
    write_gt(tmp_path / "gt" / "flow.npz", 2, 64, 80)
    metrics = bench.evaluate_flow_job(tmp_path / "job", tmp_path / "gt" / "flow.npz")
    assert metrics["pairs"] == 2 and metrics["gaps"] == [1] and metrics["size"] == [80, 64]
    assert metrics["epe_median"] < 0.3
    assert metrics["fb_consistent_pct"] > 70
    assert metrics["fb_consistent_pct"] == pytest.approx(metrics["stage_valid_pct"])
    assert bench.evaluate_flow_job(tmp_path / "job", None).keys().isdisjoint({"epe_median"})


def write_job(job: Path, flow, frames: int, h: int, w: int) -> None:
    writer = flow_store.FlowWriter(job, 1, frames - 1, h, w)
    f = np.broadcast_to(np.float32(flow), (h, w, 2))
    for t in range(frames - 1):
        writer.put(t, f, -f, np.ones((h, w), bool), np.ones((h, w), bool))
    writer.close()
    flow_store.write_index(job, [1], frames, w, h)


def test_evaluation_of_a_known_error_and_of_a_smaller_working_size(tmp_path):
    write_gt(tmp_path / "flow.npz", 2, 40, 60, flow=(1.0, 0.0))
    write_job(tmp_path / "off", (4.0, 4.0), 3, 40, 60)          # (3, 4) px off the GT: EPE 5
    m = bench.evaluate_flow_job(tmp_path / "off", tmp_path / "flow.npz")
    assert (m["epe_mean"], m["epe_median"], m["outliers_3px"]) == (5.0, 5.0, 100.0)
    assert m["pixels"] == 2 * 16 * 36
    write_job(tmp_path / "half", (0.5, 0.0), 3, 20, 30)         # half-size frames: half the motion
    m = bench.evaluate_flow_job(tmp_path / "half", tmp_path / "flow.npz")
    assert m["resized_to_gt"] == [60, 40]
    assert m["epe_mean"] == pytest.approx(0.0, abs=1e-6)


def test_resize_flow_scales_vectors():
    flow = np.zeros((10, 20, 2), np.float32) + np.float32([2, 1])
    out = bench.resize_flow(flow, 40, 30)
    assert out.shape == (30, 40, 2)
    np.testing.assert_allclose(out[..., 0], 4.0)
    np.testing.assert_allclose(out[..., 1], 3.0)


def test_summary_and_json_records():
    assert bench.summarise([3.0, 1.0, 2.0]) == {"median": 2.0, "spread": 1.0, "min": 1.0, "max": 3.0, "n": 3}
    assert bench.summarise([])["median"] is None
    rec = bench.Record("flow", "quick", "x", "peer", metrics={"epe_mean": float("nan"), "n": np.int64(3)},
                       wall_s=[1.0, 3.0], compute_s=[0.5, 0.7], peak_mb=[70.0, 72.0])
    out = bench.record_to_json(rec)
    text = json.dumps(out, allow_nan=False)                     # NaN would make invalid JSON
    back = json.loads(text)
    assert back["metrics"] == {"epe_mean": None, "n": 3}
    assert back["wall_s_summary"]["median"] == 2.0 and back["peak_mb_summary"]["spread"] == 1.0


def test_table_lists_every_method_with_its_metrics():
    records = [
        bench.Record("flow", "quick", "shotfield (preview)", "shotfield",
                     metrics={"epe_median": 0.1234, "epe_mean": 0.5, "outliers_1px": 4.44, "outliers_3px": 1.0,
                              "fb_consistent_pct": math.nan}, wall_s=[1.0, 1.2, 1.1], compute_s=[0.4], peak_mb=[80.0]),
        bench.Record("flow", "quick", "opencv-farneback", "peer", error="exit 1: boom"),
    ]
    table = bench.format_table(records, {"flow": bench.FLOW_COLUMNS})
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["stage", "shot", "method", "EPE"]
    row = next(line for line in lines if "shotfield (preview)" in line)
    assert "0.123" in row and "4.4" in row and "1.10 ±0.10" in row and " - " in row
    assert "FAILED: exit 1: boom" in table


def test_registry_and_shot_cache_keys():
    assert "flow" in bench.BENCHMARKS and bench.BENCHMARKS["flow"].columns == bench.FLOW_COLUMNS
    assert {"opencv-farneback", "opencv-dis-ultrafast", "opencv-dis-medium"} <= set(bench.PEERS["flow"])
    default = bench.SHOTS["default"]
    assert (default.frames, default.width, default.height) == (40, 320, 240)
    assert (bench.SHOTS["quick"].frames, bench.SHOTS["quick"].width) == (24, 160)
    key = bench.shot_key(default, "abc")
    assert key == bench.shot_key(default, "abc")
    assert key != bench.shot_key(bench.SHOTS["tripod"], "abc") and key != bench.shot_key(default, "abd")
    assert "--tripod" in bench.SHOTS["tripod"].args()
    assert bench.Shot("footage:apple/footage", Path("x"), None, None).slug == "footage_apple_footage"


def test_run_measured_reports_the_childs_peak_memory(tmp_path):
    code = "import numpy as np; a = np.ones(300 * 2**20 // 8); a += 1"   # touches 300 MiB
    run = bench.run_measured([sys.executable, "-c", code], tmp_path / "log.txt")
    assert run.returncode == 0 and run.peak_mb > 290
    failed = bench.run_measured([sys.executable, "-c", "import sys; print('x'); sys.exit(3)"], tmp_path / "f.txt")
    assert failed.returncode == 3 and bench.tail(failed.log) == "x"


def test_run_measured_does_not_count_the_benchmarks_own_memory(tmp_path):
    ballast = np.ones(300 * 2**20 // 8)      # the benchmark process holds 300 MiB (as after loading GT flow)
    ballast += 1
    run = bench.run_measured([sys.executable, "-c", "pass"], tmp_path / "log.txt")
    assert run.returncode == 0 and run.peak_mb < 100
    del ballast
