"""Peer `blender-tracker`: Blender's own camera tracker (libmv), driven headlessly through its operators.

Run in its own process (it imports bpy; BLENDER_USER_RESOURCES should point at a temporary folder):

    python -m scripts.benchmarks.blender_tracker -- --frames DIR --job JOB [--tripod-solver] [--result R]

What a user does in the Movie Clip Editor, in order: open the image sequence as a Movie Clip, set the camera
to a first guess of the focal length (COLMAP's EXIF-less default, 1.2 · the long side, so both peers start
from the same guess), detect features (lowering the threshold where few come out) and track them forwards;
detect again every REDETECT_EVERY frames (or sooner where fewer than MIN_ALIVE_TRACKS tracks are left:
tracks leave the frame as the camera moves) and track those forwards too; delete the tracks shorter than
PRE_CLEAN_MIN_FRAMES; let the solver pick its keyframes (Blender's default pair if it cannot) and solve with
"refine focal length"; then the usual second pass: Clean Tracks (delete those with an error above
CLEAN_ERROR_PX or shorter than CLEAN_MIN_FRAMES) and solve again from the same keyframes, keeping the second
answer only if it is valid and no worse (a user would undo it otherwise). The clip operators need the
context of a Clip Editor: an area of the window is switched to one showing the clip and the operators run
inside `temp_override` (DESIGN.md). The settings are scaled to the frame size (see the constants); Blender's
own defaults are for HD footage.

The reconstructed camera matrices are checked against the solve itself: projecting the bundles through them
(after `solve_peers.cameras_from_blender_solution`) reproduces Blender's own average error exactly.

Writes JOB/camera/cameras.json (OpenCV convention; only frames with a reconstructed camera; extra keys
"reprojection_error_px" = the solve's average error, "tracks", "keyframes", "seconds") and
JOB/camera/points.ply (the bundles), through `solve_peers.write_solution`.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from scripts.benchmarks.solve_peers import (  # noqa: E402
    BlenderSolution, cameras_from_blender_solution, initial_focal_px, write_solution)

#: Detection and tracking settings, scaled to the clip (Blender's defaults, min_distance 120 px and a
#: 0.5 threshold, are meant for HD footage and find a handful of corners on a 320-px frame).
DETECT_THRESHOLD = 0.02
MIN_DISTANCE_FRACTION = 0.05   # of the long side
MARGIN_FRACTION = 0.03
PATTERN_FRACTION = 0.05        # pattern size, of the long side (at least 11 px)
SEARCH_FRACTION = 0.2
#: Detect new features on a frame where fewer than this many tracks are alive; lower the threshold
#: (down to MIN_THRESHOLD) where a detection finds fewer than MIN_DETECTED.
MIN_ALIVE_TRACKS = 40
MIN_DETECTED = 40
MIN_THRESHOLD = 1e-4
REDETECT_EVERY = 10            # and in any case every this many frames
#: The cleanup pass before the second solve: tracks with a larger reprojection error (px) or shorter than
#: this many frames are deleted (Blender's Clean Tracks).
CLEAN_ERROR_PX = 1.0
CLEAN_MIN_FRAMES = 10
#: Before the first solve, tracks shorter than this many frames are deleted.
PRE_CLEAN_MIN_FRAMES = 5


def _log(message: str) -> None:
    print(f"blender tracker: {message}", flush=True)


def clip_editor_override(bpy, clip) -> dict:
    """Switch the largest area of the first window to a Clip Editor showing `clip`; the override dict."""
    window = bpy.context.window_manager.windows[0]
    screen = window.screen
    area = max(screen.areas, key=lambda a: a.width * a.height)
    area.type = "CLIP_EDITOR"
    space = area.spaces.active
    space.clip = clip
    region = next(r for r in area.regions if r.type == "WINDOW")
    return {"window": window, "screen": screen, "area": area, "region": region, "space_data": space,
            "edit_movieclip": clip}


def alive_tracks(tracking_object, frame: int) -> int:
    """Tracks with an enabled marker on `frame`."""
    n = 0
    for track in tracking_object.tracks:
        marker = track.markers.find_frame(frame, exact=True)
        if marker is not None and not marker.mute:
            n += 1
    return n


def _read_back(obj, camera) -> dict:
    """The active object's reconstruction as plain values (valid: solved and every number finite)."""
    recon = obj.reconstruction
    cameras = [(int(c.frame), [list(row) for row in c.matrix]) for c in recon.cameras] if recon.is_valid else []
    error = float(recon.average_error) if recon.is_valid else math.nan
    finite = math.isfinite(error) and all(math.isfinite(v) for _, m in cameras for row in m for v in row)
    return {"valid": bool(recon.is_valid and cameras and finite), "cameras": cameras, "average_error": error,
            "bundles": [list(t.bundle) for t in obj.tracks if t.has_bundle] if recon.is_valid else [],
            "focal_px": float(camera.focal_length_pixels),
            "principal_point_px": (float(camera.principal_point_pixels[0]), float(camera.principal_point_pixels[1])),
            "tracks": len(obj.tracks), "keyframes": [obj.keyframe_a, obj.keyframe_b]}


