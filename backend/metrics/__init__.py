"""Evaluation metrics: pure numpy functions (OpenCV only for image filtering), no torch.

Each function's docstring carries its definition and the paper it comes from; the benchmark
(`scripts/benchmark.py`) and the tests use them, the pipeline does not.
"""
from .camera import (Alignment, CameraErrors, Sim3, align_trajectories, camera_errors, focal_error_percent,
                     orientation_alignment, path_length, rotation_angle_deg, umeyama_sim3)
from .depth import DepthErrors, depth_errors, valid_depth
from .flow import FlowErrors, endpoint_error, flow_errors, forward_backward_consistent, sample_bilinear
from .image import MaskedImageMetrics, image_metrics, psnr, ssim, ssim_map
from .tracking import (THRESHOLDS, TapVidMetrics, evaluation_frames, queries_txy_to_tyx, queries_tyx_to_txy,
                       rescale_to_eval_size, tapvid_metrics)

__all__ = [
    "Alignment", "CameraErrors", "Sim3", "align_trajectories", "camera_errors", "focal_error_percent",
    "orientation_alignment", "path_length", "rotation_angle_deg", "umeyama_sim3",
    "DepthErrors", "depth_errors", "valid_depth",
    "FlowErrors", "endpoint_error", "flow_errors", "forward_backward_consistent", "sample_bilinear",
    "MaskedImageMetrics", "image_metrics", "psnr", "ssim", "ssim_map",
    "THRESHOLDS", "TapVidMetrics", "evaluation_frames", "queries_txy_to_tyx", "queries_tyx_to_txy",
    "rescale_to_eval_size", "tapvid_metrics",
]
