"""backend/depth/objects.py on the test shot: the pixels of the solve's motion masks that really move."""
import numpy as np

from backend.depth.objects import object_pixels, static_flow
from backend.depth.shot import load_shot
from backend.depth.triangulate import triangulate_shot


def test_static_flow_of_exact_depth_matches_the_true_flow(test_shot):
    cams = test_shot.cameras()
    t, s = 4, 6
    depth = test_shot.depth(t)
    ok = np.isfinite(depth) & (test_shot.object_index(t) == 0)
    flow = static_flow(np.log(np.where(ok, depth, 1.0)), cams.K[t], cams.K[s], cams.world_from_camera[t],
                       cams.world_from_camera[s])
    true = test_shot.flow()
    # gap 2 is not stored in gt/flow.npz: compose the two gap-1 flows at the nearest pixel
    f1 = true["forward"][t]
    h, w = depth.shape
    ys, xs = np.mgrid[0:h, 0:w]
    x2 = np.clip(np.round(xs + f1[..., 0]).astype(int), 0, w - 1)
    y2 = np.clip(np.round(ys + f1[..., 1]).astype(int), 0, h - 1)
    composed = f1 + true["forward"][t + 1][y2, x2]
    vis = ok & true["forward_visible"][t] & (test_shot.object_index(t + 1)[y2, x2] == 0)
    assert np.median(np.linalg.norm(flow - composed, axis=-1)[vis]) < 0.6


def test_object_pixels_are_tighter_than_the_masks(pipeline_job, test_shot):
    shot = load_shot(pipeline_job())
    assert shot.has_cameras and shot.moving.any()
    depth, conf = triangulate_shot(shot)
    objects = object_pixels(shot, depth, conf)
    truth = np.stack([test_shot.object_index(i) > 0 for i in range(shot.frames)])
    assert not (objects & ~shot.moving).any()                    # a subset of the masks
    assert objects[truth & shot.moving].mean() > 0.95              # keeps the masks' object pixels
    assert truth[objects].mean() > truth[shot.moving].mean() + 0.03  # drops static ground


def test_released_border_is_mostly_background_and_the_outline_refined(pipeline_job, test_shot):
    """objects.release_static_border: the ring of background the object pixels keep around each object;
    objects.refine_outline (GrabCut) on the kept pixels: the object pixels the masks missed are found."""
    from backend.depth.objects import refine_outline, release_static_border
    from backend.depth.rigid import object_labels

    shot = load_shot(pipeline_job())
    depth, conf = triangulate_shot(shot)
    objects = object_pixels(shot, depth, conf)
    released = release_static_border(shot, objects, object_labels(shot, objects), depth, conf)
    truth = np.stack([test_shot.object_index(i) > 0 for i in range(shot.frames)])
    kept = objects & ~released
    assert released.any() and not (released & ~objects).any()
    assert (~truth[released]).mean() > 0.6                      # mostly background (0.93 measured on the quick shot)
    assert truth[kept].mean() > truth[objects].mean() + 0.03     # precision up (0.43 -> 0.50 measured)
    assert kept[truth & shot.moving].mean() > 0.93               # keeps the objects (0.96 measured)
    refined = refine_outline(shot, kept)
    assert refined[truth].mean() > kept[truth].mean() + 0.03     # recall 0.81 -> 0.86 measured (the masks miss parts)
    assert truth[refined].mean() > truth[kept].mean() - 0.02     # without losing precision (0.490 -> 0.489)
    assert refined[truth & kept].mean() > 0.97                   # the motion evidence's object pixels stay
