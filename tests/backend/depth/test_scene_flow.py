"""backend/depth/scene_flow.py on a constructed scene: the measured object motion is the true motion parallel
to the image plane, zero on the static scene, and the output is written only inside the masks."""
import numpy as np

from backend.depth import scene_flow
from backend.depth.shot import Pair


def _camera(x):
    wfc = np.eye(4)
    wfc[0, 3] = x
    return wfc


def _project(point, K, wfc):
    cam = np.linalg.inv(wfc)[:3] @ np.append(point, 1)
    return (K @ cam)[:2] / cam[2], cam[2]


def _scene(h=30, w=40):
    """A fronto-parallel wall at depth 6, a camera stepping 0.1 right, and a patch of the wall (rows 10-19,
    columns 10-19 of frame 0) moving by (0.2, -0.1, 0) in the world: the flow each point really has."""
    K = np.array([[40.0, 0, 20], [0, 40.0, 15], [0, 0, 1]])
    wfc = [_camera(0.0), _camera(0.1)]
    depth = np.full((2, h, w), 6.0)
    moving = np.zeros((2, h, w), bool)
    moving[0, 10:20, 10:20] = True
    motion = np.array([0.2, -0.1, 0.0])
    flow = np.zeros((h, w, 2))
    for y in range(h):
        for x in range(w):
            ray = np.linalg.inv(K) @ [x + 0.5, y + 0.5, 1]
            point = ray * 6.0
            if moving[0, y, x]:
                point = point + motion
            flow[y, x] = _project(point, K, wfc[1])[0] - [x + 0.5, y + 0.5]
    return K, wfc, depth, moving, motion, flow


def test_lateral_motion_is_the_true_motion_and_zero_on_the_static_scene():
    K, wfc, depth, moving, motion, flow = _scene()
    v, ok = scene_flow.lateral_motion(depth[0], K, K, wfc[0], wfc[1], flow, np.ones(flow.shape[:2], bool))
    assert ok.all()
    np.testing.assert_allclose(v[moving[0]], np.broadcast_to(motion, v[moving[0]].shape), atol=1e-6)
    np.testing.assert_allclose(v[~moving[0]], 0, atol=1e-6)


def test_lateral_motion_leaves_out_motion_along_the_axis():
    K, wfc, depth, _, _, _ = _scene()
    # every point moves 0.3 towards the camera: seen through the flow alone that is a small radial
    # expansion; the measurement keeps frame t's depth, so it reads (nearly) no motion
    h, w = depth.shape[1:]
    flow = np.zeros((h, w, 2))
    for y in range(h):
        for x in range(w):
            point = np.linalg.inv(K) @ [x + 0.5, y + 0.5, 1] * 6.0 + [0, 0, -0.3]
            flow[y, x] = _project(point, K, wfc[0])[0] - [x + 0.5, y + 0.5]
    v, ok = scene_flow.lateral_motion(depth[0], K, K, wfc[0], wfc[0], flow, np.ones((h, w), bool))
    assert np.abs(v[..., 2]).max() < 1e-9
    assert np.linalg.norm(v, axis=-1).max() < 0.3


def test_object_motion_is_written_inside_the_masks_only():
    K, wfc, depth, moving, motion, flow = _scene()
    valid = np.ones(flow.shape[:2], bool)
    valid[12, 12] = False                     # an untrusted pixel takes its neighbours' motion
    pairs = [Pair(0, 1, flow.astype(np.float32), valid), Pair(1, 0, -flow.astype(np.float32), valid)]
    out = scene_flow.object_motion(depth, np.stack([K, K]), np.stack(wfc), moving, pairs)
    assert out.shape == depth.shape + (3,)
    assert np.all(out[0][~moving[0]] == 0)
    # the smoothing averages over the mask's trusted pixels only: nothing of the static scene leaks in
    np.testing.assert_allclose(out[0][moving[0]], np.broadcast_to(motion, out[0][moving[0]].shape), atol=1e-5)
    assert np.all(out[1] == 0)                # frame 1 has no mask
