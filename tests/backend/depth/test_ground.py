"""backend/depth/ground.py on a constructed scene: the ground plane is found from a triangulation with a wall
and noise in it, its depth per pixel is exact, and only the pixels near it are moved onto it."""
import numpy as np

from backend.depth.ground import fit_ground, ground_log_depth, snap_to_ground
from backend.depth.shot import ShotInputs

H, W = 48, 64


def _camera(x: float) -> np.ndarray:
    """OpenCV world_from_camera at (x, -6, 1.5) looking along +y (world Z up), pitched down by 0.15 rad."""
    down = 0.15
    forward = np.array([0.0, np.cos(down), -np.sin(down)])
    right = np.array([1.0, 0.0, 0.0])
    m = np.eye(4)
    m[:3, :3] = np.stack([right, np.cross(forward, right), forward], 1)
    m[:3, 3] = (x, -6.0, 1.5)
    return m


def _scene(frames=4):
    K = np.array([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]])
    cams = np.stack([_camera(0.2 * t) for t in range(frames)])
    truth = np.stack([np.exp(ground_log_depth(K, cams[t], (np.array([0.0, 0, 1]), 0.0), (H, W)))
                      for t in range(frames)])
    rng = np.random.default_rng(0)
    depth = np.where(np.isfinite(truth), truth, 0.0) * np.exp(rng.normal(0, 0.01, truth.shape))
    depth[:, H // 2:, :10] = 1.5            # a near box at the left edge of the lower half: not ground
    depth[:, H - 6:, 30:40] = 0.0           # unknown under an object
    moving = np.zeros(truth.shape, bool)
    moving[:, H - 14:H - 6, 30:40] = True
    shot = ShotInputs(np.zeros((frames, H, W, 3), np.float32), moving, [], np.repeat(K[None], frames, 0), cams)
    return shot, depth.astype(np.float32), truth


def test_the_ground_plane_is_found_and_its_depth_is_exact():
    shot, depth, truth = _scene()
    normal, offset = fit_ground(shot, depth)
    assert abs(abs(normal[2]) - 1) < 1e-3 and abs(offset) < 0.02
    plane = ground_log_depth(shot.K[1], shot.world_from_camera[1], (normal, offset), (H, W))
    below = np.isfinite(truth[1]) & (np.arange(H)[:, None] > H / 2)
    assert np.abs(plane[below] - np.log(truth[1][below])).max() < 0.01


def test_only_pixels_near_the_plane_are_snapped():
    shot, depth, truth = _scene()
    plane = ground_log_depth(shot.K[0], shot.world_from_camera[0], fit_ground(shot, depth), (H, W))
    log_depth = np.log(np.where(depth[0] > 0, depth[0], 1.0)).astype(np.float32)
    known = depth[0] > 0
    out = snap_to_ground(log_depth, plane, known)
    ground = known & np.isfinite(truth[0]) & (np.arange(W)[None] >= 10) & (np.arange(H)[:, None] > H / 2)
    assert np.abs(out[ground] - np.log(truth[0][ground])).max() < 0.005   # the noisy ground: on the plane
    assert np.abs(log_depth[ground] - np.log(truth[0][ground])).max() > 0.02
    assert np.array_equal(out[:, :10][H // 2:], log_depth[:, :10][H // 2:])  # the wall: left alone
    assert np.array_equal(out[~known], log_depth[~known])                   # unknown pixels: left alone


def test_no_plane_without_points():
    shot, depth, _ = _scene()
    assert fit_ground(shot, np.zeros_like(depth)) is None
