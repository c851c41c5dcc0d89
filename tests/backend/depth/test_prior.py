"""prior.snap_to_edges on a constructed occlusion edge: the depth edge moves to the colour edge, a blend of the
two sides takes one of them, and smooth depth is left alone; train._flat_parts: one depth per part of an
object."""
import numpy as np

from backend.depth.prior import snap_to_edges
from backend.depth.train import _flat_parts


def _scene():
    h, w = 40, 60
    rgb = np.zeros((h, w, 3), np.float32)
    rgb[:, :30] = (0.8, 0.3, 0.3)      # a near pillar, reddish
    rgb[:, 30:] = (0.2, 0.5, 0.7)      # the far wall, bluish
    rng = np.random.default_rng(0)
    rgb += rng.normal(0, 0.02, rgb.shape).astype(np.float32)   # texture
    truth = np.where(np.arange(w) < 30, np.log(4.0), np.log(12.0)).astype(np.float32)[None].repeat(h, 0)
    return rgb, truth


def test_fattened_edge_moves_to_the_colour_edge():
    rgb, truth = _scene()
    # the triangulation's foreground fattening: a column of the wall carries the pillar's depth; the pillar's
    # edge column is a blend of both sides
    prior = truth.copy()
    prior[:, 29] = np.log(6.0)
    prior[:, 30] = np.log(4.0)
    weight = np.ones(truth.shape, np.float32)
    out = snap_to_edges(prior, rgb, weight)
    assert np.abs(out - truth).max() < 1e-6, np.abs(out - truth).max(0)


def test_unreliable_neighbours_count_less():
    rgb, truth = _scene()
    prior = truth.copy()
    prior[:, 30:34] = np.log(4.0)          # four columns of the wall wrong: the nearer half of the window
    weight = np.ones(truth.shape, np.float32)
    plain = snap_to_edges(prior, rgb, weight)
    assert np.abs(plain[:, 30:34] - truth[:, 30:34]).min() > 1.0   # the majority wins where all weigh the same
    weight[:, 30:34] = 0.05                # the triangulation's confidence is low at the edge
    out = snap_to_edges(prior, rgb, weight)
    assert np.abs(out - truth).max() < 1e-6


def test_smooth_depth_is_left_alone():
    rgb, _ = _scene()
    ramp = np.linspace(np.log(3.0), np.log(3.2), 60, dtype=np.float32)[None].repeat(40, 0)
    out = snap_to_edges(ramp, rgb, np.ones(ramp.shape, np.float32))
    assert np.array_equal(out, ramp)


def test_each_part_of_an_object_takes_its_median():
    rng = np.random.default_rng(1)
    log_depth = rng.normal(1.0, 0.05, (2, 20, 30)).astype(np.float32)
    labels = np.zeros((2, 20, 30), np.int32)
    labels[0, 2:6, 2:6] = 3            # one identity in two separate parts
    labels[0, 10:15, 20:25] = 3
    labels[1, 5:9, 5:12] = 7
    log_depth[0, 10:15, 20:25] += 0.5  # the second part is farther
    out = _flat_parts(log_depth, labels)
    for t, sl in ((0, np.s_[2:6, 2:6]), (0, np.s_[10:15, 20:25]), (1, np.s_[5:9, 5:12])):
        assert np.all(out[t][sl] == np.median(log_depth[t][sl]))
    assert np.array_equal(out[labels == 0], log_depth[labels == 0])


def test_a_part_with_two_motions_at_two_depths_is_flattened_in_two():
    """train._flat_parts with the shot's flows (SPLIT_MOTIONS): an identity leaked onto another object keeps
    one median per motion; a part whose two motions share one depth (a rolling ball) keeps one median."""
    from backend.depth.shot import Pair, ShotInputs

    h, w = 30, 40
    rng = np.random.default_rng(2)
    labels = np.zeros((2, h, w), np.int32)
    labels[0, 5:25, 5:35] = 4                            # one connected part of one identity
    flow = np.zeros((h, w, 2), np.float32)
    flow[:, :20] = (-2.0, 0.5)                           # left: the crate's motion
    flow[:, 20:] = (3.0, 1.0)                            # right: the ball's
    flow += rng.normal(0, 0.1, flow.shape).astype(np.float32)
    pairs = [Pair(0, 1, flow, np.ones((h, w), bool)), Pair(1, 0, -flow, np.ones((h, w), bool))]
    shot = ShotInputs(np.zeros((2, h, w, 3), np.float32), labels > 0, pairs)
    log_depth = rng.normal(2.0, 0.02, (2, h, w)).astype(np.float32)
    log_depth[0, :, 20:] -= 0.3                          # the ball nearer
    out = _flat_parts(log_depth, labels, shot)
    left, right = np.s_[5:25, 5:20], np.s_[5:25, 20:35]
    assert np.all(out[0][left] == np.median(log_depth[0][left]))
    assert np.all(out[0][right] == np.median(log_depth[0][right]))
    same = log_depth.copy()
    same[0, :, 20:] += 0.3                               # both motions at one depth: one median
    out = _flat_parts(same, labels, shot)
    assert np.all(out[0][labels[0] == 4] == np.median(same[0][labels[0] == 4]))


