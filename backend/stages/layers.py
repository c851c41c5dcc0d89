"""Stage `layers`: layered RGBA meshes of one or more reference frames (multi-plane or multi-sphere images,
Zhou et al. 2018, Flynn et al. 2019, Broxton et al. 2020), for parallax-correct 2.5D set extension.

    layers/layers.json        what exporters/layers_json.py documents (reference cameras, layers back to front)
    layers/refNNNNN/layer_LL.png, .npz   RGBA texture and grid mesh of each layer
    layers/layers.glb         every layer mesh, alpha-blended, under its reference camera's node

Per reference frame (settings.layer_reference; default the middle frame), backend/layers/ does: plane sweep
over the neighbouring frames with the solved cameras, initialised from the depth stage and from what the
neighbouring frames saw behind and around the reference frame (sweep.py, fusion.py) -> gradient
descent of the layers' RGBA against those frames, moving objects masked out (optimise.py) -> reduction to a few
layers (reduce.py) -> one trimmed, depth-displaced grid mesh per layer (mesh.py) -> files (outputs.py).
"""
from __future__ import annotations

import time

import cv2
import numpy as np

from exporters.cameras_json import read_cameras
from exporters.exr import read_depth_exr

from ..errors import ShotfieldError
from ..frames import load_frames
from ..layers import build, outputs
from . import Stage


def run(ctx) -> dict[str, str]:
    frames = load_frames(ctx.path)
    count = len(frames)
    cameras = read_cameras(ctx.path / "camera" / "cameras.json")
    by_index = {f.index: f for f in cameras.frames}
    references = list(ctx.settings.layer_reference or (count // 2,))
    for r in references:
        if not 0 <= r < count or r not in by_index:
            raise ShotfieldError(f"--layer-reference {r}: the job has frames 0..{count - 1} with a solved camera; "
                                 "choose one of them")
    recipe = build.RECIPES[ctx.settings.quality]
    kind = ctx.settings.layer_kind
    built, extra = [], {}
    for n, r in enumerate(references):
        started = time.monotonic()
        share = 1.0 / len(references)

        def progress(f, message, n=n, r=r):
            ctx.progress(0.95 * (n + f) * share, f"frame {r}: {message}")

        depth = _depth(ctx.path, r)
        ref = build.make_view(r, frames[r], None, by_index[r].K, by_index[r].world_from_camera, ctx.device)
        sources = [build.make_view(s, frames[s], _mask(ctx.path, s), by_index[s].K, by_index[s].world_from_camera,
                                   ctx.device, _depth(ctx.path, s, required=False))
                   for s in build.source_frames(r, count, recipe.neighbours) if s in by_index]
        if not sources:
            raise ShotfieldError("the layers need at least two frames with solved cameras around the reference frame")
        result = build.build_reference(kind, ref, sources, depth, recipe, ctx.settings.effort, progress)
        seconds = round(time.monotonic() - started, 2)
        extra[r] = {"sources": [s.index for s in sources], "seconds": seconds}
        ctx.job.log(f"layers: frame {r}: {len(result.layers)} layers, {sum(len(m.faces) for m in result.meshes)} "
                    f"triangles, reference view {result.reference_psnr_db:.2f} dB, {seconds:.1f} s")
        built.append(result)
    ctx.progress(0.96, "writing the layers, the meshes and the glTF")
    outputs.write_layers_folder(ctx.path / "layers", built, {r: by_index[r].K for r in references},
                                {r: by_index[r].world_from_camera for r in references},
                                cameras.width, cameras.height, extra)
    ctx.progress(1.0, "done")
    return {"layers": "layers/layers.json", "layers_glb": "layers/layers.glb"}


def _depth(job, frame: int, required: bool = True) -> np.ndarray | None:
    """The depth stage's depth of `frame`; a source frame without it (required=False) only adds nothing behind
    or around the reference frame, the reference frame itself needs it."""
    path = job / "depth" / f"{frame:05d}.exr"
    try:
        depth = read_depth_exr(path)
    except (OSError, ValueError) as exc:
        if not required:
            return None
        raise ShotfieldError(f"{path}: unreadable depth ({exc}); run the 'depth' stage again") from None
    if not required:
        return depth
    if not np.any(np.isfinite(depth) & (depth > 0)):
        raise ShotfieldError(f"{path}: no known depth in the reference frame; run the 'depth' stage again")
    return depth


def _mask(job, frame: int) -> np.ndarray | None:
    path = job / "masks" / "motion" / f"{frame:05d}.png"
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None


STAGE = Stage(
    name="layers",
    run=run,
    requires=("flow", "solve", "depth"),
    settings_fields=("quality", "effort", "layer_reference", "layer_kind"),
    outputs=("layers/layers.json", "layers/layers.glb"),
    version=2,  # 2: canvas margin, surfaces fused from the neighbours, as many layers as planes
    uses_torch=True,
)
