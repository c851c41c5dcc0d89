"""The scene-flow prior lifted from optical flow and depth (backend/field/scene_flow_prior.py) on a synthetic shot
whose answer is known: a moving camera, a static background plane and a rectangular plate moving by V per frame.
The lifted target must be V on the plate and 0 on the background, must not be trusted across a depth edge,
and the loss built on it (losses.scene_flow_prior) must vanish for a field that moves with the plate."""
import cv2
import numpy as np
import torch

from backend.field.data import RayBatch, ShotData
from backend.field import train
from backend.field.losses import scene_flow_prior
from backend.field.scene_flow_prior import depth_at, flow_confidence, lifted_scene_flow, rigid_scene_flow
from backend.field.space import image_grid, pixel_rays, project

W, H, FRAMES = 64, 48, 3
V = torch.tensor([0.08, -0.05, -0.15])          # the plate's motion, world units per frame
PLATE_Z, HALF = 4.0, torch.tensor([0.6, 0.45])   # plate plane at world z = 4 (at frame 0), its half size
BACK_Z = 10.0


def camera(t: int) -> torch.Tensor:
    """Camera t: translated sideways and turned a little about y (so depth and world z differ)."""
    a = 0.03 * t
    T = torch.eye(4)
    T[:3, :3] = torch.tensor([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], dtype=torch.float32)
    T[:3, 3] = torch.tensor([0.12 * t, 0.03 * t, 0.0])
    return T


def synthetic_shot():
    K = torch.tensor([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]]).expand(FRAMES, 3, 3).contiguous()
    T = torch.stack([camera(t) for t in range(FRAMES)])
    xy = image_grid(W, H, "cpu")
    n = len(xy)
    depth, on_plate, points = [], [], []
    for t in range(FRAMES):
        o, d = pixel_rays(K[t].expand(n, 3, 3), T[t].expand(n, 4, 4), xy)
        centre = V * t
        s_plate = (PLATE_Z + centre[2] - o[:, 2]) / d[:, 2]
        hit = o + s_plate[:, None] * d
        inside = ((hit[:, :2] - centre[:2]).abs() <= HALF).all(1)
        s = torch.where(inside, s_plate, (BACK_Z - o[:, 2]) / d[:, 2])
        depth.append(s.view(H, W))
        on_plate.append(inside.view(H, W))
        points.append(o + s[:, None] * d)
    flows, valids = {}, {}
    for step in (1, -1):
        f = torch.zeros(FRAMES, H, W, 2)
        visible = torch.zeros(FRAMES, H, W, dtype=torch.bool)
        for t in range(FRAMES):
            if 0 <= t + step < FRAMES:
                moved = points[t] + on_plate[t].view(-1, 1) * V * step
                q, z = project(moved, K[t + step].expand(n, 3, 3), T[t + step].expand(n, 4, 4))
                f[t] = (q - xy).view(H, W, 2)
                # what a forward-backward check keeps: the point is still seen in frame t + step (not hidden
                # behind the plate, not off the image)
                u, v = q[:, 0].floor().long(), q[:, 1].floor().long()
                seen = (u >= 0) & (u < W) & (v >= 0) & (v < H)
                there = depth[t + step][v.clamp(0, H - 1), u.clamp(0, W - 1)]
                visible[t] = (seen & ((there - z).abs() < 0.02 * z)).view(H, W)
        flows[step], valids[step] = f, visible
    return ShotData(torch.zeros(FRAMES, H, W, 3), torch.stack(depth), torch.stack(on_plate), flows[1], valids[1],
                    flows[-1], valids[-1], K, T)


def frame_batch(data: ShotData, t: int) -> RayBatch:
    xy = image_grid(W, H, "cpu")
    frame = torch.full((len(xy),), t, dtype=torch.long)
    at = (frame, xy[:, 1].long(), xy[:, 0].long())
    return RayBatch(frame, xy, data.rgb[at], data.depth[at], data.moving[at], data.flow_fw[at], data.valid_fw[at],
                    data.flow_bw[at], data.valid_bw[at])


