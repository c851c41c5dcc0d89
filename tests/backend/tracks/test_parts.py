"""The parts of the tracker: invertible maps, chained flow, long-gap flow checked against chains, triangulated
depth, hard-example mining, cycle-consistent visibility."""
import cv2
import numpy as np
import pytest
import torch

from backend.flow_store import SCALE, FlowStore
from backend.tracks import geometry
from backend.tracks import query
from backend.tracks.flow_data import Correspondences, compose, prefer_agreeing
from backend.tracks.model import ModelConfig, OmniMotion


def small_model(frames=5, width=32, height=24) -> OmniMotion:
    geo = geometry.shot_geometry(geometry.Path("/nonexistent"), frames, width, height, None)
    return OmniMotion(ModelConfig(frames=frames, hidden=16, plane_resolution=8), geo)


def test_maps_start_as_the_identity_and_stay_invertible():
    torch.manual_seed(0)
    model = small_model().double()    # double: random weights make steep maps, float32 round-off would grow
    x = torch.rand(7, 5, 3, dtype=torch.float64) * 2 - 1
    frame = torch.arange(7) % 5
    assert torch.allclose(model.to_canonical(x, frame), x)
    with torch.no_grad():   # any weights: the coupling layers are invertible in closed form
        for p in model.couplings.parameters():
            p.normal_(0, 0.3)
    u = model.to_canonical(x, frame)
    assert not torch.allclose(u, x, atol=1e-3)
    assert torch.allclose(model.from_canonical(u, frame), x, atol=1e-8)


def test_a_traced_ray_lands_on_its_own_pixel_in_its_own_frame():
    torch.manual_seed(0)
    model = small_model().double()    # random weights make steep maps: float32 round-off reaches 1e-3 px
    with torch.no_grad():
        for p in model.couplings.parameters():
            p.normal_(0, 0.3)
    frame = torch.tensor([0, 2, 4])
    pixels = torch.tensor([[3.5, 4.5], [20.5, 10.5], [31.5, 23.5]], dtype=torch.float64)
    ray = model.trace(frame, pixels)
    landed, depth, _ = model.map_to(ray, frame)
    assert torch.allclose(landed, pixels, atol=1e-3)
    assert torch.all((depth > geometry.NO_SOLVE_NEAR * 0.99) & (depth < geometry.NO_SOLVE_FAR * 1.01))


def test_composed_flow_adds_up_and_is_invalid_where_either_link_is():
    h, w = 12, 16
    f1 = np.zeros((h, w, 2), np.float32)
    f1[..., 0] = 2.0
    f2 = np.zeros((h, w, 2), np.float32)
    f2[..., 1] = 1.5
    v1 = np.ones((h, w), bool)
    v2 = np.ones((h, w), bool)
    v2[5, 7] = False                              # reached from (5, 5) by f1
    flow, valid = compose(f1, v1, f2, v2)
    np.testing.assert_allclose(flow[..., 0], 2.0)
    np.testing.assert_allclose(flow[..., 1], 1.5)
    assert not valid[5, 5] and valid[5, 4]
    assert not valid[:, -2:].any()                # leaves the frame after the first link


def test_long_gap_flow_is_kept_only_where_the_chained_flow_agrees():
    h, w = 4, 5
    chained = np.zeros((h, w, 2), np.float32)
    chained[..., 0] = 10.0
    chained_valid = np.ones((h, w), bool)
    chained_valid[3, 4] = False
    direct = chained + 0.5                       # agrees within 1 px + 5 % of 10 px ...
    direct[0, 0] = (-3.0, 0.0)                   # ... except here: consistently wrong, e.g. matched to the background
    direct_valid = np.ones((h, w), bool)
    direct_valid[1, 1] = False
    flow, valid = prefer_agreeing((direct, direct_valid), (chained, chained_valid))
    np.testing.assert_allclose(flow[2, 2], direct[2, 2])        # both valid and agreeing: the direct flow
    np.testing.assert_allclose(flow[0, 0], chained[0, 0])       # disagreeing: the chain's
    np.testing.assert_allclose(flow[1, 1], chained[1, 1])       # direct failed its check: the chain's
    assert valid[0, 0] and valid[1, 1] and not valid[3, 4]      # valid where the chain is


