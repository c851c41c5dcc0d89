"""Stage `flow`: dense forward and backward optical flow (OpenCV DIS) between frames t and t+g for every
gap g any stage asks for, with occlusion/confidence masks from the forward-backward consistency check.

Stored through `backend.flow_store` (int16 fixed point, memory-mapped). DIS is the classical choice here
because no pretrained flow network may be downloaded; it runs in milliseconds per pair on a CPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .. import flow_store
from ..frames import load_frames
from . import Stage, required_flow_gaps

# Forward-backward check of Sundaram, Brox and Keutzer (ECCV 2010): a pixel's flow is trusted when going
# there and back lands within alpha * (|f|^2 + |b|^2) + beta pixels^2 of where it started.
FB_ALPHA = 0.01
FB_BETA = 0.5


@dataclass(frozen=True)
class DisParams:
    preset: int
    finest_scale: int
    iterations: int


# Preview keeps DIS's medium preset; final also refines at full resolution (finest scale 0).
DIS_BY_QUALITY = {
    "preview": DisParams(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, 1, 25),
    "final": DisParams(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, 0, 50),
}


def make_dis(quality: str) -> cv2.DISOpticalFlow:
    p = DIS_BY_QUALITY[quality]
    dis = cv2.DISOpticalFlow_create(p.preset)
    dis.setFinestScale(p.finest_scale)
    dis.setGradientDescentIterations(p.iterations)
    return dis


def forward_backward_valid(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """(H, W) bool: `forward` (H, W, 2) of frame a is consistent with `backward` (H, W, 2) of frame b and
    lands inside frame b. Flow is sampled at pixel centres, so pixel index coordinates are exact."""
    h, w = forward.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = xs + forward[..., 0], ys + forward[..., 1]
    back = cv2.remap(backward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    round_trip = np.sum((forward + back) ** 2, axis=-1)
    scale = np.sum(forward ** 2, axis=-1) + np.sum(back ** 2, axis=-1)
    inside = (map_x >= -0.5) & (map_x <= w - 0.5) & (map_y >= -0.5) & (map_y <= h - 0.5)
    return (round_trip < FB_ALPHA * scale + FB_BETA) & inside


def flow_gaps(settings, frames: int) -> list[int]:
    gaps = set(settings.flow_gaps) | set(required_flow_gaps())
    return sorted(g for g in gaps if g < frames)


def run(ctx) -> dict[str, str]:
    gray = load_frames(ctx.path, gray=True)
    n, h, w = gray.shape
    gaps = flow_gaps(ctx.settings, n)
    dis = make_dis(ctx.settings.quality)
    total = sum(n - g for g in gaps)
    done = 0
    for gap in gaps:
        writer = flow_store.FlowWriter(ctx.path, gap, n - gap, h, w)
        try:
            for t in range(n - gap):
                fwd = dis.calc(gray[t], gray[t + gap], None)
                bwd = dis.calc(gray[t + gap], gray[t], None)
                writer.put(t, fwd, bwd, forward_backward_valid(fwd, bwd), forward_backward_valid(bwd, fwd))
                done += 1
                ctx.progress(done / total, f"gap {gap}: pair {t + 1}/{n - gap}")
        except BaseException:
            writer.close(ok=False)
            raise
        writer.close(ok=True)
    flow_store.write_index(ctx.path, gaps, n, w, h, method="opencv-dis", quality=ctx.settings.quality,
                           fb_alpha=FB_ALPHA, fb_beta=FB_BETA)
    return {"flow": "flow/flow.json"}


def fingerprint(ctx) -> list[int]:
    frames = (ctx.job.manifest.get("frames") or {}).get("count") or 0
    return flow_gaps(ctx.settings, frames)


STAGE = Stage(
    name="flow",
    run=run,
    requires=("ingest",),
    settings_fields=("quality",),
    outputs=("flow/flow.json",),
    fingerprint=fingerprint,
)