def test_lifted_flow_is_the_plates_motion_and_zero_on_the_background():
    data = synthetic_shot()
    b = frame_batch(data, 1)
    for step, flow, valid, expected in ((1, b.flow_fw, b.valid_fw, V), (-1, b.flow_bw, b.valid_bw, -V)):
        target, ok = lifted_scene_flow(data.depth, data.K, data.world_from_camera, b.frame, b.xy, b.depth, flow, valid, step)
        plate, back = ok & b.moving, ok & ~b.moving
        assert int(plate.sum()) > 0.7 * int(b.moving.sum())           # most of the plate is trusted
        assert int(back.sum()) > 0.7 * int((~b.moving).sum())
        torch.testing.assert_close(target[plate], expected.expand(int(plate.sum()), 3), atol=2e-3, rtol=0)
        assert float(target[back].abs().max()) < 2e-3
        # what is not trusted is the plate's rim (a depth edge at the landing point) or off the image, not its inside
        rim = b.moving & ~ok
        assert int(rim.sum()) < 0.3 * int(b.moving.sum())


def test_no_flow_at_the_ends_of_the_shot_and_without_depth():
    data = synthetic_shot()
    b = frame_batch(data, FRAMES - 1)
    _, ok = lifted_scene_flow(data.depth, data.K, data.world_from_camera, b.frame, b.xy, b.depth, b.flow_fw,
                              torch.ones_like(b.valid_fw), 1)
    assert not bool(ok.any())                                           # no frame after the last
    b = frame_batch(data, 0)
    _, ok = lifted_scene_flow(data.depth, data.K, data.world_from_camera, b.frame, b.xy, torch.zeros_like(b.depth),
                              b.flow_fw, b.valid_fw, 1)
    assert not bool(ok.any())                                           # unknown depth here


def test_depth_is_not_read_across_an_edge():
    depth = torch.full((1, 4, 4), 10.0)
    depth[0, :, :2] = 4.0                         # foreground on the left half
    frame = torch.zeros(3, dtype=torch.long)
    xy = torch.tensor([[1.0, 2.0],                # between two foreground pixels
                       [2.0, 2.0],                # half-way between foreground and background
                       [3.0, 1.5]])               # between four background pixels
    d, ok = depth_at(depth, frame, xy)
    assert ok.tolist() == [True, False, True]
    torch.testing.assert_close(d[[0, 2]], torch.tensor([4.0, 10.0]))


def test_prior_loss_vanishes_for_a_field_that_moves_with_the_plate():
    data = synthetic_shot()
    b = frame_batch(data, 1)
    R, S = len(b.frame), 4
    weights = torch.full((R, S), 0.25)
    scale = 0.05
    right = scene_flow_prior(data, b, V.expand(R, S, 3), (-V).expand(R, S, 3), weights, scale, 1.0)
    still = scene_flow_prior(data, b, torch.zeros(R, S, 3), torch.zeros(R, S, 3), weights, scale, 1.0)
    wrong_way = scene_flow_prior(data, b, (-V).expand(R, S, 3), V.expand(R, S, 3), weights, scale, 1.0)
    assert float(right) < 0.05 * float(still)
    # a still field misses |V|_1 per direction, in units of the flow scale (fw + bw)
    assert abs(float(still) - 2 * float(V.abs().sum()) / scale) < 0.05 * float(still)
    assert float(wrong_way) > 1.9 * float(still)