def test_long_gap_correspondences_follow_the_moving_objects(ground_truth_pipeline, test_shot):
    """On the test shot, direct DIS flow over 8 and 16 frames passes its forward-backward check on the moving
    objects while matching them to the background; the correspondences (checked against chains) do not."""
    store = FlowStore(ground_truth_pipeline)
    rgb = np.zeros((store.frames, store.height, store.width, 3), np.uint8)
    data = Correspondences(store, rgb)
    gt = test_shot.tracks()
    moving = np.flatnonzero(gt["query_object"] > 0)
    errors = {"ours": [], "direct": []}
    for gap in (8, 16):
        for k in moving:
            i = int(gt["queries"][k, 0])
            j = i + gap if i + gap < store.frames else i - gap
            if j < 0 or not gt["visible"][j, k]:
                continue
            x, y = (gt["queries"][k, 1:3]).astype(int)
            truth = gt["xy"][j, k] - gt["queries"][k, 1:3]
            p = int(np.flatnonzero((data.src == i).numpy() & (data.dst == j).numpy())[0])
            if data.valid[p, y, x]:
                errors["ours"].append(np.linalg.norm(data.flow[p, y, x].float().numpy() / SCALE - truth))
            if j > i:
                flow, ok = store.forward(i, gap), store.forward_valid(i, gap)
            else:
                flow, ok = store.backward(j, gap), store.backward_valid(j, gap)
            if ok[y, x]:
                errors["direct"].append(np.linalg.norm(flow[y, x] - truth))
    ours, direct = np.median(errors["ours"]), np.median(errors["direct"])
    # measured: 0.9 px against 21 px (55 and 26 valid pairs)
    assert len(errors["ours"]) > 20 and ours < 3.0 and ours < 0.5 * direct, (ours, direct, len(errors["ours"]))


class TranslatingStore:
    """A flow store whose every gap is a uniform translation by `step` px per frame, except where `wrong`
    gaps hold a consistent but wrong flow (zero, as DIS gives a moving object matched to the background)."""

    def __init__(self, gaps, wrong=(), frames=12, height=16, width=24, step=0.5):
        self.gaps, self.wrong, self.frames, self.height, self.width, self.step = list(gaps), wrong, frames, height, width, step

    def _flow(self, gap, sign):
        f = np.zeros((self.height, self.width, 2), np.float32)
        f[..., 0] = 0.0 if gap in self.wrong else sign * self.step * gap
        return f

    def forward(self, t, gap):
        return self._flow(gap, 1)

    def backward(self, t, gap):
        return self._flow(gap, -1)

    def forward_valid(self, t, gap):
        return np.ones((self.height, self.width), bool)

    backward_valid = forward_valid


def test_correspondences_replace_wrong_long_gaps_and_chain_gaps_not_stored():
    """Gaps 1 and 4 stored, gap 4 consistently wrong: the chain of four gap-1 steps replaces it; gaps the store
    lacks (8, and the whole shot, 11 = 8 + 3 = 8 + 1 + 2 + ...) are chained, also through gaps (2, 3) that were
    never stored."""
    store = TranslatingStore([1, 4], wrong=(4,))
    data = Correspondences(store, np.zeros((store.frames, store.height, store.width, 3), np.uint8))
    assert data.gaps == [1, 4, 8, 11]
    for k in range(data.pairs):
        gap = int(data.dst[k] - data.src[k])
        valid = data.valid[k].numpy()
        assert valid.any()
        dx = data.flow[k][..., 0].float().numpy()[valid] / SCALE
        np.testing.assert_allclose(dx, store.step * gap, atol=1.0 / SCALE)