def _detect(bpy, obj, detect: dict) -> None:
    """Detect features on the current frame; where fewer than MIN_DETECTED come out (faint texture), delete
    them and detect again with a quarter of the threshold, down to MIN_THRESHOLD, as a user would lower
    it. The threshold used is left in `detect["used"]`."""
    threshold = detect["threshold"]
    while True:
        before = len(obj.tracks)
        bpy.ops.clip.detect_features(**{k: v for k, v in detect.items() if k not in ("used", "threshold")},
                                     threshold=threshold)
        if len(obj.tracks) - before >= MIN_DETECTED or threshold / 4 < MIN_THRESHOLD:
            break
        bpy.ops.clip.delete_track()                   # the new tracks are the selected ones
        threshold /= 4
    detect.setdefault("used", []).append(threshold)


def _track(bpy, scene, obj, detect: dict, started: float) -> list[int]:
    """Detect and track forwards, again wherever the tracks thin out. Returns the frames detected on."""
    detected_on, last = [], None
    for frame in range(scene.frame_start, scene.frame_end):
        if last is not None and frame - last < REDETECT_EVERY and alive_tracks(obj, frame) >= MIN_ALIVE_TRACKS:
            continue
        scene.frame_set(frame)
        _detect(bpy, obj, detect)
        bpy.ops.clip.track_markers(backwards=False, sequence=True)
        detected_on.append(frame)
        last = frame
        _log(f"frame {frame}: {len(obj.tracks)} tracks, {time.perf_counter() - started:.1f} s")
    return detected_on


def _solve_camera(bpy) -> str | None:
    """clip.solve_camera; the operator's error message when it refuses (e.g. "no good keyframes")."""
    try:
        bpy.ops.clip.solve_camera()
    except RuntimeError as exc:
        return str(exc).strip()
    return None


def _solve_twice(bpy, scene, settings, obj, camera, tripod_solver: bool) -> tuple[dict, dict]:
    """Solve; if the error is above CLEAN_ERROR_PX, clean the tracks and solve again. Returns the answer kept
    (the second unless it failed or came out worse: what a user would undo) and facts about both."""
    scene.frame_set(scene.frame_start)
    # Tracks lost within a few frames (fast motion, occlusions) only slow the solver down: a user deletes
    # them first (Clean Tracks by length; error 0 leaves the error out).
    bpy.ops.clip.clean_tracks(frames=PRE_CLEAN_MIN_FRAMES, error=0.0, action="DELETE_TRACK")
    _log(f"solving {len(obj.tracks)} tracks of at least {PRE_CLEAN_MIN_FRAMES} frames")
    facts = {"solve_messages": [], "tracks_solved": len(obj.tracks), "first_solve_error_px": None, "second_solve_error_px": None, "kept": "first"}
    if (message := _solve_camera(bpy)) is not None and not tripod_solver:
        # Automatic keyframe selection failed: Blender's default pair, as far apart as the tracks allow.
        facts["solve_messages"].append(message)
        settings.use_keyframe_selection = False
        obj.keyframe_a, obj.keyframe_b = scene.frame_start, min(scene.frame_end, scene.frame_start + 29)
        message = _solve_camera(bpy)
    if message is not None:
        facts["solve_messages"].append(message)
    first = _read_back(obj, camera)
    facts["first_solve_error_px"] = first["average_error"]
    _log(f"solved: valid {first['valid']}, error {first['average_error']:.3f} px")
    if not first["valid"] or first["average_error"] <= CLEAN_ERROR_PX:
        return first, facts
    # The usual second pass: delete the tracks the solve could not explain (on moving objects, drifted,
    # too short) and solve again from the keyframes the first solve used (libmv's keyframe selection on
    # the thinned tracks can crash Blender).
    bpy.ops.clip.clean_tracks(frames=CLEAN_MIN_FRAMES, error=CLEAN_ERROR_PX, action="DELETE_TRACK")
    settings.use_keyframe_selection = False
    if (message := _solve_camera(bpy)) is not None:
        facts["solve_messages"].append(message)
    second = _read_back(obj, camera)
    _log(f"cleaned to {second['tracks']} tracks, solved again: valid {second['valid']}, "
         f"error {second['average_error']:.3f} px")
    facts["second_solve_error_px"] = second["average_error"]
    if message is None and second["valid"] and second["average_error"] <= first["average_error"]:
        facts["kept"] = "second"
        return second, facts
    return first, facts


