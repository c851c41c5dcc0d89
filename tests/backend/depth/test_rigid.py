"""backend/depth/rigid.py: an object's depth ratios from its own image scale, the per-object trajectory that
follows them and robustly meets the contact cue, and the object identities on the test shot."""
import numpy as np

from backend.depth import rigid
from backend.depth.objects import object_pixels
from backend.depth.shot import load_shot
from backend.depth.triangulate import triangulate_shot


def test_vertical_scale_recovers_the_scale_and_is_symmetric():
    rng = np.random.default_rng(0)
    y = rng.uniform(40, 80, 400)
    k = 0.97   # the object 3 % farther in the second frame
    y2 = k * (y - 60) + 62 + rng.normal(0, 0.1, y.size)
    y2[:20] += 8.0   # outliers (another object's flow)
    forward = rigid._vertical_scale(y, y2)
    backward = rigid._vertical_scale(y2, y)
    assert forward is not None and backward is not None
    assert abs(forward[0] - np.log(k)) < 0.003
    assert abs(forward[0] + backward[0]) < 0.002   # ordinary least squares misses this by the noise's share
    assert rigid._vertical_scale(y[:5], y2[:5]) is None   # too few matches


def test_trajectory_follows_the_ratios_and_ignores_unreliable_anchors():
    frames = list(range(20))
    truth = 2.0 - 0.01 * np.arange(20)
    anchors = truth.copy()
    anchors[:5] -= 0.15    # the contact cue near the horizon: biased, and known to be sensitive there
    anchors[15:] -= 0.12   # merged with another object
    weights = np.full(20, 1.0 / rigid.ANCHOR_SIGMA ** 2)
    weights[:5] = 1.0 / (rigid.ANCHOR_SIGMA ** 2 + 0.1 ** 2)
    weights[15:] *= rigid.MERGED_WEIGHT
    edges = [(t, t + g, truth[t + g] - truth[t], 1.0 / rigid.RATIO_SIGMA ** 2)
             for g in (1, 2) for t in range(0, 15 - g)]   # ratios only where the object is on its own
    L, misfit = rigid._solve(frames, anchors, weights, edges)
    assert np.abs(L - truth).max() < 0.03, np.round(L - truth, 3)
    assert misfit < 1e-3   # the per-frame contact cue alone is off by 0.15


def test_object_labels_and_their_depth_ratios_on_the_test_shot(pipeline_job, test_shot):
    shot = load_shot(pipeline_job())
    depth, conf = triangulate_shot(shot)
    tight = object_pixels(shot, depth, conf)
    labels = rigid.object_labels(shot, tight)
    assert ((labels > 0) == tight).all()
    n = shot.frames
    truth = np.stack([test_shot.object_index(i) for i in range(n)])
    # the biggest identity is one object most of the time (not a mix of both)
    sizes = np.bincount(labels.ravel())[1:]
    big = int(np.argmax(sizes)) + 1
    counts = np.bincount(truth[labels == big], minlength=3)[1:]
    assert counts.max() > 1.5 * counts.min(), counts
    # gap-1 depth ratios of identities that are mostly one object match the true depth change
    gt = np.stack([test_shot.depth(i) for i in range(n)])
    errors = []
    for k, t, s, d, _ in rigid.depth_ratios(shot, labels):
        if abs(s - t) != 1:
            continue
        on_t, on_s = (labels[t] == k) & (truth[t] > 0), (labels[s] == k) & (truth[s] > 0)
        if on_t.sum() < 0.6 * (labels[t] == k).sum() or on_s.sum() < 20:
            continue
        errors.append(d - (np.median(np.log(gt[s][on_s])) - np.median(np.log(gt[t][on_t]))))
    assert len(errors) >= 10
    assert np.median(np.abs(errors)) < 0.03, np.round(errors, 3)