def test_a_flow_that_lands_on_the_background_behind_the_plate_is_not_trusted():
    # a flow that passed its check but lands off the plate, on the background well clear of any depth edge:
    # the lifted "motion" would be the whole gap from the plate to the background
    data = synthetic_shot()
    b = frame_batch(data, 1)
    plate = b.moving
    landing = torch.tensor([4.0, 4.0])                                  # the top-left corner: background
    assert not bool(data.moving[2, :8, :8].any())
    flow = torch.where(plate[:, None], landing - b.xy, b.flow_fw)
    target, ok = lifted_scene_flow(data.depth, data.K, data.world_from_camera, b.frame, b.xy, b.depth, flow,
                                   torch.ones_like(b.valid_fw), 1)
    assert not bool(ok[plate].any())
    assert bool(ok[~plate].any())                                       # the background's own flows still count


def test_flow_confidence_falls_with_the_forward_backward_residual_and_near_the_mask_edge():
    data = synthetic_shot()
    b = frame_batch(data, 1)
    exact = flow_confidence(data.flow_bw, b.frame, b.xy, b.flow_fw, 1, 0.25)
    inner = b.moving & b.valid_fw
    # the synthetic flows are exact, so the residual vanishes wherever the flow is seen both ways (bilinear
    # reads of an affine flow field inside the plate, and of the background's own)
    assert float(exact[inner].median()) > 0.95
    # half a pixel off on the plate: residual 0.5 px, exp(-(0.5 / 0.25)^2) = 0.018
    off = b.flow_fw + torch.where(b.moving[:, None], torch.tensor([0.5, 0.0]), torch.zeros(2))
    noisy = flow_confidence(data.flow_bw, b.frame, b.xy, off, 1, 0.25)
    assert float(noisy[inner].median()) < 0.05
    assert float(noisy[~b.moving & b.valid_fw].median()) > 0.95      # the background is untouched
    # the edge ramp: the plate's outline (one pixel inside) gets a third of the weight at 3 px, its inside all
    inside = torch.stack([torch.from_numpy(cv2.distanceTransform(m.numpy().astype(np.uint8), cv2.DIST_L2, 3))
                          for m in data.moving])[b.frame, b.xy[:, 1].long(), b.xy[:, 0].long()]
    ramp = flow_confidence(data.flow_bw, b.frame, b.xy, b.flow_fw, 1, 0.0, inside, 3.0)
    assert float(ramp[b.moving & (inside >= 3)].min()) == 1.0
    assert float(ramp[b.moving & (inside < 1.5)].max()) <= 0.5
    assert float(ramp[~b.moving].max()) == 0.0
    # the backward direction reads the previous frame's forward flow
    back = flow_confidence(data.flow_fw, b.frame, b.xy, b.flow_bw, -1, 0.25)
    assert float(back[b.moving & b.valid_bw].median()) > 0.95


def test_prior_loss_trusts_the_confident_flow_more():
    # the same field against the same batch: a plate whose flow is half a pixel off in some rows pulls less
    # once the residual is weighed (fb_px > 0) than when every passed flow counts alike
    data = synthetic_shot()
    b = frame_batch(data, 1)
    bad_rows = b.moving & (b.xy[:, 1] < H / 2)
    b.flow_fw = b.flow_fw + torch.where(bad_rows[:, None], torch.tensor([0.5, 0.0]), torch.zeros(2))
    R, S = len(b.frame), 4
    weights = torch.full((R, S), 0.25)
    plain = scene_flow_prior(data, b, V.expand(R, S, 3), (-V).expand(R, S, 3), weights, 0.05, 1.0)
    weighed = scene_flow_prior(data, b, V.expand(R, S, 3), (-V).expand(R, S, 3), weights, 0.05, 1.0, fb_px=0.25)
    assert float(weighed) < 0.5 * float(plain)