def solve(frames_dir: Path, tripod_solver: bool = False) -> BlenderSolution:
    import bpy

    started = time.perf_counter()
    first = sorted(frames_dir.glob("*.png"))[0]
    clip = bpy.data.movieclips.load(str(first))
    width, height = int(clip.size[0]), int(clip.size[1])
    frames = int(clip.frame_duration)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = clip.frame_start, clip.frame_start + frames - 1
    scene.active_clip = clip
    override = clip_editor_override(bpy, clip)

    settings = clip.tracking.settings
    long_side = max(width, height)
    settings.default_pattern_size = max(11, int(PATTERN_FRACTION * long_side) | 1)
    settings.default_search_size = max(31, int(SEARCH_FRACTION * long_side) | 1)
    settings.refine_intrinsics_focal_length = True
    settings.use_keyframe_selection = True
    settings.use_tripod_solver = tripod_solver
    camera = clip.tracking.camera
    camera.units = "PIXELS"
    camera.focal_length_pixels = initial_focal_px(width, height)
    camera.principal_point_pixels = (width / 2.0, height / 2.0)
    obj = clip.tracking.objects.active
    detect = {"placement": "FRAME", "threshold": DETECT_THRESHOLD,
              "margin": max(4, int(MARGIN_FRACTION * long_side)),
              "min_distance": max(4, int(MIN_DISTANCE_FRACTION * long_side))}
    with bpy.context.temp_override(**override):
        detected_on = _track(bpy, scene, obj, detect, started)
        tracked_s = time.perf_counter() - started
        answer, facts = _solve_twice(bpy, scene, settings, obj, camera, tripod_solver)
    ok = answer["valid"]
    return BlenderSolution(
        width=width, height=height, frames=frames, frame_start=int(clip.frame_start),
        cameras=answer["cameras"] if ok else [], focal_px=answer["focal_px"],
        principal_point_px=answer["principal_point_px"], average_error=answer["average_error"] if ok else math.nan,
        bundles=answer["bundles"] if ok else [],
        details={"tracks": answer["tracks"], "detected_on": detected_on, "keyframes": answer["keyframes"],
                 "detect": detect, "pattern_size": settings.default_pattern_size,
                 "search_size": settings.default_search_size, "tripod_solver": tripod_solver,
                 "tracking_s": round(tracked_s, 3), **facts})


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=Path, required=True, help="folder of 00000.png, 00001.png, ...")
    p.add_argument("--job", type=Path, required=True, help="where camera/cameras.json is written")
    p.add_argument("--tripod-solver", action="store_true", help="Blender's tripod solver (rotation only)")
    p.add_argument("--result", type=Path, help="JSON with the compute seconds")
    args = p.parse_args(argv)
    start = time.perf_counter()
    solution = solve(args.frames, args.tripod_solver)
    seconds = time.perf_counter() - start
    solution.details["seconds"] = round(seconds, 3)
    write_solution(args.job, cameras_from_blender_solution(solution), solution.bundles)
    if args.result:
        args.result.write_text(json.dumps({"compute_s": seconds, "registered": len(solution.cameras)}))
    print(f"blender tracker: {len(solution.cameras)}/{solution.frames} frames, average error "
          f"{solution.average_error:.3f} px, focal {solution.focal_px:.1f} px, {seconds:.1f} s", flush=True)
    return 0  # a failed solve is an answer too: no frame registered


if __name__ == "__main__":
    sys.exit(main())
