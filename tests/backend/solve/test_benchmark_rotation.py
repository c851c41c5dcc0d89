"""The solve benchmark's well-posed rotation errors (scripts/benchmarks/solve_metrics.py: joint Sim(3),
all-pairs RPE) and its side-by-side bar (solve_bars.check_peers). numpy only, milliseconds."""
import math

import numpy as np

from backend.solve.track import so3_exp
from scripts.benchmarks import solve_bars as bars
from scripts.benchmarks import solve_metrics as sm
from scripts.benchmarks.records import Record


def straight_path(frames=30, seed=0):
    """GT: a camera dollying along x (a nearly straight path) while it pans: (F, 4, 4) world_from_camera."""
    rng = np.random.default_rng(seed)
    u = np.linspace(0, 1, frames)
    pose = np.tile(np.eye(4), (frames, 1, 1))
    pose[:, :3, :3] = so3_exp(np.stack([0.05 * np.sin(4 * u), 0.3 * u, 0.02 * u], -1))
    pose[:, :3, 3] = np.stack([2.0 * u, 1e-4 * rng.normal(size=frames), 1e-4 * rng.normal(size=frames)], -1)
    return pose


def similarity(pose, scale, rotation, translation):
    out = pose.copy()
    out[:, :3, :3] = np.einsum("ij,fjk->fik", rotation, pose[:, :3, :3])
    out[:, :3, 3] = scale * pose[:, :3, 3] @ rotation.T + translation
    return out


def test_positions_only_alignment_is_ill_posed_on_a_straight_path_and_the_new_measures_are_not():
    """Exact orientations, centres with 0.05 % lateral noise: the positions-only figure reports a rotation
    error of degrees (the aligner rolls about the path), the joint one a
    few thousandths (the noise on the axes the centres do pin) and the all-pairs one 0."""
    gt = straight_path()
    est = similarity(gt, 0.3, so3_exp(np.array([0.4, -1.0, 0.3])), np.array([5.0, -2.0, 1.0]))
    noise = np.random.default_rng(1).normal(0, 1e-3, (len(gt), 3))
    est[:, :3, 3] += noise * 0.3                       # in est's units (scale 0.3): ~0.05 % of the 2-unit path
    m = sm.evaluate_cameras(_cameras(est), len(gt), _cameras(gt))
    assert m["rotation_mean_deg"] > 1.0                # the old figure measures the aligner
    assert m["rotation_joint_mean_deg"] < 0.05 and m["rpe_rotation_mean_deg"] < 1e-4
    assert m["ate_percent"] < 0.2


def test_joint_sim3_recovers_an_exact_similarity_and_tripods():
    gt = straight_path()
    R = so3_exp(np.array([0.1, 0.2, -0.3]))
    est = similarity(gt, 2.5, R, np.array([1.0, 2.0, 3.0]))
    sim = sm.joint_sim3(est, gt)
    back = sim.apply(est[:, :3, 3])
    np.testing.assert_allclose(back, gt[:, :3, 3], atol=1e-9)
    errors, _ = sm.joint_rotation_errors_deg(est, gt)
    assert errors.max() < 1e-5
    tripod = gt.copy()
    tripod[:, :3, 3] = 0
    errors, sim = sm.joint_rotation_errors_deg(similarity(tripod, 1.0, R, np.zeros(3)), tripod)
    assert errors.max() < 1e-5 and sim.scale == 1.0


def test_rotation_errors_see_a_bad_frame():
    gt = straight_path(12)
    est = gt.copy()
    est[5, :3, :3] = est[5, :3, :3] @ so3_exp(np.array([0.0, math.radians(1.0), 0.0]))
    pairs = sm.pairwise_rotation_errors_deg(est[:, :3, :3], gt[:, :3, :3])
    assert pairs.shape == (66,)
    assert np.isclose(pairs.max(), 1.0, atol=1e-6) and np.sum(pairs > 0.5) == 11   # the pairs that include frame 5
    joint, _ = sm.joint_rotation_errors_deg(est, gt)
    assert int(np.argmax(joint)) == 5 and 0.8 < joint[5] < 1.0


def _cameras(pose, f=280.0):
    from exporters.cameras_json import CameraFrame, Cameras
    K = np.array([[f, 0, 160], [0, f, 120], [0, 0, 1.0]])
    return Cameras(width=320, height=240, frames=[CameraFrame(i, K, p) for i, p in enumerate(pose)])


def _record(method, role, ate, rot, registered=40, error=None, **extra):
    metrics = {"registered": registered, "frames": 40, "registered_str": f"{registered}/40", "ate_percent": ate,
               "rpe_rotation_mean_deg": rot, **extra}
    return Record("solve", "default", method, role, metrics=metrics, error=error)


def test_side_by_side_bar():
    ours = _record("shotfield", "shotfield", 0.01, 0.02)
    peers = [_record("pycolmap-global", "peer", 0.07, 0.05), _record("pycolmap-incremental", "peer", 0.1, 0.2, registered=3),
             _record("blender-tracker", "peer", math.nan, math.nan, error="exit 1")]
    check = bars.check_peers("default", ours.metrics, peers, tripod=False)
    assert check.status == "PASS", check
    assert "pycolmap-incremental failed (3/40 registered)" in check.value and "blender-tracker failed (error)" in check.value
    assert "ATE% 0.010<0.070" in check.value
    # Behind one peer on rotation alone is not ahead.
    assert bars.check_peers("default", ours.metrics, [_record("p", "peer", 0.07, 0.01)], False).status == "FAIL"
    # A failed peer is beaten only by a solve with every frame.
    partial = dict(ours.metrics, registered=39)
    assert bars.check_peers("default", partial, peers[1:], False).status == "FAIL"
    # Tripod: translation % of depth; an exact tie at 0 (two tripod solvers) is not behind.
    mine = dict(ours.metrics, tripod_translation_pct=0.0)
    tie = _record("blender-tracker-tripod", "peer", math.nan, 0.3, tripod_translation_pct=0.0)
    assert bars.check_peers("tripod", mine, [tie], True).status == "PASS"
    assert bars.check_peers("tripod", dict(mine, rpe_rotation_mean_deg=0.3), [tie], True).status == "FAIL"
    assert bars.check_peers("default", ours.metrics, [], False).status == "n/a"