def two_plates_shot():
    """Two plates side by side in the image (one motion-mask component): the left one turns about its centre as
    it moves, the right one only slides; the optical flow is exact but shortened to 0.6 of itself within 1.5 px
    of the mask's edge (the smear of a real flow on a mover's outline). Returns the ShotData (with inside_px)
    and, per frame, the true scene flow to the next frame (F, H, W, 3)."""
    K = torch.tensor([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]]).expand(FRAMES, 3, 3).contiguous()
    T = torch.stack([camera(t) for t in range(FRAMES)])
    xy = image_grid(W, H, "cpu")
    n = len(xy)
    half = torch.tensor([0.35, 0.4])

    def plate(k: int, t: int):
        """centre (2,), turn (rad) and plane z of plate k at frame t"""
        if k == 0:
            return torch.tensor([-0.1 + 0.05 * t, 0.0]), 0.12 * t, 4.0 + 0.05 * t
        return torch.tensor([0.62 + 0.02 * t, 0.05 - 0.04 * t]), 0.0, 4.1

    def turn(a: float) -> torch.Tensor:
        return torch.tensor([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], dtype=torch.float32)

    depth, masks, points, moved = [], [], [], []
    for t in range(FRAMES):
        o, d = pixel_rays(K[t].expand(n, 3, 3), T[t].expand(n, 4, 4), xy)
        s = (BACK_Z - o[:, 2]) / d[:, 2]
        which = torch.full((n,), -1)
        local = torch.zeros(n, 2)
        for k in (1, 0):                                            # plate 0 in front where they overlap
            c, a, z = plate(k, t)
            sk = (z - o[:, 2]) / d[:, 2]
            lk = ((o + sk[:, None] * d)[:, :2] - c) @ turn(a)       # turn(a)^T (p - c)
            hit = (lk.abs() <= half).all(1) & (sk < s)
            s, which, local = torch.where(hit, sk, s), torch.where(hit, k, which), torch.where(hit[:, None], lk, local)
        p = o + s[:, None] * d
        after = p.clone()
        for k in (0, 1):
            c, a, z = plate(k, t + 1)
            on = which == k
            after[on, :2] = c + local[on] @ turn(a).T
            after[on, 2] = z
        depth.append(s.view(H, W))
        masks.append((which >= 0).view(H, W))
        points.append(p)
        moved.append(after)
    inside = torch.stack([torch.from_numpy(cv2.distanceTransform(m.numpy().astype(np.uint8), cv2.DIST_L2, 3))
                          for m in masks])
    flows, valids = {}, {}
    for step in (1, -1):
        f = torch.zeros(FRAMES, H, W, 2)
        valid = torch.zeros(FRAMES, H, W, dtype=torch.bool)
        for t in range(FRAMES):
            if 0 <= t + step < FRAMES:
                # the backward motion of a pixel of frame t: where the point seen there was at t - 1
                target = moved[t] if step == 1 else _moved_back(points, moved, xy, K, T, t)
                q, _ = project(target, K[t + step].expand(n, 3, 3), T[t + step].expand(n, 4, 4))
                flow = (q - xy).view(H, W, 2)
                smear = (masks[t] & (inside[t] < 1.5))[..., None]
                f[t] = torch.where(smear, 0.6 * flow, flow)
                valid[t] = True
        flows[step], valids[step] = f, valid
    data = ShotData(torch.zeros(FRAMES, H, W, 3), torch.stack(depth), torch.stack(masks), flows[1], valids[1],
                    flows[-1], valids[-1], K, T, inside)
    truth = torch.stack([(moved[t] - points[t]).view(H, W, 3) for t in range(FRAMES)])
    return data, truth


def _moved_back(points, moved, xy, K, T, t):
    """For each pixel of frame t, the world point it showed at t - 1: the nearest moved point of frame t - 1."""
    q, _ = project(moved[t - 1], K[t].expand(len(xy), 3, 3), T[t].expand(len(xy), 4, 4))
    nearest = torch.cdist(xy, q).argmin(1)
    return points[t] - (moved[t - 1][nearest] - points[t - 1][nearest])