def test_short_gaps_are_checked_against_the_chain_on_the_motion_masks_only():
    """Gap 2 consistently wrong (as DIS gives on a moving object) and stored: on the motion masks it is
    replaced by the chain of two gap-1 steps; elsewhere the stored gap 2 stands as it is (the static scene's
    direct short-gap flow drifts less than a chain)."""
    store = TranslatingStore([1, 2], wrong=(2,), step=2.0)
    moving = np.zeros((store.frames, store.height, store.width), bool)
    moving[:, :, :8] = True
    data = Correspondences(store, np.zeros((store.frames, store.height, store.width, 3), np.uint8), moving=moving)
    for k in range(data.pairs):
        gap = int(data.dst[k] - data.src[k])
        if abs(gap) != 2:
            continue
        dx = data.flow[k][..., 0].float().numpy() / SCALE
        valid = data.valid[k].numpy()
        inside = moving[0] & valid
        assert inside.any()
        np.testing.assert_allclose(dx[inside], store.step * gap, atol=1.0 / SCALE)
        np.testing.assert_allclose(dx[~moving[0]], 0.0, atol=1.0 / SCALE)
        assert valid[~moving[0]].all()


def test_correspondences_chain_long_gaps_and_mine_hard_examples(ground_truth_pipeline):
    store = FlowStore(ground_truth_pipeline)
    rgb = np.zeros((store.frames, store.height, store.width, 3), np.uint8)
    data = Correspondences(store, rgb)
    assert set(store.gaps) <= set(data.gaps) and max(data.gaps) == store.frames - 1
    # Every gap in both directions: F - g pairs each way.
    assert data.pairs == sum(2 * (store.frames - g) for g in data.gaps)
    # The chained whole-shot pair: valid pixels exist and move like the stored flow's longest gap suggests.
    whole = int(np.flatnonzero((data.src == 0).numpy() & (data.dst == store.frames - 1).numpy())[0])
    assert data.valid[whole].float().mean() > 0.1
    # Mining: recorded errors land in their cells, and draws follow them: a pair whose cells all erred
    # by 100x the others is drawn far more often than its uniform share.
    batch = data.sample(256)
    error = torch.full((256,), 7.0)
    data.record(batch, error)
    first = batch["valid"].nonzero()[0, 0]
    assert data.error[batch["pair"][first], batch["cell"][first]] == 7.0
    data.error.fill_(0.05)
    hot = 3
    data.error[hot] = 5.0
    drawn = data.sample(4000)
    share = (drawn["pair"] == hot).float().mean()
    assert share > 10.0 / data.pairs, share


def test_triangulated_depth_matches_the_ground_truth_on_the_static_scene(ground_truth_pipeline, test_shot):
    job = ground_truth_pipeline
    store = FlowStore(job)
    solved = geometry.read_solved_cameras(job, store.frames, store.width, store.height)
    assert solved is not None
    moving = geometry.read_motion_masks(job, store.frames)
    frames = [0, 12]
    depth = geometry.triangulated_depth(store, *solved, moving, [g for g in store.gaps if g >= 2])
    for i in frames:
        gt = test_shot.depth(i)
        known = np.isfinite(depth[i]) & np.isfinite(gt)
        assert known.mean() > 0.5
        rel = np.abs(depth[i][known] - gt[known]) / gt[known]
        assert np.median(rel) < 0.03, np.median(rel)
    guide = geometry.guide_depth(depth)
    assert np.isfinite(guide).all() and (guide > 0).all()
    # The holes (the moving objects among them) are filled within the frame's range of known depth, near
    # the surface around them: the objects stand on the ground, in front of the wall behind them.
    for i in range(store.frames):
        known = depth[i][np.isfinite(depth[i])]
        assert known.min() * 0.999 <= guide[i].min() and guide[i].max() <= known.max() * 1.001
    objects = np.stack([test_shot.object_index(i) > 0 for i in frames])
    ratio = guide[frames][objects] / np.stack([test_shot.depth(i) for i in frames])[objects]
    assert 0.8 < np.median(ratio) < 1.5, np.median(ratio)


