"""The solve benchmark's records, table, peers and bar checks (scripts/benchmarks/solve*.py): pure pieces,
built from hand-made records. No rendering, no solving, no timing."""
import json
import math
import sys
from pathlib import Path

from scripts.benchmarks import solve_bars as bars
from scripts.benchmarks.records import Record, format_table, record_to_json
from scripts.benchmarks.runs import TIMED_OUT, run_measured
from scripts.benchmarks.shots import SHOTS
from scripts.benchmarks.solve import SOLVE_COLUMNS, SOLVE_PEERS, best_pycolmap

GOOD = {"registered": 40, "frames": 40, "registered_str": "40/40", "ate_percent": 0.04, "ate": 0.001,
        "rotation_mean_deg": 0.15, "orientation_mean_deg": 0.05, "orientation_median_deg": 0.04,
        "rpe_rotation_mean_deg": 0.12, "rotation_joint_mean_deg": 0.1,
        "rel_rotation_mean_deg": 0.01, "focal_percent": 0.3, "focal_px": 285.0, "reprojection_px": 0.2}


def ours(shot="default", metrics=None, wall=(80.0, 90.0, 100.0), tripod=False, size=(320, 240), error=None):
    return Record("solve", shot, "shotfield (preview)", "shotfield", metrics=dict(GOOD if metrics is None else metrics),
                  wall_s=list(wall), compute_s=[50.0], peak_mb=[900.0], error=error,
                  details={"shot": {"frames": 40, "tripod": tripod, "size": list(size), "gt": True}})


def peer(name, ate, shot="default", error=None, registered=40, rotation=1.0):
    return Record("solve", shot, name, "peer", metrics={"ate_percent": ate, "registered": registered, "frames": 40,
                                                        "registered_str": f"{registered}/40",
                                                        "rpe_rotation_mean_deg": rotation},
                  wall_s=[30.0], compute_s=[25.0], peak_mb=[300.0], error=error)


def by_bar(checks):
    return {c.bar.split(" (")[0] if c.bar.startswith("<") else c.bar: c for c in checks}


def test_best_pycolmap_is_the_lowest_ate_that_succeeded():
    records = [peer("pycolmap-incremental", 0.14), peer("pycolmap-global", 0.07), peer("blender-tracker", 0.01),
               peer("pycolmap-global-x", 0.01, error="exit 1")]
    assert best_pycolmap(records).method == "pycolmap-global"
    assert best_pycolmap([peer("pycolmap-incremental", math.nan)]) is None
    # A model that kept 2 of 40 frames does not count, however small its error over those two.
    records = [peer("pycolmap-incremental", 0.001, registered=2), peer("pycolmap-global", 1.1, registered=20)]
    assert best_pycolmap(records).method == "pycolmap-global"
    assert best_pycolmap(records[:1]) is None
    assert best_pycolmap([]) is None


def test_all_bars_pass_on_a_good_hand_held_solve():
    checks = bars.check_shot(ours(), [peer("pycolmap-incremental", 0.14), peer("pycolmap-global", 0.09)], cores=2)
    assert [c.status for c in checks] == ["PASS"] * 7, checks
    b = by_bar(checks)
    assert "vs 0.045 %" in b["ATE ≤ 0.5 × pycolmap best"].value and "pycolmap-global" in b["ATE ≤ 0.5 × pycolmap best"].value
    assert b["< 120 s"].value == "90.0 s wall"
    assert b["rotation mean ≤ 0.2°"].value == ("0.120° all-pairs RPE (joint Sim(3) 0.100°, orientations alone 0.050°, "
                                              "positions-only Sim(3) 0.150°)")
    assert b["ahead of every peer (ATE & rotation)"].value.startswith("pycolmap-global ATE% 0.040<0.090 rot° 0.120<1.000")


def test_each_bar_fails_on_its_own():
    bad = dict(GOOD, registered=39, registered_str="39/40", ate_percent=0.6, rpe_rotation_mean_deg=0.3, focal_percent=1.5)
    checks = bars.check_shot(ours(metrics=bad, wall=(130.0,)), [peer("pycolmap-incremental", 1.0, rotation=0.2)], cores=4)
    assert [c.status for c in checks] == ["FAIL"] * 7, checks
    assert by_bar(checks)["< 120 s"].value == "130.0 s wall on 4 cores"
    # Better than the 0.5 % bar but not than half of pycolmap's best.
    checks = by_bar(bars.check_shot(ours(metrics=dict(GOOD, ate_percent=0.1)), [peer("pycolmap-global", 0.12)], cores=2))
    assert checks["ATE ≤ 0.5 × pycolmap best"].status == "FAIL" and checks["ATE ≤ 0.5 % of path"].status == "PASS"


