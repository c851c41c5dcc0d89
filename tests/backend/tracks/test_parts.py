"""The parts of the tracker: invertible maps, chained flow, triangulated depth, hard-example mining."""
import numpy as np
import pytest
import torch

from backend.flow_store import FlowStore
from backend.tracks import geometry
from backend.tracks.flow_data import Correspondences, compose
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
    model = small_model()
    with torch.no_grad():
        for p in model.couplings.parameters():
            p.normal_(0, 0.3)
    frame = torch.tensor([0, 2, 4])
    pixels = torch.tensor([[3.5, 4.5], [20.5, 10.5], [31.5, 23.5]])
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