def test_dome_relief_is_a_spheres_and_keeps_the_parts_median():
    from backend.depth.train import _dome_relief

    # a sphere of radius 1 at distance 10 seen by a camera of focal 200 px: a disc of radius ~20 px whose planar
    # depth is 10 - sqrt(1 - rho^2) (rho in units of the radius, the small-angle approximation)
    h, w, f = 64, 96, 200.0
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    rho = np.hypot(xs - 40, ys - 32) / 20.0
    labels = (rho < 1).astype(np.int32)[None]
    relief = _dome_relief(labels, f)[0]
    disc = labels[0] > 0
    truth = np.log(10 - np.sqrt(np.clip(1 - rho ** 2, 0, None)))
    truth -= np.median(truth[disc])
    assert abs(float(np.median(relief[disc]))) < 1e-6
    assert np.abs(relief - truth)[disc].mean() < 0.004      # the relief spans 0.1 in log depth
    assert np.all(relief[~disc] == 0)
    # cut by the frame's border the object goes on beyond it: its nearest point stays where the disc's centre is
    low = (np.hypot(xs - 40, ys - 56) < 20).astype(np.int32)[None]
    r = _dome_relief(low, f)[0]
    y, x = np.unravel_index(np.argmin(np.where(low[0] > 0, r, np.inf)), r.shape)
    assert abs(y - 56) <= 1 and abs(x - 40) <= 1
    # two objects touching in the image (two identities): each bulges about its own centre
    pair = np.zeros((1, h, w), np.int32)
    pair[0][np.hypot(xs - 30, ys - 32) < 12] = 1
    pair[0][(np.hypot(xs - 60, ys - 32) < 18) & (pair[0] == 0)] = 2
    r = _dome_relief(pair, f)[0]
    for k, (cy, cx) in ((1, (32, 30)), (2, (32, 60))):
        y, x = np.unravel_index(np.argmin(np.where(pair[0] == k, r, np.inf)), r.shape)
        assert abs(y - cy) <= 1 and abs(x - cx) <= 1, (k, y, x)


def test_an_identitys_depth_follows_its_running_median_over_time():
    from backend.depth.train import _smooth_over_time

    # one object coming nearer (log depth falling 0.02 a frame) whose contact read jumps in two frames
    n, h, w = 20, 30, 40
    labels = np.zeros((n, h, w), np.int32)
    labels[:, 10:20, 10:20] = 1
    labels[:, 22:28, 30:36] = 2           # another identity, seen in frames 0-1 only (too short a run)
    labels[2:, 22:28, 30:36] = 0
    path = np.log(8.0) - 0.02 * np.arange(n)
    depth = np.full((n, h, w), np.log(20.0), np.float32)
    for t in range(n):
        depth[t][labels[t] == 1] = path[t]
        depth[t][labels[t] == 2] = np.log(5.0)
    depth[7][labels[7] == 1] += 0.2
    depth[12][labels[12] == 1] -= 0.15
    out = _smooth_over_time(depth, labels)
    got = np.array([np.median(out[t][labels[t] == 1]) for t in range(n)])
    # the jumps go, the trend stays (a jump in the window moves the median by at most one frame's change)
    assert np.abs(got - path).max() < 0.021
    assert np.abs(got[[0, 1, 2, 17, 18, 19]] - path[[0, 1, 2, 17, 18, 19]]).max() < 1e-5
    assert np.array_equal(out[labels == 0], depth[labels == 0])   # the static scene is left alone
    assert np.array_equal(out[labels == 2], depth[labels == 2])
