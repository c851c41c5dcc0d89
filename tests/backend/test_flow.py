"""Stage `flow`: the forward-backward check, the compact store, and accuracy on a rendered shot."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from backend import flow_store
from backend.metrics.flow import flow_errors
from backend.metrics.flow import forward_backward_consistent as forward_backward_valid
from backend.stages.flow import make_dis

from .conftest import shotfield, textured_frames


def test_consistent_flow_is_valid_except_where_it_leaves_the_frame():
    h, w = 40, 60
    fwd = np.zeros((h, w, 2), np.float32)
    fwd[..., 0] = 5.0  # everything moves 5 px right
    bwd = -fwd
    ok = forward_backward_valid(fwd, bwd)
    assert ok[:, : w - 6].all() and not ok[:, w - 4 :].any()


def test_inconsistent_flow_is_an_occlusion():
    h, w = 40, 60
    fwd = np.zeros((h, w, 2), np.float32)
    fwd[..., 0] = 5.0
    bwd = np.zeros((h, w, 2), np.float32)  # the backward flow disagrees: nothing came back
    assert not forward_backward_valid(fwd, bwd)[:, :50].any()


def test_fixed_point_store_round_trips_to_a_32nd_of_a_pixel():
    flow = np.random.default_rng(0).uniform(-900, 900, (5, 7, 2)).astype(np.float32)
    back = flow_store.decode(flow_store.encode(flow))
    assert np.abs(back - flow).max() <= 0.5 / flow_store.SCALE + 1e-4
    assert flow_store.decode(flow_store.encode(np.array([5000.0]))) == pytest.approx(flow_store.LIMIT)


def test_store_reads_lazily_and_names_missing_gaps(tmp_path, image_folder):
    job = tmp_path / "job"
    assert shotfield("run", image_folder, "--job", job, "--stages", "ingest,flow", "--flow-gaps", "1,2", "--no-progress").returncode == 0
    store = flow_store.FlowStore(job)
    assert isinstance(store._array(1, "forward"), np.memmap)
    pair = store.pair(0, gap=2)
    assert pair.forward.shape == (64, 96, 2) and pair.forward.dtype == np.float32
    assert pair.forward_valid.dtype == bool
    missing = next(g for g in range(1, 7) if g not in store.gaps)
    with pytest.raises(KeyError, match=f"gap {missing} was not computed"):
        store.forward(0, gap=missing)
    with pytest.raises(IndexError, match="no frame pair"):
        store.forward(7, gap=1)
    with pytest.raises(FileNotFoundError, match="run the 'flow' stage"):
        flow_store.FlowStore(tmp_path)


def test_dis_flow_matches_the_rendered_ground_truth(test_shot, tmp_path):
    """Endpoint error of the stored flow against the analytic flow of a Cycles render."""
    gt = np.load(test_shot.path / "gt" / "flow.npz")
    frames = sorted((test_shot.path / "frames").glob("*.png"))
    width = cv2.imread(str(frames[0])).shape[1]
    job = tmp_path / "job"
    r = shotfield("run", test_shot.path / "frames", "--job", job, "--long-side", width, "--stages", "ingest,flow", "--flow-gaps", "1", "--no-progress")
    assert r.returncode == 0, r.stderr
    store = flow_store.FlowStore(job)
    pred = np.stack([store.forward(t) for t in range(store.frames - 1)])
    errors = flow_errors(pred, gt["forward"], gt["forward_visible"])
    assert errors.epe_median < 0.5, errors
    # And the check that flags occlusions agrees with the ground-truth visibility more often than not.
    agree = np.mean([np.mean(store.forward_valid(t) == gt["forward_visible"][t]) for t in range(store.frames - 1)])
    assert agree > 0.8


def test_dis_parameters_differ_by_quality():
    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in textured_frames(n=2, width=64, height=48)]
    for quality in ("preview", "final"):
        flow = make_dis(quality).calc(frames[0], frames[1], None)
        assert np.median(flow[8:-8, 8:-8].reshape(-1, 2), axis=0) == pytest.approx([1.5, 0.75], abs=0.15)
