"""The field's parts on small inputs: contraction, rays and projection, sampling, compositing, the space-time
lookup, checkpoints and fractional-time rendering, and the plane sizes the training settings pick per image size."""
import numpy as np
import pytest
import torch

from backend.field.losses import Sampling, sample_depths
from backend.field.model import FieldConfig, SceneField, load_checkpoint, save_checkpoint
from backend.field.render import dynamic_at, render_rays, render_static
from backend.field.space import SceneBox, contract, pixel_rays, project
from backend.field.train import PRESETS, train_settings
from backend.field.volume import alpha_weights, composite, importance, uniform_disparity

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def small_field(frames=4, seed=0):
    torch.manual_seed(seed)
    cfg = FieldConfig(static_resolutions=(8, 16), dynamic_resolutions=(8,), channels=4, hidden=16, frames=frames)
    return SceneField(cfg, SceneBox(np.zeros(3), np.ones(3) * 2, 0.5, 20.0))


def test_contraction_is_linear_inside_and_bounded_outside():
    c, h = torch.zeros(3), torch.tensor([2.0, 1.0, 4.0])
    x = torch.tensor([[1.0, -0.5, 2.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(contract(x, c, h), x / h * 0.5)
    far = torch.tensor([[1e6, 0.0, 0.0], [0.0, -50.0, 0.0], [3.0, 0.0, 0.0]])
    u = contract(far, c, h)
    assert u.abs().max() < 1.0 and u[0, 0] > u[2, 0] > 0.5 and u[1, 1] < -0.5   # ordered, inside the cube


@pytest.mark.parametrize("device", DEVICES)
def test_rays_and_projection_round_trip(device):
    K = torch.tensor([[100.0, 0, 32], [0, 110.0, 24], [0, 0, 1]], device=device)
    angle = 0.3
    T = torch.eye(4, device=device)
    T[:3, :3] = torch.tensor([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]], device=device)
    T[:3, 3] = torch.tensor([1.0, -2.0, 0.5], device=device)
    xy = torch.tensor([[0.5, 0.5], [31.5, 20.25], [63.5, 47.5]], device=device)
    o, d = pixel_rays(K.expand(3, 3, 3), T.expand(3, 4, 4), xy)
    z = torch.tensor([1.0, 4.0, 9.5], device=device)
    pixels, depth = project(o + z[:, None] * d, K.expand(3, 3, 3), T.expand(3, 4, 4))
    torch.testing.assert_close(pixels, xy, atol=1e-4, rtol=0)
    torch.testing.assert_close(depth, z, atol=1e-5, rtol=0)   # planar depth, not ray length


def test_samples_concentrate_around_the_prior():
    prior = torch.tensor([5.0, 0.0])
    z = sample_depths(prior, 0.5, 50.0, Sampling(band=10, uniform=4, margin=0.1), jitter=True)
    assert z.shape == (2, 14) and bool((z[:, 1:] >= z[:, :-1]).all())
    band = ((z[0] >= 4.5) & (z[0] <= 5.5)).sum()
    assert band >= 10                                   # the band, plus any uniform sample that fell there
    assert z[1].min() >= 0.5 and z[1].max() <= 50.0     # no prior: spread over near..far


def test_compositing_an_opaque_sample_and_the_blend():
    z = uniform_disparity(1, 8, 1.0, 10.0, "cpu", jitter=False)
    sigma = torch.zeros(1, 8)
    sigma[0, 3] = 1e4
    colour = torch.zeros(1, 8, 3)
    colour[0, 3] = torch.tensor([0.2, 0.4, 0.6])
    blend = torch.zeros(1, 8)
    c = composite(z, sigma, colour, blend, torch.zeros(1, 8), torch.zeros(1, 8, 3))
    torch.testing.assert_close(c.rgb, colour[:, 3], atol=1e-4, rtol=0)
    torch.testing.assert_close(c.depth, z[:, 3], atol=1e-4, rtol=0)
    # the same sample marked fully dynamic: the static density no longer counts
    c = composite(z, sigma, colour, torch.ones(1, 8), torch.zeros(1, 8), torch.zeros(1, 8, 3))
    assert float(c.weights[0, :-1].sum()) < 1e-4 and float(c.dynamic_share[0, 3]) < 1e-4


def test_importance_samples_follow_the_weights():
    z = torch.linspace(1, 10, 64)[None]
    w = alpha_weights(z, torch.where((z > 6) & (z < 6.5), 50.0, 0.0))
    extra = importance(z, w, 16)
    assert bool(((extra > 5.8) & (extra < 6.7)).all())


def test_dynamic_lookup_interpolates_time_and_stays_per_frame():
    model = small_field(frames=4)
    x = torch.rand(32, 3) - 0.5
    a = model.query_dynamic(x, torch.full((32,), 1.0))
    b = model.query_dynamic(x, torch.full((32,), 2.0))
    assert not torch.allclose(a.colour, b.colour)        # each frame has its own planes
    # a fractional time lerps the features of the two frames (not the outputs): check the middle lies between
    mid = model.dynamic._lookup(model.contract(x), torch.full((32,), 1.0)) * 0.5 + \
        model.dynamic._lookup(model.contract(x), torch.full((32,), 2.0)) * 0.5
    torch.testing.assert_close(model.dynamic.decoder(mid)[:, 1:4].sigmoid(), model.query_dynamic(x, torch.full((32,), 1.5)).colour)


def test_scene_flow_reaches_the_warped_lookup():
    """Gradients flow from a loss at warped points back into the scene flow (what the warp losses need)."""
    model = small_field()
    x = torch.rand(16, 3) - 0.5
    flow = model.query_dynamic(x, torch.zeros(16)).flow_fw
    model.query_dynamic(x + flow, torch.ones(16)).colour.sum().backward()
    head = model.dynamic.decoder[-1].weight.grad[4:7]
    assert head.abs().sum() > 0


def test_checkpoint_round_trip(tmp_path):
    model = small_field()
    save_checkpoint(model, tmp_path / "field", {"steps": 3})
    again, info = load_checkpoint(tmp_path / "field", "cpu")
    assert info["steps"] == 3 and info["config"]["frames"] == 4
    x = torch.rand(8, 3)
    torch.testing.assert_close(again.query_static(x)[1], model.query_static(x)[1])
    torch.testing.assert_close(again.query_dynamic(x, torch.full((8,), 2.0)).flow_fw, model.query_dynamic(x, torch.full((8,), 2.0)).flow_fw)


def test_fractional_time_blends_the_neighbouring_frames():
    model = small_field()
    x = torch.rand(64, 3) - 0.5
    at1, at2 = dynamic_at(model, x, 1.0), dynamic_at(model, x, 2.0)
    torch.testing.assert_close(dynamic_at(model, x, 1.00001).density, at1.density, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(dynamic_at(model, x, 1.99999).density, at2.density, atol=1e-3, rtol=1e-3)
    mid = dynamic_at(model, x, 1.5)
    assert torch.isfinite(mid.density).all() and not torch.allclose(mid.colour, at1.colour)


def test_render_static_is_separate_from_the_blend():
    model = small_field()
    o, d = torch.zeros(10, 3), torch.tensor([[0.0, 0.0, 1.0]]).expand(10, 3)
    full, static = render_rays(model, o, d, 1.0), render_static(model, o, d)
    assert full.rgb.shape == static.rgb.shape == (10, 3)
    assert float(static.dynamic.abs().sum()) == 0.0
    with torch.no_grad():   # a blend of 1 everywhere changes the blended render but not the static one
        model.static.decoder[-1].bias[4] = 50.0
    assert torch.allclose(render_static(model, o, d).rgb, static.rgb)
    assert not torch.allclose(render_rays(model, o, d, 1.0).rgb, full.rgb)



def test_rendered_flow_is_the_dynamic_fields_where_the_ray_meets_dynamic_density():
    """The point caches' velocity: the dynamic field's flow averaged over the ray's dynamic weight, not mixed
    with what the dynamic decoder says where there is no dynamic density (a ray on a mover's outline ends
    partly on the background behind it)."""
    model = small_field()
    c, junk = torch.tensor([0.02, -0.01, 0.03]), torch.tensor([0.5, 0.5, 0.5])
    with torch.no_grad():
        model.static.decoder[-1].bias[0] = -2.0       # a thin static density along the whole ray
        model.static.decoder[-1].bias[4] = 0.0        # blend 0.5
    query = model.query_dynamic

    def mover_in_front(x, times):
        # dynamic density only in front of z = 3, moving by c; behind it none, and a flow that means nothing
        sample = query(x, times)
        front = x[:, 2:3] < 3.0
        sample.density = torch.where(front[:, 0], torch.full_like(sample.density, 0.3), torch.zeros_like(sample.density))
        sample.flow_fw = torch.where(front, c.expand_as(sample.flow_fw), junk.expand_as(sample.flow_fw))
        return sample

    model.query_dynamic = mover_in_front
    o, d = torch.zeros(6, 3), torch.tensor([[0.0, 0.0, 1.0]]).expand(6, 3)
    r = render_rays(model, o, d, 1.0, prior=torch.full((6,), 3.0))
    assert 0.05 < float(r.dynamic.max()) < 0.95       # the ray is partly dynamic, partly the static behind
    torch.testing.assert_close(r.flow_fw, c.expand(6, 3), atol=1e-5, rtol=1e-4)


def test_plane_sizes_follow_the_image_but_the_static_ones_not_below_three_quarters_of_the_preset():
    preset = PRESETS["preview"]["config"]
    at_320 = train_settings("preview", 1.0, 40, 320, 240).config
    assert at_320.static_resolutions == preset["static_resolutions"]
    assert at_320.dynamic_resolutions == preset["dynamic_resolutions"]
    # a small shot keeps 3/4 of the preset's static planes (the whole scene, seen from new cameras: session 9
    # measured 1.2 dB lost in held-out views at half the cells) while the dynamic ones, over the movers' region,
    # shrink to half
    small = train_settings("preview", 1.0, 24, 160, 120).config
    assert small.static_resolutions == tuple(3 * r // 4 for r in preset["static_resolutions"])
    assert train_settings("preview", 1.0, 24, 80, 60).config.static_resolutions == small.static_resolutions
    assert small.dynamic_resolutions == tuple(r // 2 for r in preset["dynamic_resolutions"])
    big = train_settings("preview", 1.0, 100, 960, 540).config
    assert big.static_resolutions == tuple(3 * r for r in preset["static_resolutions"])
    assert big.dynamic_resolutions == tuple(3 * r for r in preset["dynamic_resolutions"])
