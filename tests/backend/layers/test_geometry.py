"""Where a rendering camera's rays meet the layers, the "over" composite, the reduction and the grid mesh:
exact values against direct computations."""
import numpy as np
import pytest
import torch

from backend.layers import geometry, mesh, reduce
from backend.layers.composite import linear_to_srgb, over, srgb_to_linear
from backend.layers.optimise import match_reference

K = torch.tensor([[100.0, 0, 40], [0, 100.0, 30], [0, 0, 1]], dtype=torch.float64)


def _pose(angle=0.1, t=(0.3, -0.2, 0.1)) -> torch.Tensor:
    c, s = np.cos(angle), np.sin(angle)
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    pose[:3, 3] = torch.tensor(t)
    return pose


@pytest.mark.parametrize("kind", ["mpi", "msi"])
def test_hits_land_on_the_surface_and_project_back(kind):
    ref_from_target = _pose()
    rays = geometry.target_rays(K, ref_from_target, 60, 80)
    distance = torch.tensor([3.0, 5.0], dtype=torch.float64)[:, None, None]
    h = geometry.hits(kind, rays, distance, K, (80, 60))
    assert h.valid.all()
    points = rays.origin + h.depth[..., None] * rays.rays           # the target's planar depth is the ray parameter
    assert torch.allclose(geometry.distance_of(kind, points), distance.expand(2, 60, 80), atol=1e-9)
    # The grid is the reference pixel of that point (pixel centres at i + 0.5, corners at -1 / +1).
    pix = points @ K.T
    x = pix[..., 0] / pix[..., 2]
    assert torch.allclose((h.grid[..., 0] + 1) / 2 * 80, x, atol=1e-9)
    # In the target camera the point is at the pixel the ray left from.
    target = (points - ref_from_target[:3, 3]) @ ref_from_target[:3, :3]
    assert torch.allclose(target[..., 0] / target[..., 2] * 100 + 40, torch.arange(80, dtype=torch.float64) + 0.5)


def test_reference_camera_sees_each_texel_at_its_own_pixel():
    rays = geometry.target_rays(K, torch.eye(4, dtype=torch.float64), 60, 80)
    h = geometry.hits("msi", rays, torch.tensor([[[4.0]]], dtype=torch.float64), K, (80, 60))
    xs = (torch.arange(80, dtype=torch.float64) + 0.5) / 80 * 2 - 1
    assert torch.allclose(h.grid[0, 7, :, 0], xs)


def test_over_is_back_to_front_compositing_in_linear_light():
    torch.manual_seed(0)
    samples = torch.rand(5, 4, 6, 7)
    samples[0, 3] = 1
    depth = torch.rand(5, 6, 7) + 1
    result = over(samples, depth, torch.ones(5, 6, 7, dtype=torch.bool))
    acc = torch.zeros(3, 6, 7)
    for d in range(5):       # the textbook loop: back (index 0) to front
        a = samples[d, 3]
        acc = srgb_to_linear(samples[d, :3]) * a + acc * (1 - a)
    assert torch.allclose(result.rgb, linear_to_srgb(acc), atol=1e-5)
    assert torch.allclose(result.coverage, torch.ones(6, 7), atol=1e-5)


def test_match_reference_makes_the_reference_view_exact():
    torch.manual_seed(1)
    colour = torch.rand(6, 3, 5, 5) * 0.5 + 0.25
    alpha = torch.rand(6, 1, 5, 5) * 0.2            # faint layers, and per pixel one surface that shows
    alpha.scatter_(0, torch.randint(0, 6, (1, 1, 5, 5)), 0.95)
    alpha[0] = 1
    reference = torch.rand(3, 5, 5) * 0.5 + 0.25
    before = over(torch.cat([linear_to_srgb(colour), alpha], 1), torch.ones(6, 5, 5), torch.ones(6, 5, 5, dtype=torch.bool))
    assert not torch.allclose(srgb_to_linear(before.rgb), reference, atol=1e-2)
    fixed = match_reference(colour, alpha, reference)
    shown = over(torch.cat([linear_to_srgb(fixed), alpha], 1), torch.ones(6, 5, 5), torch.ones(6, 5, 5, dtype=torch.bool))
    assert torch.allclose(srgb_to_linear(shown.rgb), reference, atol=1e-4)


def test_groups_are_contiguous_and_cover_every_layer():
    alpha = torch.zeros(24, 1, 4, 4)
    alpha[[0, 3, 4, 5, 20]] = 1
    groups = reduce.group_planes(alpha[:, 0], 6)
    assert groups[0][0] == 0 and groups[-1][1] == 23 and len(groups) == 6
    assert all(b[0] == a[1] + 1 for a, b in zip(groups, groups[1:]))
    assert all(first <= last for first, last in groups)


@pytest.mark.parametrize("kind", ["mpi", "msi"])
def test_grid_mesh_vertices_project_to_their_texture_coordinates(kind):
    h, w = 30, 40
    Kn = K.numpy().copy()
    distance = np.random.default_rng(0).uniform(2, 3, (h, w)).astype(np.float32)
    alpha = np.zeros((h, w), np.uint8)
    alpha[5:12, 8:20] = 255
    m = mesh.grid_mesh(kind, Kn, distance, alpha, stride=4)
    pix = m.vertices.astype(np.float64) @ Kn.T
    assert np.allclose(pix[:, :2] / pix[:, 2:], m.uv * [w, h], atol=1e-3)
    assert m.grid == (h // 4 + 2, w // 4 + 1)
    # Trimmed: only quads over (or next to) the opaque block remain.
    used = np.unique(m.faces)
    u, v = m.uv[used, 0] * w, m.uv[used, 1] * h
    assert 0 < len(m.faces) < 2 * (m.grid[0] - 1) * (m.grid[1] - 1)
    assert u.min() >= 8 - 8 and u.max() <= 20 + 8 and v.min() >= 5 - 8 and v.max() <= 12 + 8
