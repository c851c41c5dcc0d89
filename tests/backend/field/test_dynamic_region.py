"""The dynamic field's region (space.fit_dynamic_region): fitted to the motion-masked prior points of the whole
shot, mapped linearly onto the dynamic planes, empty outside, and kept in field.json; and its per-frame gate
(space.motion_occupancy): at each time only the cells near that time's masked points may be dynamic."""
import json

import numpy as np
import torch

from backend.field.model import FieldConfig, SceneField, load_checkpoint, save_checkpoint
from backend.field.space import OCCUPANCY_CELLS, SceneBox, fit_dynamic_region, image_grid, motion_occupancy, pixel_rays
from backend.field.train import scene_box

from .test_scene_flow_prior import FRAMES, H, W, synthetic_shot


def region_field(seed=0):
    torch.manual_seed(seed)
    cfg = FieldConfig(static_resolutions=(8,), dynamic_resolutions=(8,), channels=4, hidden=16, frames=3)
    box = SceneBox(np.zeros(3), np.full(3, 4.0), 0.5, 20.0, np.array([1.0, 0.0, 0.0]), np.array([0.5, 0.5, 0.25]))
    return SceneField(cfg, box)


def test_region_holds_the_movers_whole_path_and_is_smaller_than_the_scene():
    data = synthetic_shot()
    box = scene_box(data, stride=2)
    assert box.dynamic_centre is not None
    lo, hi = box.dynamic_centre - box.dynamic_half, box.dynamic_centre + box.dynamic_half
    xy = image_grid(W, H, "cpu")
    for t in range(FRAMES):                    # every plate point of every frame is inside
        m = data.moving[t].reshape(-1)
        o, d = pixel_rays(data.K[t].expand(int(m.sum()), 3, 3), data.world_from_camera[t].expand(int(m.sum()), 4, 4), xy[m])
        p = (o + data.depth[t].reshape(-1)[m, None] * d).numpy()
        assert (p >= lo).all() and (p <= hi).all()
    assert np.prod(box.dynamic_half) < 0.05 * np.prod(box.half)
    # without motion masks there is no region (the dynamic field covers the contracted space)
    data.moving[:] = False
    assert scene_box(data, stride=2).dynamic_centre is None


def test_no_region_when_it_would_not_be_smaller():
    box = SceneBox(np.zeros(3), np.ones(3), 0.1, 10.0)
    spread = np.random.default_rng(0).uniform(-3, 3, (500, 3))
    assert fit_dynamic_region(spread, box) is None
    assert fit_dynamic_region(spread[:5] * 0.01, box) is None         # too few points to say
    centre, half = fit_dynamic_region(spread * 0.1, box)
    assert (half < 0.5).all() and (half > 0.25).all()


def test_nothing_is_dynamic_outside_the_region_and_it_survives_a_checkpoint(tmp_path):
    model = region_field()
    inside = torch.tensor([[1.2, 0.1, -0.1], [0.6, -0.4, 0.2]])
    outside = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.3]])
    times = torch.ones(2)
    assert bool((model.query_dynamic(inside, times).density > 0).all())
    assert bool((model.query_dynamic(outside, times).density == 0).all())
    save_checkpoint(model, tmp_path / "field", {})
    assert json.loads((tmp_path / "field" / "field.json").read_text())["box"]["dynamic_half"] == [0.5, 0.5, 0.25]
    again, _ = load_checkpoint(tmp_path / "field", "cpu")
    torch.testing.assert_close(again.query_dynamic(inside, times).density, model.query_dynamic(inside, times).density)
    assert bool((again.query_dynamic(outside, times).density == 0).all())
    # a checkpoint from before the region existed still loads, and covers the contracted space
    info = json.loads((tmp_path / "field" / "field.json").read_text())
    del info["box"]["dynamic_centre"], info["box"]["dynamic_half"]
    (tmp_path / "field" / "field.json").write_text(json.dumps(info))
    state = torch.load(tmp_path / "field" / "field.pt", weights_only=True)
    del state["occupancy"]
    torch.save(state, tmp_path / "field" / "field.pt")
    old, _ = load_checkpoint(tmp_path / "field", "cpu")
    assert not old.has_dynamic_region and bool((old.query_dynamic(outside, times).density > 0).all())


def test_the_gate_follows_the_mover_from_frame_to_frame(tmp_path):
    # a mover that crosses the region from x = 0.6 to x = 1.4 over five frames (0.2 a frame)
    centre, half = np.array([1.0, 0.0, 0.0]), np.array([0.5, 0.5, 0.25])
    rng = np.random.default_rng(1)
    path = [np.array([0.6 + 0.2 * t, 0.0, 0.0]) + rng.uniform(-0.03, 0.03, (40, 3)) for t in range(5)]
    occ = motion_occupancy(path, centre, half, reach=1, dilate=1)
    assert occ.shape == (5, OCCUPANCY_CELLS, OCCUPANCY_CELLS, OCCUPANCY_CELLS)

    def cell(p):
        return tuple(np.clip(((np.asarray(p) - (centre - half)) / (2 * half) * OCCUPANCY_CELLS).astype(int), 0, OCCUPANCY_CELLS - 1))

    assert occ[(0, *cell([0.6, 0, 0]))] and occ[(1, *cell([0.6, 0, 0]))]         # a neighbour frame's warp lands inside
    assert not occ[(0, *cell([1.4, 0, 0]))] and not occ[(3, *cell([0.6, 0, 0]))]  # not the rest of the path
    model = region_field()
    model = SceneField(FieldConfig(static_resolutions=(8,), dynamic_resolutions=(8,), channels=4, hidden=16, frames=5), model.box)
    model.occupancy.copy_(torch.from_numpy(occ))
    x = torch.tensor([[1.4, 0.0, 0.0]])
    with torch.no_grad():
        assert float(model.query_dynamic(x, torch.tensor([0.0])).density) == 0.0
        assert float(model.query_dynamic(x, torch.tensor([4.0])).density) > 0.0
    save_checkpoint(model, tmp_path / "field", {})
    again, _ = load_checkpoint(tmp_path / "field", "cpu")                      # the gate is in the state dict
    assert torch.equal(again.occupancy, model.occupancy)
    with torch.no_grad():
        assert float(again.query_dynamic(x, torch.tensor([0.0])).density) == 0.0
