"""Stage `depth`: per-frame planar depth in world units, learned on the shot itself (Li et al. 2020;
backend/depth/ has one module per step, docs/depth.md the method), and the objects' motion t -> t+1 measured
from that depth, the flow and the cameras (backend/depth/scene_flow.py).

Reads frames, flow (gaps 1, 2, 4), camera/cameras.json + camera/points.ply (the solve; without them the
cameras are learned too) and masks/motion. Writes depth/NNNNN.exr, depth/motion/, depth/confidence/,
depth/compositor/, depth/points/NNNNN.ply and depth/depth.json (see backend/depth/outputs.py).
"""
from __future__ import annotations

import time

import numpy as np
from ..depth import diagnose, outputs, scene_flow, shot as shot_inputs, train
from ..errors import ShotfieldError
from . import Stage


def _sparse_scale(shot, depth: np.ndarray) -> dict:
    """How the solve's sparse points agree with the depth maps: median of point depth / map depth over the
    points that project into each frame. 1 means the maps are in the world units of cameras.json."""
    if shot.points is None or len(shot.points) == 0:
        return {"points": 0, "median_ratio": None}
    ratios = []
    h, w = depth.shape[1:]
    for t in range(len(depth)):
        cam_from_world = np.linalg.inv(shot.world_from_camera[t])
        cam = shot.points @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
        z = cam[:, 2]
        front = z > 0
        uv = (cam[front] @ shot.K[t].T)[:, :2] / z[front, None]
        x, y = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        d = depth[t, y[inside], x[inside]]
        ok = ~shot.moving[t, y[inside], x[inside]] & (d > 0)
        ratios.append(z[front][inside][ok] / d[ok])
    r = np.concatenate(ratios) if ratios else np.zeros(0)
    if r.size == 0:
        return {"points": 0, "median_ratio": None}
    return {"points": int(r.size), "median_ratio": round(float(np.median(r)), 5),
            "within_10_percent": round(float(np.mean(np.abs(r - 1) < 0.1)), 4)}