def test_rigid_parts_give_the_outline_its_full_motion_and_split_two_touching_objects():
    data, truth = two_plates_shot()
    t = 1
    assert cv2.connectedComponents(data.moving[t].numpy().astype(np.uint8), connectivity=8)[0] == 2  # one component
    target, ok = rigid_scene_flow(data.depth, data.K, data.world_from_camera, data.moving, data.inside_px,
                                  data.flow_fw, data.valid_fw, data.flow_bw, 1, 0.25)
    mask = data.moving[t]
    assert not bool(ok[t][~mask].any())                                 # only on the masks
    assert int(ok[t][mask].sum()) > 0.9 * int(mask.sum())
    motion = truth[t].norm(dim=-1)
    err = (target[t] - truth[t]).norm(dim=-1) / motion.clamp_min(1e-9)
    outline = mask & ok[t] & (data.inside_px[t] < 1.5)
    assert int(outline.sum()) > 20
    # both plates' own motions, turn and all (but for a pixel or two where the plates meet, whose flow the
    # synthetic backward check leaves unconfirmed, so that nothing there tells which plate they are on)
    assert float((err[mask & ok[t]] < 0.02).float().mean()) > 0.97
    assert float(err[outline].median()) < 0.02
    # where the (shortened) optical flow alone says 0.6 of it
    ys, xs = torch.nonzero(outline, as_tuple=True)
    frame = torch.full_like(ys, t)
    lifted, trusted = lifted_scene_flow(data.depth, data.K, data.world_from_camera, frame,
                                        torch.stack([xs, ys], 1).float() + 0.5, data.depth[t, ys, xs],
                                        data.flow_fw[t, ys, xs], data.valid_fw[t, ys, xs], 1)
    lifted_err = (lifted - truth[t, ys, xs]).norm(dim=-1) / motion[ys, xs]
    assert float(lifted_err[trusted].median()) > 0.2
    # the last frame has no next one
    assert not bool(ok[FRAMES - 1].any())


def test_prior_loss_takes_the_rigid_targets_where_there_are_some():
    # a field that moves as the rigid parts say, outline and all: against the lifted targets alone it pays for
    # the outline's short flow; with the rigid parts' targets in the batch (as training sets them) nothing
    data, _ = two_plates_shot()
    train.rigid_targets(data, 0.25)
    t = 1
    b = frame_batch(data, t)
    at = (b.frame, b.xy[:, 1].long(), b.xy[:, 0].long())
    b.inside_px = data.inside_px[at]
    R, S = len(b.frame), 4
    weights = torch.full((R, S), 0.25)
    # the rigid parts' motion where they give one, the lifted target elsewhere
    lifted = [lifted_scene_flow(data.depth, data.K, data.world_from_camera, b.frame, b.xy, b.depth, flow, valid, step)[0]
              for step, flow, valid in ((1, b.flow_fw, b.valid_fw), (-1, b.flow_bw, b.valid_bw))]
    rigid_field = tuple(torch.where(ok[at][:, None], motion[at], lift)[:, None].expand(R, S, 3) for motion, ok, lift in
                        ((data.rigid_fw, data.rigid_ok_fw, lifted[0]), (data.rigid_bw, data.rigid_ok_bw, lifted[1])))
    still = (torch.zeros(R, S, 3), torch.zeros(R, S, 3))
    plain = scene_flow_prior(data, b, *rigid_field, weights, 0.05, 1.0)
    plain_still = scene_flow_prior(data, b, *still, weights, 0.05, 1.0)
    b.rigid_fw, b.rigid_ok_fw, b.rigid_bw, b.rigid_ok_bw = (a[at] for a in (data.rigid_fw, data.rigid_ok_fw,
                                                                             data.rigid_bw, data.rigid_ok_bw))
    rigid = scene_flow_prior(data, b, *rigid_field, weights, 0.05, 1.0)
    rigid_still = scene_flow_prior(data, b, *still, weights, 0.05, 1.0)
    assert float(plain) > 0.05 * float(plain_still)          # the lifted outline is shorter than the rigid motion
    assert float(rigid) < 0.01 * float(rigid_still)
