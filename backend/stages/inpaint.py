"""Stage `inpaint`: remove objects from the shot and write multi-view-consistent clean plates.

    masks/00000.png          uint8, 255 = the region removed (object mask dilated by masks.dilation_radius)
    masks/object/00000.png   uint8, 255 = the object itself, propagated (before dilation)
    plates/00000.png         clean plate at the working size (sRGB); plates/00000.exr (linear) for EXR footage
    plates/full/00000.png    at the footage size, original pixels outside the mask (.exr for EXR footage)
    plates/plates.json       what was removed and how (source frames, share of the mask seen by other frames,
                             fill rounds, dilation and feather radii)

`--remove moving` removes what the solve's motion masks mark; `--remove FOLDER` removes what masks drawn on
one or more frames mark, propagated to every frame (backend/inpaint/propagate.py); `--remove CLICKS.json`
removes what points and boxes on some frames select (backend/inpaint/clicks.py), propagated likewise.
Without `--remove` the stage has nothing to do: it logs that and writes nothing (running every stage of a job does not silently
remove things). Method and figures: docs/inpaint.md.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from exporters.cameras_json import read_cameras
from exporters.exr import read_depth_exr

from ..device import one_cpu_thread
from ..errors import ShotfieldError
from ..flow_store import FlowStore
from ..frames import load_frames
from ..inpaint import clicks, fill, masks, plates, propagate
from ..inpaint.geometry import reliable_depth
from . import Stage


def _remove_folder(ctx) -> Path | None:
    remove = ctx.settings.remove
    if remove is None or remove == "moving":
        return None
    return Path(remove).expanduser().absolute()


def fingerprint(ctx):
    """A mask folder's (or clicks file's) contents, so that redrawing a mask reruns the removal."""
    folder = _remove_folder(ctx)
    if folder is None:
        return None
    if folder.suffix.lower() == ".json" and folder.is_file():
        return hashlib.sha256(folder.read_bytes()).hexdigest()[:16]
    digest = hashlib.sha256()
    for n, p in sorted(masks.user_mask_files(folder).items()):
        digest.update(f"{n}:{p.name}:".encode())
        digest.update(p.read_bytes())
    return digest.hexdigest()[:16]


def _depth(job_dir: Path, frames: int) -> np.ndarray:
    out = []
    for i in range(frames):
        p = job_dir / "depth" / f"{i:05d}.exr"
        if not p.is_file():
            raise ShotfieldError(f"{p}: depth missing; run the 'depth' stage again")
        out.append(read_depth_exr(p))
    return np.stack(out).astype(np.float32)


def run(ctx) -> dict[str, str]:
    settings = ctx.settings
    if settings.remove is None:
        ctx.job.log("inpaint: nothing to remove (no --remove given); no plates written. "
                    "Use --remove moving, or --remove FOLDER with masks drawn on some frames.")
        ctx.progress(1.0, "nothing to remove (pass --remove)")
        return {}
    rgb = load_frames(ctx.path)
    frames, h, w = rgb.shape[:3]
    cameras = read_cameras(ctx.path / "camera" / "cameras.json")
    if (cameras.width, cameras.height) != (w, h) or len(cameras.frames) != frames:
        raise ShotfieldError(f"{ctx.path / 'camera' / 'cameras.json'}: cameras do not match the working frames; "
                             "run the 'solve' stage again")
    K, world_from_camera = cameras.K, cameras.world_from_camera
    depth = _depth(ctx.path, frames)
    motion = masks.motion_masks(ctx.path, frames)
    min_area = max(4, int(1e-3 * h * w))
    radius = masks.dilation_radius(w, h)

    ctx.progress(0.02, "masks")
    folder = _remove_folder(ctx)
    if folder is None:
        objects = np.stack([masks.clean(m, min_area) for m in motion])
        how = "moving"
    elif folder.suffix.lower() == ".json":
        marks = clicks.read_clicks(folder, frames, w, h)
        drawn = clicks.masks_from_clicks(marks, rgb, depth, motion)
        objects = propagate.propagate(drawn, motion, FlowStore(ctx.path), depth, K, world_from_camera, ctx.device, min_area,
                                      rgb)
        how = f"{len(marks)} clicks/boxes on frames {sorted(drawn)}"
    else:
        drawn = {}
        for n, p in sorted(masks.user_mask_files(folder).items()):
            if not 0 <= n < frames:
                raise ShotfieldError(f"{p}: frame {n} is outside the shot (frames 0-{frames - 1}); "
                                     "name masks by the job's frame number, starting at 0")
            drawn[n] = masks.read_user_mask(p, w, h)
        if not any(m.any() for m in drawn.values()):
            raise ShotfieldError(f"--remove {folder}: every mask is empty (white marks what to remove)")
        store = FlowStore(ctx.path)
        objects = propagate.propagate(drawn, motion, store, depth, K, world_from_camera, ctx.device, min_area, rgb)
        how = f"masks drawn on frames {sorted(drawn)}"
    removed = np.stack([masks.dilate(m, radius) for m in objects])
    ctx.job.log(f"inpaint: removing {how}: {int(objects.any(axis=(1, 2)).sum())} of {frames} frames have something "
                f"to remove ({100 * removed.mean():.2f} % of the pixels)")

    reliable = np.stack([reliable_depth(d) for d in depth])
    feather = max(1, radius // 2 + 1)
    with one_cpu_thread(ctx.device):  # see backend/device.py for why
        # Nothing that moves is lifted into the static scene, even where it is not removed (another object,
        # or the part of the motion mask around a tight drawn mask): the estimated depth of pixels next to
        # a moving object is the object's (its edges are off by pixels), and such points float in front of
        # the background and flicker (on the default shot's real chain: 6.6 against 3.4 with tight masks).
        moving = np.stack([masks.dilate(m, radius) for m in motion])
        result = fill.build_plates(rgb, depth, removed, K, world_from_camera, reliable, ctx.device, settings.effort,
                                   settings.quality, feather,
                                   progress=lambda f, m: ctx.progress(0.05 + 0.75 * f, m), log=ctx.job.log,
                                   exclude=moving)
    ctx.progress(0.82, "writing masks and plates")
    masks.write_masks(ctx.path / "masks", removed)
    masks.write_masks(ctx.path / "masks" / "object", objects)
    facts = {"removed": settings.remove, "how": how, "frames": frames, "dilation_px": radius, "feather_px": feather,
             **result.stats}
    full = plates.write_plates(ctx.path, ctx.job.manifest, result.rgb, result.fill, result.alpha, facts,
                               progress=lambda f, m: ctx.progress(0.85 + 0.13 * f, m), log=ctx.job.log)
    outputs = {"plates": "plates", "masks": "masks", "object_masks": "masks/object"}
    if full:
        outputs["plates_full"] = "plates/full"
    return outputs


STAGE = Stage(
    name="inpaint",
    run=run,
    requires=("flow", "solve", "depth"),
    settings_fields=("remove", "quality", "effort"),
    outputs=("plates", "masks/00000.png"),
    version=13,  # 2: the removed object followed by its own motion (inpaint/track.py); 3: change evidence;
    # 4: the static scene weights source frames by their time (inpaint/scene.py); 5: the followed outline is
    # re-fitted on every frame, the motion-mask snap only when complete (inpaint/track.py, propagate.py), points
    # seen by fewer than 3 source frames left out of the static scene (inpaint/scene.py); 6: a followed object
    # seen whole twice running grows at most a pixel a frame (inpaint/track.py); 7: where GrabCut cannot cut
    # it, the change evidence beyond the followed outline decided by colour; small parts inside the outline kept
    # (inpaint/track.py, propagate.py); 8: the followed masks' edge pixels decided by colour blending
    # (track.matte_edge); 9: drawn parts moving by the change evidence too, a mask in parts followed from its
    # convex hull, a run from a fuller view used only if it finds the drawn mask again (track.py, propagate.py);
    # 10: GrabCut's cut on any of a frame's alignment rounds counts for the pass (track.py); 11: a run from a
    # fuller view only where it adds a part, not a rim (propagate.py); 12: runs from the nearest and the fullest
    # views within 8 frames vote (propagate.py); 13: the motion-mask snap only where it finds the tracked object
    # on every frame (propagate.choose)
    uses_torch=True,
    flow_gaps=(1,),
    fingerprint=fingerprint,
)
