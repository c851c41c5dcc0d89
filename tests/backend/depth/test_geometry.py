"""backend/depth geometry, triangulation and the prior, on exact data (the test shot's ground truth)."""
import numpy as np
import torch

from backend.depth import geometry as G
from backend.depth.prior import contact_fill, fill_log_depth
from backend.depth.triangulate import pair_depth


def test_unproject_project_round_trip_and_pixel_centres():
    K = torch.tensor([[[50.0, 0, 16.0], [0, 50.0, 12.0], [0, 0, 1]]])
    depth = torch.rand(1, 24, 32) * 5 + 1
    px, z = G.project(G.unproject(depth, K), K)
    assert torch.allclose(z, depth)
    assert torch.allclose(px, G.pixel_grid(24, 32)[None], atol=1e-4)
    assert torch.allclose(G.pixel_grid(2, 2)[0, 0], torch.tensor([0.5, 0.5]))


def test_axis_angle_matches_numpy_rodrigues():
    from backend.solve.track import so3_exp

    w = np.array([[0.1, -0.2, 0.3], [0.0, 0.0, 0.0]])
    assert np.allclose(G.axis_angle_to_matrix(torch.tensor(w)).numpy(), so3_exp(w), atol=1e-6)


def test_sample_reads_pixel_centres_exactly():
    image = torch.arange(12.0).reshape(1, 1, 3, 4)
    pixels = G.pixel_grid(3, 4)[None]
    assert torch.allclose(G.sample(image, pixels), image, atol=1e-5)


def test_flow_triangulation_recovers_true_depth(test_shot):
    """Exact flow + exact cameras -> the true planar depth on static pixels visible in both frames."""
    cams = test_shot.cameras()
    flow = test_shot.flow()
    t, s = 5, 6
    depth, angle = pair_depth(flow["forward"][t], cams.K[t], cams.K[s], cams.world_from_camera[t], cams.world_from_camera[s])
    gt = test_shot.depth(t)
    ok = flow["forward_visible"][t] & (test_shot.object_index(t) == 0) & np.isfinite(gt) & (angle > 0.002)
    rel = np.abs(depth[ok] - gt[ok]) / gt[ok]
    assert ok.sum() > 1000
    assert np.median(rel) < 0.01


def test_prior_fill_and_ground_contact():
    h, w = 40, 30
    depth = np.full((h, w), 10.0, np.float32)
    depth[30:] = 4.0           # "ground" near the camera at the bottom
    moving = np.zeros((h, w), bool)
    moving[10:18, 10:20] = True  # an object in front of the wall, well above the ground
    depth[moving] = 0.0
    filled = fill_log_depth(depth, np.ones_like(depth))
    assert np.all(np.isfinite(filled))
    contact = contact_fill(filled, depth > 0, moving)
    assert np.allclose(np.exp(contact[moving]), 10.0, rtol=1e-4)  # the pixels just below are the wall's (10)
    moving2 = np.zeros((h, w), bool)
    moving2[20:30, 10:20] = True  # its lower edge meets the ground (row 30 on)
    depth2 = depth.copy()
    depth2[moving] = 10.0
    depth2[moving2] = 0.0
    contact2 = contact_fill(fill_log_depth(depth2, np.ones_like(depth2)), depth2 > 0, moving2)
    assert np.allclose(np.exp(contact2[moving2]), 4.0, rtol=1e-4)  # it touches the ground: the ground's depth