def test_holes_in_the_guide_are_filled_smoothly_within_the_known_depth():
    """A plane receding from 2 to 6 with holes: the filled guide stays between its neighbours' depths
    (OpenCV's Telea inpainting of floats overshoots by orders of magnitude here)."""
    h, w = 40, 60
    depth = np.tile(np.linspace(2.0, 6.0, h, dtype=np.float32)[:, None], (1, w))[None].copy()
    depth[0, 15:25, 20:35] = np.nan
    depth[0, 30:38, 5:12] = np.nan
    guide = geometry.guide_depth(depth)
    assert np.isfinite(guide).all()
    assert guide.min() >= 2.0 - 1e-4 and guide.max() <= 6.0 + 1e-4
    hole = np.isnan(depth[0])
    truth = np.tile(np.linspace(2.0, 6.0, h)[:, None], (1, w))
    assert np.abs(guide[0][hole] - truth[hole]).max() < 0.5
    np.testing.assert_allclose(guide[0][~hole], depth[0][~hole], rtol=1e-5)



def test_flow_refinement_follows_the_flow_where_it_agrees_with_the_model():
    """The model's tracks off a uniform 0.5 px/frame translation by +-0.3 px (alternating): refined, they
    follow the flow exactly, both ways from each query frame. Where the flow fails its check the model's
    position stands and the chain goes on from it; where the model puts the point elsewhere (beyond the
    tolerance), the model wins."""
    store = TranslatingStore([1], frames=12, height=16, width=24, step=0.5)
    invalid_at = 3                                           # frame 3's forward flow fails the check
    store.forward_valid = lambda t, gap: np.full((store.height, store.width), t != invalid_at)
    queries = np.array([[0, 4.5, 5.5], [6, 12.5, 9.5], [0, 6.5, 12.5]], np.float32)
    frames = np.arange(store.frames, dtype=np.float32)[:, None]
    truth = np.stack([queries[:, 1] + store.step * (frames - queries[:, 0]),
                      np.broadcast_to(queries[:, 2], (store.frames, 3))], -1)
    model = truth.copy()
    model[..., 1] += 0.3 * (-1.0) ** frames                  # the model's jitter
    for k, (f, x, y) in enumerate(queries):
        model[int(f), k] = (x, y)
    model[8:, 2, 0] += 20.0                                  # the model has query 2 elsewhere from frame 8 on
    refined, followed = query.refine_with_flow(store, queries, model, tolerance_px=4.0)
    np.testing.assert_allclose(refined[:4, 0], truth[:4, 0], atol=1e-4)
    np.testing.assert_allclose(refined[:, 1], truth[:, 1], atol=1e-4)       # both ways from frame 6
    # frame 3 -> 4 failed the check: the model's position at frame 4, and the chain goes on from there
    np.testing.assert_allclose(refined[4, 0], model[4, 0], atol=1e-4)
    np.testing.assert_allclose(refined[5:, 0], truth[5:, 0] + (0.0, 0.3), atol=1e-4)
    assert np.abs(refined[5:, 0] - model[5:, 0]).max() > 0.5
    np.testing.assert_allclose(refined[8, 2], model[8, 2], atol=1e-4)
    np.testing.assert_allclose(refined[8:, 2, 0], model[8:, 2, 0], atol=1e-4)     # and goes on from there
    np.testing.assert_allclose(refined[1:3, 2], truth[1:3, 2], atol=1e-4)
    # followed by the flow alone since the query frame: query 0 up to frame 3 (the step to 4 failed), query 1
    # on every frame but its own (backwards from 6 the flow passes its check everywhere), query 2 up to frame 3
    t = np.arange(store.frames)
    np.testing.assert_array_equal(followed[:, 0], (t >= 1) & (t <= 3))
    np.testing.assert_array_equal(followed[:, 1], t != 6)
    np.testing.assert_array_equal(followed[:, 2], (t >= 1) & (t <= 3))


