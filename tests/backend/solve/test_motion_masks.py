"""Motion masks: a patch moving on its own over a rotating camera's homography scene is found, the rest
is not; the clean-up keeps seeded regions and drops speckles."""
from __future__ import annotations

import numpy as np

from backend.flow_store import FlowStore
from backend.solve import motion_masks

from .synthetic import homography_job


def test_epipolar_masks_find_a_moving_patch(tmp_path):
    _, truth = homography_job(tmp_path)
    masks = motion_masks.epipolar_masks(FlowStore(tmp_path))
    quality = motion_masks.mask_quality(masks, truth)
    assert quality["recall"] > 0.9, quality
    assert quality["false_positive_rate"] < 0.03, quality
    assert quality["iou"] > 0.6, quality  # below 1 only by the safety margin grown around the patch


def test_geometric_masks_find_it_from_the_solved_cameras(tmp_path):
    track, truth = homography_job(tmp_path)
    masks = motion_masks.geometric_masks(FlowStore(tmp_path), track, rotation_only=True)
    quality = motion_masks.mask_quality(masks, truth)
    assert quality["recall"] > 0.9 and quality["false_positive_rate"] < 0.03, quality


def test_no_motion_no_mask(tmp_path):
    homography_job(tmp_path, patch=0)
    masks = motion_masks.epipolar_masks(FlowStore(tmp_path))
    assert masks.mean() < 0.01


def test_clean_mask_keeps_seeded_regions_and_drops_speckles():
    weak = np.zeros((60, 80), bool)
    weak[10:30, 10:30] = True          # a region with a strong seed
    weak[40:55, 50:70] = True          # a region without one
    weak[5, 70] = True                 # a speckle
    strong = np.zeros_like(weak)
    strong[20, 20] = True
    strong[5, 70] = True
    out = motion_masks.clean_mask(weak, strong)
    assert out[10:30, 10:30].all()
    assert not out[45, 60] and not out[5, 70]
    assert out[9, 20]  # grown by the margin (1 % of the long side: 1 px here)
