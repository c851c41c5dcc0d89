"""Stage `ingest`: footage -> `frames/00000.png` at the working size, and the shot's facts in job.json.

The new frames are written to `frames.partial/` and swapped in only when all of them are there, so a
failed or cancelled re-ingest leaves the previous frames (and every stage built on them) intact.
"""
from __future__ import annotations

import shutil

import cv2

from exporters.atomic import swap_in_folder, write_bytes

from ..errors import FootageError, ShotfieldError
from ..footage import probe_footage, read_frames, working_size
from . import Stage

FRAME_NAME = "{:05d}.png"
DEFAULT_FPS = 24.0


def _footage_source(ctx) -> str:
    if ctx.footage:
        return ctx.footage
    recorded = (ctx.job.manifest.get("footage") or {}).get("source")
    if recorded:
        return recorded
    raise ShotfieldError("no footage given: pass FOOTAGE (a video file, an image folder or a pattern like shot.%04d.png)")


def _probe(ctx):
    """Probe once per run; the fingerprint and the run share it."""
    source = _footage_source(ctx)
    if ("footage", source) not in ctx.scratch:
        ctx.scratch[("footage", source)] = probe_footage(source)
    return ctx.scratch[("footage", source)]


def fingerprint(ctx) -> dict:
    # The working size follows --long-side or, without it, the quality: hash the size actually used.
    return {"footage": _probe(ctx).fingerprint(), "long_side": ctx.settings.working_long_side}


def run(ctx) -> dict[str, str]:
    info = _probe(ctx)
    settings = ctx.settings
    positions = settings.frames.select(info.frame_count)
    if len(positions) < 2:
        raise FootageError(f"{info.source}: --frames {settings.frames.start}:{settings.frames.end}:{settings.frames.step} "
                           f"selects {len(positions)} of its {info.frame_count} frames; a shot needs at least 2")
    w, h = working_size(info.size, settings.working_long_side)
    partial = ctx.path / "frames.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for n, (position, rgb) in enumerate(read_frames(info, positions)):
        if rgb.shape[1::-1] != info.size:
            raise FootageError(f"{info.source}: frame {position} is {rgb.shape[1]}x{rgb.shape[0]}, "
                               f"the first is {info.size[0]}x{info.size[1]}; all frames must have the same size")
        if (w, h) != info.size:
            # INTER_AREA averages the source pixels each working pixel covers: no aliasing on downscale.
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        write_bytes(partial / FRAME_NAME.format(n), png.tobytes())
        ctx.progress((n + 1) / len(positions), f"frame {n + 1}/{len(positions)}")
    swap_in_folder(partial, ctx.path / "frames")

    fr = settings.frames
    ctx.job.manifest.update(
        footage={"source": info.source, "kind": info.kind, "linear": info.linear},
        frames={"start": fr.start, "end": fr.end, "step": fr.step, "count": len(positions), "source_indices": positions},
        fps=(info.fps or settings.fps or DEFAULT_FPS) / fr.step,
        working_size=[w, h],
        source_size=list(info.size),
    )
    return {"frames": "frames/"}


STAGE = Stage(
    name="ingest",
    run=run,
    settings_fields=("frames", "fps"),
    outputs=("frames",),
    fingerprint=fingerprint,
)
