"""TAP-Vid point-tracking metrics (Doersch et al. 2022): <δ_avg, occlusion accuracy, average Jaccard. numpy only.

A faithful port of `compute_tapvid_metrics` from google-deepmind/tapnet (`evaluation_datasets.py`, including
the query-frame fix of facebookresearch/co-tracker issue 20) to Shotfield's layout:

    Shotfield (tracks.npz)              tapnet
    query_points (N, 3) [t, x, y]       query_points (B, N, 3) [t, y, x]
    tracks (F, N, 2) [x, y]             tracks (B, N, F, 2) [x, y]
    visible (F, N) bool                 occluded (B, N, F) bool = not visible

Converting between the two query orders happens only in `queries_txy_to_tyx` / `queries_tyx_to_txy`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

THRESHOLDS = (1, 2, 4, 8, 16)   # pixels, in the 256×256 frame
EVAL_SIZE = 256                 # TAP-Vid resizes every video to 256×256 before measuring


def queries_txy_to_tyx(queries: np.ndarray) -> np.ndarray:
    """(N, 3) [t, x, y] (Shotfield) -> (N, 3) [t, y, x] (tapnet's query_points)."""
    queries = np.asarray(queries)
    return queries[..., [0, 2, 1]]


def queries_tyx_to_txy(queries: np.ndarray) -> np.ndarray:
    """(N, 3) [t, y, x] (tapnet) -> (N, 3) [t, x, y] (Shotfield)."""
    queries = np.asarray(queries)
    return queries[..., [0, 2, 1]]


def rescale_to_eval_size(xy: np.ndarray, width: int, height: int, size: int = EVAL_SIZE) -> np.ndarray:
    """(..., 2) [x, y] pixels of a width×height image -> the same points in a size×size image.

    x · size / width, y · size / height: TAP-Vid stretches every video to 256×256, aspect ratio not kept,
    so the pixel thresholds mean the same share of the frame for every video.
    """
    return np.asarray(xy, np.float64) * np.array([size / width, size / height])


def evaluation_frames(query_frames: np.ndarray, num_frames: int, query_mode: str = "strided") -> np.ndarray:
    """(F, N) bool: which frames count for each query.

    "strided": every frame except the query frame itself (queries sampled every few frames, tracked both
    ways: Shotfield's case). "first": only frames after the query frame (queries at a point's first visible
    frame, where everything before it is known to be occluded). Query frames are rounded to integers.
    """
    eye = np.eye(num_frames, dtype=np.int32)
    if query_mode == "first":
        query_to_eval = np.cumsum(eye, axis=1) - eye
    elif query_mode == "strided":
        query_to_eval = 1 - eye
    else:
        raise ValueError(f"unknown query mode {query_mode!r}; use 'strided' or 'first'")
    q = np.round(np.asarray(query_frames)).astype(np.int64)
    return (query_to_eval[q] > 0).T


@dataclass
class TapVidMetrics:
    """TAP-Vid metrics; fractions in [0, 1]. Per-threshold dicts are keyed by the threshold in pixels."""

    aj: float                # average Jaccard: mean over thresholds of jaccard[δ]
    delta_avg: float         # <δ_avg: mean over thresholds of within[δ]
    oa: float                # occlusion accuracy
    jaccard: dict = field(default_factory=dict)
    within: dict = field(default_factory=dict)
    evaluated: int = 0       # (frame, point) pairs evaluated

    def as_dict(self) -> dict:
        return {"aj": self.aj, "delta_avg": self.delta_avg, "oa": self.oa, "evaluated": self.evaluated,
                **{f"jaccard_{k}": v for k, v in self.jaccard.items()},
                **{f"within_{k}": v for k, v in self.within.items()}}


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def tapvid_metrics(query_points: np.ndarray, gt_tracks: np.ndarray, gt_visible: np.ndarray,
                   pred_tracks: np.ndarray, pred_visible: np.ndarray, width: int, height: int,
                   query_mode: str = "strided", thresholds=THRESHOLDS) -> TapVidMetrics:
    """TAP-Vid metrics of one video, exactly as the benchmark computes them.

    query_points: (N, 3) [t, x, y] (only t is used); gt_tracks, pred_tracks: (F, N, 2) [x, y] pixels of a
    width×height image (pixel-corner origin; any origin gives the same result); gt_visible, pred_visible:
    (F, N) bool. Positions are first rescaled to 256×256 (`rescale_to_eval_size`). Over the evaluated
    (frame, point) pairs E (`evaluation_frames`; the query frame itself never counts):

    - OA = |{pred_visible == gt_visible} ∩ E| / |E|
    - within[δ] = |{‖pred - gt‖ < δ} ∩ gt_visible ∩ E| / |gt_visible ∩ E|  (predicted visibility ignored)
    - jaccard[δ] = TP / (TP + FP + FN) with TP = within δ ∩ gt visible ∩ pred visible,
      FP = pred visible ∩ (gt occluded ∪ not within δ), FN = gt visible ∩ not TP; computed as in tapnet
      as TP / (|gt_visible ∩ E| + FP).
    - <δ_avg = mean of within[δ], AJ = mean of jaccard[δ], over δ ∈ {1, 2, 4, 8, 16} px.

    Unlike tapnet, which sums over a batch of videos, this measures one video; average videos yourself.
    NaN predicted positions count as misses.
    """
    gt_tracks = np.asarray(gt_tracks, np.float64)
    pred_tracks = np.asarray(pred_tracks, np.float64)
    frames, n = gt_visible.shape
    assert gt_tracks.shape == (frames, n, 2) and pred_tracks.shape == (frames, n, 2), (gt_tracks.shape, pred_tracks.shape)
    assert pred_visible.shape == (frames, n) and np.shape(query_points) == (n, 3), (pred_visible.shape, np.shape(query_points))
    visible = np.asarray(gt_visible, bool)
    pred_vis = np.asarray(pred_visible, bool)
    evaluate = evaluation_frames(np.asarray(query_points)[:, 0], frames, query_mode)

    gt_xy = rescale_to_eval_size(gt_tracks, width, height)
    pred_xy = rescale_to_eval_size(pred_tracks, width, height)
    sq_dist = np.sum((pred_xy - gt_xy) ** 2, axis=-1)

    oa = _ratio(int(np.sum((pred_vis == visible) & evaluate)), int(np.sum(evaluate)))
    gt_positives = int(np.sum(visible & evaluate))
    within, jaccard = {}, {}
    for thresh in thresholds:
        within_dist = sq_dist < thresh**2           # NaN compares False: a miss
        is_correct = within_dist & visible
        within[thresh] = _ratio(int(np.sum(is_correct & evaluate)), gt_positives)
        true_positives = int(np.sum(is_correct & pred_vis & evaluate))
        false_positives = int(np.sum(((~visible) | (~within_dist)) & pred_vis & evaluate))
        jaccard[thresh] = _ratio(true_positives, gt_positives + false_positives)
    return TapVidMetrics(aj=float(np.mean(list(jaccard.values()))), delta_avg=float(np.mean(list(within.values()))),
                         oa=oa, jaccard=jaccard, within=within, evaluated=int(np.sum(evaluate)))