def run(ctx) -> dict[str, str]:
    started = time.monotonic()
    ctx.progress(0.0, "reading frames, flow, cameras")
    shot = shot_inputs.load_shot(ctx.path)
    if not shot.pairs:
        raise ShotfieldError("depth: the job has no optical flow for gaps 1, 2 or 4; run the 'flow' stage again")
    if not shot.has_cameras:
        ctx.job.log("depth: no solved cameras of this shot's size; learning ego-motion and intrinsics too")
    result = train.train(shot, ctx.device, ctx.settings.quality, ctx.settings.effort,
                         progress=lambda f, m: ctx.progress(0.05 + 0.85 * f, m))
    depth = np.exp(result.log_depth).astype(np.float32)
    ctx.progress(0.91, "measuring the objects' motion")
    # the object-motion output is measured from the depth, the flow and the cameras, not the network's residual
    # field, which stays "lazy" on one shot (scene_flow.py has the figures)
    learned_motion = result.motion
    result.motion = scene_flow.object_motion(depth, result.K, result.world_from_camera, shot.moving, shot.pairs)
    ctx.progress(0.92, "checking the result")
    moving = shot.moving
    flows = {p.t: p.flow for p in shot.pairs if p.s == p.t + 1}
    geometric = result.median_depth if not result.learned_cameras else None
    check = diagnose.failure_modes(depth, result.motion, moving, result.world_from_camera, result.K, geometric, flows)
    # The same check on the network's residual field, which the training's warps used: the seed's failure modes
    # are the training's, and the written maps no longer show them (they are zero outside the masks by
    # construction), so depth.json keeps both rather than let the measured output hide a lazy network.
    training_check = diagnose.failure_modes(depth, learned_motion, moving, result.world_from_camera, result.K,
                                            geometric, flows)
    consistency = diagnose.temporal_consistency(depth, result.K, result.world_from_camera, moving)
    scale = _sparse_scale(shot, depth) if shot.has_cameras else {"points": 0, "median_ratio": None}
    ctx.job.log(f"depth: failure-mode check of the motion maps: {check['mode']} {check['facts']}")
    ctx.job.log(f"depth: failure-mode check of the network's residual field (training): {training_check['mode']} "
                f"{training_check['facts']}")
    ctx.job.log(f"depth: temporal consistency (static, t -> t+1): {consistency}")
    if result.drift.get("dropped"):
        ctx.job.log(f"depth: the training moved the triangulated static depth by {result.drift['median_change']} "
                    "(median |log change|): it ran away, and its correction was dropped (the output is the prior)")
    summary = {
        "format": "shotfield-depth", "version": 1,
        "frames": shot.frames, "width": shot.size[1], "height": shot.size[0],
        "depth": "planar (along the optical axis), channel Z, world units of camera/cameras.json; 0 or inf = unknown",
        "scale_source": ("solved cameras (world units of cameras.json); sparse points as a check"
                         if not result.learned_cameras else "learned cameras: median depth of the first frames = 1"),
        "sparse_points": scale,
        "cameras": "learned" if result.learned_cameras else "solve (fixed)",
        "self_calibration": result.self_calibration or None,
        "triangulated_coverage": round(result.prior_coverage, 4),
        "rigid_objects": result.rigid_objects,
        "training_drift": result.drift or None,
        "failure_check": check,
        "training_check": training_check,
        "temporal_consistency": consistency,
        "losses": result.losses,
        "loss_history": result.loss_history,
        "steps": result.steps, "effort": ctx.settings.effort, "quality": ctx.settings.quality, "device": ctx.device,
        "seconds": {"training": round(result.seconds, 2), "total": round(time.monotonic() - started, 2)},
    }
    ctx.progress(0.95, "writing depth, motion, confidence and point clouds")
    # The points go through the cameras the depth belongs to: cameras.json's as read (the training held them
    # fixed; its own copy went through float32), so they land where the imported camera sees them; the
    # learned ones only when there was no solve (then in the learned world, depth.json's "cameras").
    K, world_from_camera = ((result.K, result.world_from_camera) if result.learned_cameras
                            else (shot.K, shot.world_from_camera))
    rgb = np.rint(shot.rgb * 255).astype(np.uint8)
    points = outputs.write_outputs(ctx.path, depth, result.motion, result.confidence, summary,
                                   K, world_from_camera, rgb)
    ctx.job.log(f"depth: {result.steps} steps in {result.seconds:.1f} s on {ctx.device}; point clouds every "
                f"{points['step']} px, {points['points']} points")
    ctx.progress(1.0, "done")
    return {"depth": "depth", "object_motion": "depth/motion", "depth_confidence": "depth/confidence",
            "depth_points": "depth/points", "depth_summary": "depth/depth.json"}


STAGE = Stage(
    name="depth",
    run=run,
    requires=("flow", "solve"),
    settings_fields=("quality", "effort"),
    outputs=("depth/00000.exr", "depth/points/00000.ply", "depth/depth.json"),
    # 2: focal scan (self_calibration), moving objects held to their ground contact; 3: depth/points/ PLYs;
    # 4: the objects' outline refined by GrabCut (objects.refine_outline): the depth maps change;
    # 5: the object motion measured from depth, flow and cameras (scene_flow.py): the motion maps change;
    # 6: the prior's occlusion edges snapped to the colour edges (prior.snap_to_edges): the depth maps change;
    # 7: one depth per connected part of an object (train._flat_parts): the depth maps change;
    # 8: the contact cue reads the ground plane (ground.py), a part holding two motions at two depths is
    # flattened in two (train.SPLIT_MOTIONS): the depth maps change; 9: the object parts get a sphere-like
    # relief (train._dome_relief): the depth maps change; 10: each object identity's depth follows its running
    # median over the frames (train._smooth_over_time): the depth maps change; 11: a training that drags the
    # static depth off its prior is dropped (train._drift_check, depth.json: training_drift); 12: the relief per
    # object part, not per region of the object pixels: the depth maps change
    version=12,
    uses_torch=True,
    flow_gaps=shot_inputs.DEPTH_GAPS,
)
