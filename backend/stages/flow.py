"""Stage `flow`: dense forward and backward optical flow (OpenCV DIS) between frames t and t+g for every
gap g any stage asks for, with occlusion/confidence masks from the forward-backward consistency check.

Stored through `backend.flow_store` (int16 fixed point, memory-mapped). DIS is the classical choice here
because no pretrained flow network may be downloaded; it runs in milliseconds per pair on a CPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2

from .. import flow_store
# The forward-backward rule (Sundaram et al. 2010) lives with the flow metrics, so that the stage's masks and
# the benchmark's scoring of Shotfield and its peers are one and the same check.
from ..metrics.flow import FB_ALPHA, FB_BETA, forward_backward_consistent
from ..frames import load_frames
from . import Stage, required_flow_gaps


@dataclass(frozen=True)
class DisParams:
    finest_scale: int
    iterations: int             # gradient-descent iterations per patch
    refinement_iterations: int  # variational refinement iterations per scale


# DIS's medium preset, refined down to full resolution (finest scale 0): on the 40-frame 320x240 test shot
# that halves the median endpoint error of the plain preset (0.09 -> 0.03 px) for 3x its time
# (about 30 ms a pair on 2 cores). Final adds iterations; see scripts/benchmark.py --stages flow.
DIS_BY_QUALITY = {
    "preview": DisParams(finest_scale=0, iterations=25, refinement_iterations=5),
    "final": DisParams(finest_scale=0, iterations=50, refinement_iterations=10),
}


def make_dis(quality: str) -> cv2.DISOpticalFlow:
    p = DIS_BY_QUALITY[quality]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(p.finest_scale)
    dis.setGradientDescentIterations(p.iterations)
    dis.setVariationalRefinementIterations(p.refinement_iterations)
    return dis


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
                writer.put(t, fwd, bwd, forward_backward_consistent(fwd, bwd), forward_backward_consistent(bwd, fwd))
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
    version=2,  # DIS refined to full resolution
    outputs=("flow/flow.json",),
    fingerprint=fingerprint,
)
