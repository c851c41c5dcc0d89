"""backend/depth/diagnose.py on constructed cases: each failure mode is told apart, and a good field passes; the
training's drift check (train._drift_check) drops a correction that moved the static depth off its prior."""
import numpy as np

from backend.depth import diagnose


def _scene(n=3, h=20, w=24):
    K = np.array([[20.0, 0, 12], [0, 20.0, 10], [0, 0, 1]])
    wfc = np.tile(np.eye(4), (n, 1, 1))
    wfc[:, 0, 3] = np.arange(n) * 0.1  # the camera steps 0.1 to the right
    depth = np.full((n, h, w), 5.0, np.float32)
    moving = np.zeros((n, h, w), bool)
    moving[:, 5:10, 5:10] = True
    flows = {}
    for t in range(n - 1):
        uv, _ = diagnose.reproject(depth[t], K, K, wfc[t], wfc[t + 1])
        ys, xs = np.mgrid[0:h, 0:w]
        flow = uv - np.stack([xs + 0.5, ys + 0.5], -1)
        flow[moving[t]] += [3.0, 0.0]  # the object moves 3 px more than the camera explains
        flows[t] = flow
    return depth, moving, np.repeat(K[None], n, 0), wfc, flows


def test_modes():
    depth, moving, K, wfc, flows = _scene()
    good = np.zeros(depth.shape + (3,), np.float32)
    good[moving] = [0.75, 0, 0]
    assert diagnose.failure_modes(depth, good, moving, wfc, K, 5.0, flows)["mode"] == "none"
    lazy = np.zeros_like(good)
    assert diagnose.failure_modes(depth, lazy, moving, wfc, K, 5.0, flows)["mode"] == "lazy"
    everywhere = np.full_like(good, 0.5)
    assert diagnose.failure_modes(depth, everywhere, moving, wfc, K, 5.0, flows)["mode"] == "motion_explains_all"
    assert diagnose.failure_modes(depth * 0.1, good, moving, wfc, K, 5.0, flows)["mode"] == "collapse"


def test_temporal_consistency_of_exact_depth_is_zero():
    depth, moving, K, wfc, _ = _scene()
    c = diagnose.temporal_consistency(depth, K, wfc, moving)
    assert c["pixels"] > 0 and c["median_rel"] < 1e-5
    c2 = diagnose.temporal_consistency(depth * np.array([1.0, 1.1, 1.0])[:, None, None], K, wfc, moving)
    assert c2["median_rel"] > 0.05


def test_a_training_that_drags_the_static_depth_off_its_prior_is_dropped():
    from backend.depth.train import TrainResult, _drift_check

    n, h, w = 3, 20, 24
    prior = np.log(np.full((n, h, w), 5.0, np.float32))
    triangulated = np.ones((n, h, w), bool)
    triangulated[:, :4] = False
    moving = np.zeros((n, h, w), bool)
    moving[:, 8:14, 8:14] = True

    def result(log_depth):
        return TrainResult(log_depth, np.zeros((n, h, w, 3)), np.ones((n, h, w)), np.zeros((n, 3, 3)),
                           np.zeros((n, 4, 4)), False, 0, 0.0)

    # a correction of the object's depth and of the untriangulated pixels is the training's to make
    kept = prior.copy()
    kept[moving] += 0.3
    kept[:, :4] -= 0.2
    kept += np.random.default_rng(0).normal(0, 0.002, kept.shape).astype(np.float32)
    r = result(kept.copy())
    check = _drift_check(r, prior, triangulated, moving)
    assert not check["dropped"] and check["median_change"] < 0.005
    assert np.array_equal(r.log_depth, kept)
    # a runaway: the whole map 6 % off the cameras' scale
    r = result(prior - 0.06)
    check = _drift_check(r, prior, triangulated, moving)
    assert check["dropped"] and abs(check["median_change"] - 0.06) < 1e-4
    assert np.array_equal(r.log_depth, prior)