class SlowObjectStore(TranslatingStore):
    """Flow of a still camera: the background's flow is noise of +-0.35 px that does not grow with the gap (as
    DIS's errors), a 12 px square moves 0.4 px a frame to the right (a slow object on a small frame). The
    store's reading (forward, backward, valid everywhere) is TranslatingStore's; only the flow differs."""

    def __init__(self, frames=12, height=48, width=64):
        self.gaps, self.frames, self.height, self.width = [1, 2, 4, 8], frames, height, width
        self.object = np.zeros((height, width), bool)
        self.object[18:30, 24:36] = True
        ys, xs = np.mgrid[0:height, 0:width]
        self.noise = np.where((xs + ys) % 2 == 0, 0.35, -0.35).astype(np.float32)

    def _flow(self, gap, sign):
        f = np.zeros((self.height, self.width, 2), np.float32)
        f[..., 0] = np.where(self.object, sign * 0.4 * gap, self.noise)
        f[..., 1] = self.noise
        return f


def test_object_pixels_of_a_slow_object_are_found_by_the_long_gap(monkeypatch):
    """A square moving 0.4 px a frame under a still camera, on motion masks 6 px wider all round: its gap-1
    flow is under rigid.RESIDUAL_PX off the static scene, so only the gap-4 flow (1.6 px, against 1/64 of
    the long side: 1 px) tells it from the background's noise; the background on the masks stays out."""
    from backend.tracks import rigid
    store = SlowObjectStore()
    F, H, W = store.frames, store.height, store.width
    K = np.broadcast_to(np.array([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]]), (F, 3, 3)).copy()
    pose = np.broadcast_to(np.eye(4), (F, 4, 4)).copy()
    guide = np.full((F, H, W), 5.0, np.float32)
    masks = np.zeros((F, H, W), bool)
    masks[:, 12:36, 18:42] = True
    found = rigid.object_pixels(store, K, pose, guide, masks)
    assert found[:, store.object].mean() > 0.95
    assert not found[:, ~store.object].any()
    monkeypatch.setattr(rigid, "LONG_GAP", 3)          # a gap the store does not hold: gap 1 alone
    assert not rigid.object_pixels(store, K, pose, guide, masks).any()


