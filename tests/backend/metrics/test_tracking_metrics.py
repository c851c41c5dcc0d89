"""TAP-Vid metrics on hand-made tracks with known answers."""
import numpy as np
import pytest

from backend.metrics.tracking import (evaluation_frames, queries_txy_to_tyx, queries_tyx_to_txy,
                                      rescale_to_eval_size, tapvid_metrics)

F, N = 6, 4


def scene(query_frame=0):
    rng = np.random.default_rng(0)
    gt = rng.uniform(20, 230, size=(F, N, 2))
    visible = np.ones((F, N), bool)
    queries = np.stack([np.full(N, query_frame), gt[query_frame, :, 0], gt[query_frame, :, 1]], axis=1)
    return queries, gt, visible


def test_perfect_prediction():
    q, gt, vis = scene()
    vis[3, 1] = False
    m = tapvid_metrics(q, gt, vis, gt.copy(), vis.copy(), 256, 256)
    assert (m.aj, m.delta_avg, m.oa) == (1.0, 1.0, 1.0)
    assert m.evaluated == (F - 1) * N


def test_three_pixels_off_in_a_256_image():
    q, gt, vis = scene()
    m = tapvid_metrics(q, gt, vis, gt + [3.0, 0.0], vis, 256, 256)
    assert m.within == {1: 0.0, 2: 0.0, 4: 1.0, 8: 1.0, 16: 1.0}
    assert m.jaccard == {1: 0.0, 2: 0.0, 4: 1.0, 8: 1.0, 16: 1.0}
    assert m.delta_avg == pytest.approx(0.6) and m.aj == pytest.approx(0.6) and m.oa == 1.0


def test_positions_are_rescaled_to_256():
    q, gt, vis = scene()
    # 3 px in a 512-wide image is 1.5 px at 256: now within 2 px too. The height does not matter for x.
    m = tapvid_metrics(q, gt * [2, 1], vis, gt * [2, 1] + [3.0, 0.0], vis, 512, 256)
    assert m.within == {1: 0.0, 2: 1.0, 4: 1.0, 8: 1.0, 16: 1.0}
    m = tapvid_metrics(q, gt, vis, gt + [0.0, 3.0], vis, 256, 512)   # 3 px of 512 rows: 1.5 px
    assert m.delta_avg == pytest.approx(0.8)
    np.testing.assert_allclose(rescale_to_eval_size([[640, 360]], 1280, 720), [[128, 128]])


def test_wrong_visibility():
    q, gt, vis = scene()
    pred_vis = vis.copy()
    pred_vis[2:4, 0] = False        # 2 of the 20 evaluated pairs predicted occluded: false negatives
    m = tapvid_metrics(q, gt, vis, gt, pred_vis, 256, 256)
    assert m.oa == pytest.approx(18 / 20)
    assert m.delta_avg == 1.0       # position accuracy ignores predicted visibility
    assert m.aj == pytest.approx(18 / 20)   # TP 18 / (20 GT-visible + 0 FP)


def test_occluded_points_predicted_visible_are_false_positives():
    q, gt, vis = scene()
    vis[4:, 2] = False              # 2 pairs occluded in the GT, predicted visible at the right place
    m = tapvid_metrics(q, gt, vis, gt, np.ones((F, N), bool), 256, 256)
    assert m.oa == pytest.approx(18 / 20)
    assert m.delta_avg == 1.0       # over the 18 GT-visible pairs
    assert m.aj == pytest.approx(18 / (18 + 2))


def test_query_frame_is_not_evaluated():
    q, gt, vis = scene(query_frame=2)
    pred, pred_vis = gt.copy(), vis.copy()
    pred[2] += 50.0                 # garbage at the query frame only
    pred_vis[2] = False
    m = tapvid_metrics(q, gt, vis, pred, pred_vis, 256, 256)
    assert (m.aj, m.delta_avg, m.oa) == (1.0, 1.0, 1.0)
    # Frames before the query count in "strided" mode but not in "first" mode.
    pred[0] += 50.0
    strided = tapvid_metrics(q, gt, vis, pred, vis, 256, 256, query_mode="strided")
    first = tapvid_metrics(q, gt, vis, pred, vis, 256, 256, query_mode="first")
    assert strided.delta_avg == pytest.approx(4 / 5)
    assert first.delta_avg == 1.0 and first.evaluated == 3 * N


def test_evaluation_frames_layout():
    ev = evaluation_frames(np.array([0, 2.4]), 4, "strided")
    np.testing.assert_array_equal(ev.T, [[0, 1, 1, 1], [1, 1, 0, 1]])
    np.testing.assert_array_equal(evaluation_frames(np.array([1]), 4, "first").T, [[0, 0, 1, 1]])
    with pytest.raises(ValueError):
        evaluation_frames(np.array([0]), 4, "last")


def test_query_order_conversion():
    txy = np.array([[3, 10.0, 20.0], [0, 1.5, 2.5]])
    tyx = queries_txy_to_tyx(txy)
    np.testing.assert_array_equal(tyx, [[3, 20.0, 10.0], [0, 2.5, 1.5]])
    np.testing.assert_array_equal(queries_tyx_to_txy(tyx), txy)
    assert not np.array_equal(tyx, txy)   # the swap is real: passing [t, x, y] as [t, y, x] is wrong


def reference_metrics(q, gt, vis, pred, pred_vis, w, h):
    """Straight from the definitions, one (frame, point) pair at a time (strided mode)."""
    scale = np.array([256 / w, 256 / h])
    out = {"oa": [0, 0]}
    for thr in (1, 2, 4, 8, 16):
        tp = fp = fn = correct = visible = 0
        for t in range(gt.shape[0]):
            for i in range(gt.shape[1]):
                if t == int(round(q[i, 0])):
                    continue
                if thr == 1:
                    out["oa"][0] += vis[t, i] == pred_vis[t, i]
                    out["oa"][1] += 1
                close = np.linalg.norm((pred[t, i] - gt[t, i]) * scale) < thr
                visible += vis[t, i]
                correct += vis[t, i] and close
                if pred_vis[t, i] and vis[t, i] and close:
                    tp += 1
                elif pred_vis[t, i]:
                    fp += 1
                if vis[t, i] and not (pred_vis[t, i] and close):
                    fn += 1
        out[thr] = (correct / visible, tp / (tp + fp + fn))
    return out


def test_matches_the_definitions_on_random_tracks():
    rng = np.random.default_rng(7)
    f, n, w, h = 9, 30, 320, 240
    gt = rng.uniform(0, [w, h], size=(f, n, 2))
    pred = gt + rng.normal(scale=4.0, size=gt.shape)
    vis, pred_vis = rng.random((f, n)) > 0.2, rng.random((f, n)) > 0.3
    q = np.stack([rng.integers(0, f, n), gt[0, :, 0], gt[0, :, 1]], axis=1).astype(float)
    m = tapvid_metrics(q, gt, vis, pred, pred_vis, w, h)
    ref = reference_metrics(q, gt, vis, pred, pred_vis, w, h)
    assert m.oa == pytest.approx(ref["oa"][0] / ref["oa"][1])
    for thr in (1, 2, 4, 8, 16):
        assert m.within[thr] == pytest.approx(ref[thr][0])
        assert m.jaccard[thr] == pytest.approx(ref[thr][1])
    assert 0.05 < m.aj < 0.95       # a non-trivial case
