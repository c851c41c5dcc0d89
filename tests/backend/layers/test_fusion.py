"""fusion.py on an analytic scene: a card in front of a textured wall, seen by a reference camera and by
neighbours moved sideways. What the neighbours saw behind the card and past the reference frame's borders
must land on the reference camera's canvas at the wall's distance, with the wall's colour."""
import numpy as np
import pytest
import torch

from backend.layers import fusion, sweep
from backend.layers.stack import View, canvas_K, crop_from_canvas, pad_to_canvas

W, H, F = 64, 48, 60.0
WALL, CARD, SKY = 10.0, 4.0, 30.0
K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]])


def wall_colour(x, y):
    return np.stack([0.5 + 0.4 * np.sin(1.3 * x), 0.5 + 0.4 * np.cos(1.1 * y), np.full_like(x, 0.3)], -1)


def render(centre_x: float) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) colour and (H, W) planar depth seen by a camera at (centre_x, 0, 0) looking down +z."""
    ys, xs = np.mgrid[0:H, 0:W]
    rx, ry = (xs + 0.5 - W / 2) / F, (ys + 0.5 - H / 2) / F
    on_card = (np.abs(centre_x + rx * CARD) < 0.8) & (np.abs(ry * CARD) < 0.6)
    sky = ry < -0.3                     # a far band at the top, so that the wall is not the farthest layer
    depth = np.where(on_card, CARD, np.where(sky, SKY, WALL))
    colour = wall_colour(centre_x + rx * WALL, ry * WALL)
    colour[on_card] = (0.9, 0.1, 0.1)
    colour[sky] = (0.2, 0.3, 0.9)
    return colour, depth


def view(index: int, centre_x: float, with_depth: bool = True) -> View:
    colour, depth = render(centre_x)
    pose = np.eye(4)
    pose[0, 3] = centre_x
    return View(index, torch.as_tensor(colour, dtype=torch.float32).permute(2, 0, 1), torch.ones(H, W, dtype=torch.bool),
                torch.as_tensor(K), torch.as_tensor(pose), torch.as_tensor(depth, dtype=torch.float32) if with_depth else None)


@pytest.mark.parametrize("margin", [0, 8])
def test_neighbours_fill_behind_the_card_and_past_the_borders(margin):
    ref = view(0, 0.0)
    sources = [view(1, -0.6), view(2, 0.6)]
    visible = pad_to_canvas(ref.depth, margin, "constant")
    Kc = canvas_K(ref.K, margin)
    fused = fusion.fuse("mpi", Kc, ref.world_from_camera, visible, sources, behind=0.02, grow=0)

    # Behind the card: the ring of wall the neighbours see past its left and right edges (0.6 * (1/4 - 1/10)
    # * 60 = 5.4 px of parallax), nowhere in the card's middle (nobody sees that).
    card = crop_from_canvas(torch.isclose(visible, torch.tensor(CARD)), margin)
    behind = crop_from_canvas(fused.found, margin) & card
    assert behind.sum() > 0.5 * 2 * 3 * card.any(1).sum()
    assert not crop_from_canvas(fused.found, margin)[card.any(1), W // 2].any()
    assert torch.allclose(crop_from_canvas(fused.distance, margin)[behind], torch.tensor(WALL), rtol=1e-3)
    # Its colour is the wall's there (the centre of the texel's ray at the wall's distance).
    ys, xs = np.nonzero(behind.numpy())
    expected = wall_colour((xs + 0.5 - W / 2) / F * WALL, (ys + 0.5 - H / 2) / F * WALL)
    got = crop_from_canvas(fused.colour, margin).permute(1, 2, 0).numpy()[ys, xs]
    assert np.abs(got - expected).mean() < 0.03
    # The visible wall is not "hidden": nothing is found where the reference frame sees the wall (the sky
    # band behind it is, along the wall's top edge).
    wall = crop_from_canvas(torch.isclose(visible, torch.tensor(WALL)), margin)
    assert not crop_from_canvas(fused.found, margin)[wall].any()
    if margin:
        # Past the left and right borders the neighbours saw 0.6 * 60 / 10 = 3.6 px of wall; farther out, and
        # above and below the frame, nobody saw anything.
        rows = slice(H // 2 + margin, -margin)                  # below the sky band
        for seen, unseen in ((slice(margin - 3, margin), slice(0, margin - 5)),
                             (slice(-margin, -margin + 3), slice(-margin + 5, None))):
            assert fused.found[rows, seen].all()
            assert not fused.found[rows, unseen].any()
            assert torch.allclose(fused.distance[rows, seen], torch.tensor(WALL), rtol=1e-3)
        assert not fused.found[-margin:].any() and not fused.found[:margin].any()


def test_initial_stack_puts_the_hidden_wall_behind_the_card_and_ignores_frames_without_depth():
    ref = view(0, 0.0)
    distance = ref.depth.double()
    stack = sweep.initial_stack("mpi", ref, [view(1, -0.6), view(2, 0.6), view(3, 0.3, with_depth=False)],
                                distance, layers=12, margin=8)
    assert stack.colour.shape == (12, 3, H + 16, W + 16) and stack.size == (W + 16, H + 16)
    assert torch.allclose(stack.K[:2, 2], ref.K[:2, 2] + 8)
    card = torch.isclose(stack.surface, torch.tensor(CARD, dtype=stack.surface.dtype))
    wall_layer = int(sweep.nearest_layer(stack.distances, torch.tensor([[WALL]], dtype=torch.float64))[0, 0])
    card_layer = int(sweep.nearest_layer(stack.distances, torch.tensor([[CARD]], dtype=torch.float64))[0, 0])
    alpha = stack.alpha[:, 0]
    # Card texels: opaque on the card's layer, and on the wall's layer where a neighbour saw past the card.
    assert (alpha[card_layer][card] == 1).all()
    assert wall_layer != 0 and card_layer > wall_layer
    # Behind the card: the wall, seen by the neighbours past its edges and extended by the margin (8 texels)
    # from there, which covers the whole card (24 texels wide, 5.4 seen from each side).
    assert (alpha[wall_layer][card] == 1).all()
    assert torch.allclose(stack.colour[card_layer][:, card], torch.tensor([0.9, 0.1, 0.1])[:, None])
    ys, xs = np.nonzero(card.numpy())
    edge = (xs - xs.min() < 3) | (xs.max() - xs < 3)
    expected = wall_colour((xs[edge] - 8 + 0.5 - W / 2) / F * WALL, (ys[edge] - 8 + 0.5 - H / 2) / F * WALL)
    got = stack.colour[wall_layer].permute(1, 2, 0).numpy()[ys[edge], xs[edge]]
    assert np.abs(got - expected).mean() < 0.03
    # Around the frame (below the sky band): the wall, seen 3.6 texels past the border, extended to the edge.
    assert (alpha[wall_layer, H // 2 + 8:-8, :8] == 1).all()


def test_the_background_beside_a_silhouette_continues_behind_it_where_no_frame_saw():
    """Neighbours moved sideways never see behind the card's top and bottom edges. With the reference colours,
    the wall visible just above/below the card continues in behind it (at the wall's distance, with the wall's
    colour there), `grow` texels deep; without them nothing is found there."""
    ref = view(0, 0.0)
    sources = [view(1, -0.6), view(2, 0.6)]
    visible = ref.depth
    card = torch.isclose(visible, torch.tensor(CARD))
    rows = torch.nonzero(card.any(1))[:, 0]
    cols = torch.nonzero(card.any(0))[:, 0]
    middle = slice(int(cols[0]) + 10, int(cols[-1]) - 9)        # beyond what the neighbours saw (5.4) + grow
    bottom = slice(int(rows[-1]) - 2, int(rows[-1]) + 1)        # the card's three lowest texel rows
    plain = fusion.fuse("mpi", ref.K, ref.world_from_camera, visible, sources, behind=0.02, grow=3)
    assert not plain.found[bottom, middle].any()
    seeded = fusion.fuse("mpi", ref.K, ref.world_from_camera, visible, sources, behind=0.02, grow=3, image=ref.image)
    assert seeded.found[bottom, middle].all()
    assert torch.allclose(seeded.distance[bottom, middle], torch.tensor(WALL), rtol=1e-3)
    below = ref.image[:, int(rows[-1]) + 1, middle]                 # the wall's first row under the card
    assert (seeded.colour[:, int(rows[-1]), middle] - below).abs().mean() < 0.05
    # The card's middle, farther than `grow` texels from any edge, stays unknown. The visible wall gains
    # nothing, except in its top rows, behind which the sky above it continues.
    assert not seeded.found[int(rows.float().mean()), W // 2]
    wall = torch.isclose(visible, torch.tensor(WALL))
    wall[:int(torch.nonzero(wall.any(1))[0, 0]) + 4] = False
    assert not seeded.found[wall].any()