def test_photometric_pose_refinement_recovers_a_shift_the_flow_missed():
    """A textured plane seen in frame 0 and, shifted by (1.3, -0.7) px, in frame 1: started from the pose that
    does not move it (as a flow short by the whole step would give), refine_pose finds the shift from the
    brightness alone to within 0.05 px; with brightness that matches nowhere (a flat image) it leaves the pose
    as it was."""
    from backend.tracks import photometric

    rng = np.random.default_rng(0)
    texture = rng.uniform(0, 255, (64, 64)).astype(np.float32)
    frame0 = np.clip(cv2.GaussianBlur(texture, (0, 0), 2.0) * 3 - 255, 0, 255)
    shift = np.array([1.3, -0.7])
    frame1 = cv2.warpAffine(frame0, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (64, 64),
                            flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    images = photometric.images(np.stack([frame0, frame1]).astype(np.uint8))
    K = np.array([[60.0, 0, 32], [0, 60.0, 32], [0, 0, 1]])
    ys, xs = np.mgrid[22:42, 22:42].reshape(2, -1) + 0.5
    pix = np.stack([xs, ys], 1)
    X = geometry.unproject(K, pix, np.full(len(pix), 5.0))
    colours = geometry.bilinear(images.gray[0], pix)
    refined = photometric.refine_pose(np.eye(4), X, colours, K, images.gray[1], images.grad[1])
    moved = X @ refined[:3, :3].T + refined[:3, 3]
    landed = np.stack([moved[:, 0] / moved[:, 2] * 60 + 32, moved[:, 1] / moved[:, 2] * 60 + 32], 1)
    assert np.abs(np.median(landed - pix, axis=0) - shift).max() < 0.05
    flat = np.full_like(images.gray[1], 0.5)
    still = photometric.refine_pose(np.eye(4), X, colours, K, flat, np.zeros_like(images.grad[1]))
    np.testing.assert_array_equal(still, np.eye(4))


def test_static_points_are_placed_and_hidden_by_the_cameras_and_the_depth_guide():
    # a wall at depth 10 seen by a camera sliding along x (0.5 a frame: 4 px of an 80 px focal length), a
    # nearer surface (depth 5) in front of the point in frame 2 only
    F, H, W = 6, 60, 80
    K = np.tile(np.array([[80.0, 0, 40], [0, 80.0, 30], [0, 0, 1]]), (F, 1, 1))
    pose = np.tile(np.eye(4), (F, 1, 1))
    pose[:, 0, 3] = 0.5 * np.arange(F)
    guide = np.full((F, H, W), 10.0, np.float32)
    guide[2, 25:36, 25:40] = 5.0
    queries = np.array([[0, 40.5, 30.5], [3, 6.5, 20.5]], np.float32)
    xy, z, seen = query.static_projection(K, pose, guide, queries)
    expected = 40.5 - 4.0 * np.arange(F)
    assert np.abs(xy[:, 0, 0] - expected).max() < 1e-3 and np.abs(xy[:, 0, 1] - 30.5).max() < 1e-3
    assert np.abs(z - 10.0).max() < 1e-4
    assert seen[:, 0].tolist() == [True, True, False, True, True, True]
    # the second point (x 6.5 in frame 3) leaves the frame over its left edge in frame 5
    assert np.abs(xy[:, 1, 0] - (6.5 - 4.0 * (np.arange(F) - 3))).max() < 1e-3
    assert seen[:, 1].tolist() == [True, True, True, True, True, False]


def test_static_points_are_hidden_where_the_checked_flow_moves_unlike_them():
    # the static scene slides 0.5 px a frame; a moving object (flow 3 px a frame the other way) covers
    # x 8-14 in frame 2, where the flow fails its check on x 12-14; a second point sits on a pixel whose flow
    # is off by less than the tolerance (flow noise) in frame 4
    store = TranslatingStore([1], frames=6, height=16, width=24, step=0.5)
    plain, fwd = store.forward, store.forward_valid

    def forward(t, gap):
        f = plain(t, gap).copy()
        if t == 2:
            f[:, 8:15, 0] = -3.0
        if t == 4:
            f[:, 18:20, 0] += 0.5
        return f

    def forward_valid(t, gap):
        ok = fwd(t, gap).copy()
        if t == 2:
            ok[:, 12:15] = False
        return ok

    store.forward, store.forward_valid = forward, forward_valid
    steps = 0.5 * np.arange(6, dtype=np.float32)
    xy = np.zeros((6, 3, 2), np.float32)
    xy[:, 0, 0] = 9.0 - 2.0 * 0.5 + steps      # at x 9.0 in frame 2: on the object, its flow checked
    xy[:, 1, 0] = 13.0 - 2.0 * 0.5 + steps     # at x 13.0 in frame 2: on the object, its flow unchecked
    xy[:, 2, 0] = 19.0 - 4.0 * 0.5 + steps     # at x 19.0 in frame 4: 0.5 px off, under the tolerance
    xy[..., 1] = 8.5
    hidden = query.static_occluded(store, xy, 1.0)
    assert hidden[:, 0].tolist() == [False, False, True, False, False, False]
    assert not hidden[:, 1].any() and not hidden[:, 2].any()
    assert query.static_occluded(store, xy, 0.25)[:, 2].tolist() == [False, False, False, False, True, False]