def test_tripod_bars_and_missing_values():
    tripod = dict(GOOD, ate_percent=math.nan, tripod_translation_pct=0.4)
    b = by_bar(bars.check_shot(ours("tripod", tripod, tripod=True), [peer("pycolmap-incremental", math.nan)], cores=2))
    assert b["ATE ≤ 0.5 % of path"].status == "n/a" and b["ATE ≤ 0.5 × pycolmap best"].status == "n/a"
    assert b["tripod translation ≤ 1 % of depth"].status == "PASS"
    b = by_bar(bars.check_shot(ours("tripod", dict(tripod, tripod_translation_pct=2.0), tripod=True), [], cores=2))
    assert b["tripod translation ≤ 1 % of depth"].status == "FAIL"
    b = by_bar(bars.check_shot(ours(metrics=dict(GOOD, focal_percent=None)), [], cores=2))
    assert b["focal ≤ 1 %"].status == "n/a" and b["ATE ≤ 0.5 × pycolmap best"].value == "no pycolmap result"
    # The time bar is for the 40-frame 320x240 shot only.
    b = by_bar(bars.check_shot(ours(size=(960, 540)), [], cores=2))
    assert b["< 120 s"].status == "n/a"


def test_check_bars_covers_rendered_shots_only_and_counts_a_failed_run():
    footage = ours("footage:apple/footage")
    footage.details["shot"]["gt"] = False
    records = [ours(), peer("pycolmap-incremental", 0.14), footage, ours("tripod", error="exit 1: no solve stage")]
    checks = bars.check_bars(records, cores=2)
    assert {c.shot for c in checks} == {"default", "tripod"}
    failed = [c for c in checks if c.shot == "tripod"]
    assert len(failed) == 1 and failed[0].status == "FAIL" and "no solve stage" in failed[0].value
    text = bars.format_bars(checks)
    assert text.splitlines()[0].startswith("bars") and "7 passed, 1 failed, 0 n/a" in text
    assert bars.format_bars([]) == ""


def test_solve_table_and_json():
    records = [ours(), peer("pycolmap-incremental (best)", 0.14), Record("solve", "default", "blender-tracker", "peer",
                                                                        error="exit 124: stopped")]
    records[1].metrics["tripod_translation_pct"] = None
    table = format_table(records, {"solve": SOLVE_COLUMNS})
    header = table.splitlines()[0]
    for title in ("reg", "ATE %path", "rot mean°", "orient med°", "rel rot°", "focal %", "reproj px", "tripod T %depth",
                  "compute s", "wall s", "peak MB"):
        assert title in header
    row = next(line for line in table.splitlines() if line.startswith("solve  default  shotfield"))
    assert "40/40" in row and "0.040" in row and "90.00 ±10.00" in row
    assert "FAILED: exit 124: stopped" in table
    back = json.loads(json.dumps(record_to_json(records[0]), allow_nan=False))
    assert back["wall_s_summary"]["median"] == 90.0 and back["metrics"]["registered_str"] == "40/40"


def test_solve_peers_and_shots():
    assert {"pycolmap-incremental", "pycolmap-global", "blender-tracker"} <= set(SOLVE_PEERS)
    assert [n for n, p in SOLVE_PEERS.items() if p.tripod_only] == ["blender-tracker-tripod"]
    cmd = SOLVE_PEERS["blender-tracker"].command(Path("F"), Path("J"), Path("R"))
    assert cmd[1:4] == ["-m", "scripts.benchmarks.blender_tracker", "--"] and cmd[4:6] == ["--frames", "F"]
    cmd = SOLVE_PEERS["pycolmap-global"].command(Path("F"), Path("J"), Path("R"))
    assert "--" not in cmd and cmd[-2:] == ["--mapper", "global"]
    for name, flag in (("large-object", "--large-object"), ("tripod", "--tripod"), ("low-texture", "--low-texture")):
        spec = SHOTS[name]
        assert (spec.frames, spec.width, spec.height) == (40, 320, 240) and spec.flags == (flag,)
    assert SHOTS["tripod"].tripod and not SHOTS["default"].tripod and "--objects" not in SHOTS["default"].flags
    assert "large" not in SHOTS and (SHOTS["h100"].frames, SHOTS["h100"].width) == (100, 960)


def test_run_measured_stops_a_run_at_its_time_limit(tmp_path):
    run = run_measured([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log.txt", timeout_s=1)
    assert run.returncode == TIMED_OUT and math.isnan(run.wall_s)
    assert "stopped after 1 s" in run.log.read_text()
