"""Blender data from a job folder's outputs: one module per output, and `import_job`, which imports some or all
of them into one collection named after the shot.

Import happens in two phases, as in Blender's glTF importer: first every importer reads and checks its
files (`read`), touching no Blender data; then they build (`create`). Any problem in phase 1 is an
`ImportFailed` (or a format's own error) with a plain message, and nothing changed. If building fails,
everything built so far is removed again, so an import never leaves half-built data.

Re-importing replaces: the shot's collection is found again by its `shotfield_job` tag, and the objects a
re-imported output made before (tagged `shotfield_output`) are removed once the new ones exist. Outputs not
re-imported stay. Once built, the scene follows the shot: frame range, frame rate, resolution, the
active clip and the active camera.

Adding an output is adding a module to this package and its name to IMPORTER_NAMES. Each module defines NAME,
LABEL, ICON, FILE (what the job must have), REQUIRES (outputs it builds on), `available(job)`, `read(job)` and
`create(data, shot) -> Built`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from ..optional_modules import import_present
from ..shared_formats import cameras_json, job_manifest
from .base import JOB_TAG, NAME_TAG, OUTPUT_TAG, Built, ImportFailed, JobFolder, Shot, read_job_folder

__all__ = ["IMPORTERS", "ImportFailed", "ImportResult", "READ_ERRORS", "available_outputs", "import_job", "read_job_folder"]

#: In build order: the footage clip before the camera that shows it, the camera before what hangs off it.
#: Names without a module yet are outputs not built into this version (as with the backend's stages).
IMPORTER_NAMES = ("clip", "camera", "points", "ground", "depth", "depth_points", "point_cache", "tracks", "layers",
                  "plates")

IMPORTERS = import_present(__name__, IMPORTER_NAMES)
BY_NAME = {module.NAME: module for module in IMPORTERS}
#: Left out of "import all" unless asked for: the ground plane is an option (`ground_plane`); the per-frame
#: depth point clouds are heavy (every frame's points live in the .blend, ~20,000 a frame) and have their
#: own import button.
OPTIONAL = {"ground", "depth_points"}
#: Errors phase 1 turns a bad job folder into; each carries a plain message naming the file.
READ_ERRORS = (ImportFailed, cameras_json.CamerasFileError, job_manifest.JobFolderError, OSError, ValueError)
# bpy.data collections an importer may add to; what phase 2 added is removed again if it fails.
_ID_COLLECTIONS = ("objects", "meshes", "cameras", "actions", "materials", "node_groups", "movieclips",
                   "images", "collections", "curves", "pointclouds", "lights", "texts", "cache_files")


@dataclass
class ImportResult:
    collection: object                              # bpy.types.Collection
    outputs: list[str]
    objects: list = field(default_factory=list)
    camera: object = None
    clip: object = None
    warnings: list[str] = field(default_factory=list)


def available_outputs(job_dir: str | os.PathLike) -> list[str]:
    """Names of the outputs the job folder has (in build order); [] if it is no folder."""
    try:
        job = read_job_folder(job_dir)
    except ImportFailed:
        return []
    return [m.NAME for m in IMPORTERS if m.available(job)]


def import_job(scene, job_dir: str | os.PathLike, outputs=None, frame_start: int = 1,
               ground_plane: bool = True) -> ImportResult:
    """Import `outputs` (names; None: every output the job has, the ground plane if `ground_plane`) into
    `scene`. Raises ImportFailed (or a READ_ERRORS format error) with nothing changed."""
    job = read_job_folder(job_dir)
    names = _resolve_outputs(job, outputs, ground_plane)
    plan = [(BY_NAME[n], BY_NAME[n].read(job)) for n in names]   # phase 1
    return _build(scene, job, plan, frame_start)                  # phase 2


def _resolve_outputs(job: JobFolder, outputs, ground_plane: bool) -> list[str]:
    have = [m.NAME for m in IMPORTERS if m.available(job)]
    if outputs is None:
        wanted = {n for n in have if n not in OPTIONAL or (n == "ground" and ground_plane)}
        if not wanted:
            raise ImportFailed(f"{job.path}: nothing to import yet (no frames, camera or points); run the job first")
    else:
        wanted = set(outputs)
        unknown = wanted - set(BY_NAME)
        if unknown:
            raise ImportFailed(f"unknown output(s) {', '.join(sorted(unknown))}; known: {', '.join(BY_NAME)}")
        missing = [n for n in wanted if n not in have]
        if missing:
            files = ", ".join(getattr(BY_NAME[n], "FILE", n) for n in missing)
            raise ImportFailed(f"{job.path}: the job has no {files}; run its stage first")
        for name in list(wanted):  # what they need, where the job has it
            wanted |= {r for r in BY_NAME[name].REQUIRES if r in have}
    return [m.NAME for m in IMPORTERS if m.NAME in wanted]


def _build(scene, job: JobFolder, plan, frame_start: int) -> ImportResult:
    shot = Shot(job, frame_start)
    before = _id_snapshot()
    built: list[tuple[str, Built]] = []
    step = "the scene"
    try:
        for module, data in plan:
            step = f"the {module.LABEL.lower()}"
            built.append((module.NAME, module.create(data, shot)))
        step = "the scene"
        collection = _shot_collection(scene, job)
        result = ImportResult(collection, [name for name, _ in built])
        for name, part in built:
            for obj in part.objects:
                collection.objects.link(obj)
                result.objects.append(obj)
            result.warnings += [f"{name}: {w}" for w in part.warnings]
    except Exception as exc:
        _remove_new_ids(before)
        if isinstance(exc, ImportFailed):
            raise
        raise ImportFailed(f"building {step} failed: {exc}") from exc
    # Everything new exists: now the old objects of these outputs can go.
    _replace(collection, result.outputs, keep=set(result.objects))
    _restore_names(result.objects)
    _apply_scene(scene, job, shot, [part for _, part in built], result)
    return result


def _shot_collection(scene, job: JobFolder):
    """The shot's collection: the one an earlier import made (its tag names this job folder), else a new one
    named after the shot. Linked to the scene if it is not."""
    key = str(job.path)
    collection = next((c for c in bpy.data.collections if c.get(JOB_TAG) == key), None)
    if collection is None:
        collection = bpy.data.collections.new(job.name)
        collection[JOB_TAG] = key
    if collection.name not in scene.collection.children and collection not in _all_children(scene.collection):
        scene.collection.children.link(collection)
    return collection


def _all_children(collection) -> list:
    found = []
    for child in collection.children:
        found += [child] + _all_children(child)
    return found


def _replace(collection, outputs: list[str], keep: set) -> None:
    """Remove the objects an earlier import of these outputs made, and data nothing else uses any more."""
    old = [obj for obj in collection.all_objects if obj.get(OUTPUT_TAG) in outputs and obj not in keep]
    datas = [obj.data for obj in old if obj.data is not None]
    actions = [ad.action for ad in (o.animation_data for o in old) if ad and ad.action]
    actions += [ad.action for ad in (getattr(d, "animation_data", None) for d in datas) if ad and ad.action]
    bpy.data.batch_remove(old)
    orphans = [d for d in datas + actions if d.users == 0]
    if orphans:
        bpy.data.batch_remove(orphans)


def _restore_names(objects) -> None:
    """New objects were made while the old ones still held their names ("Shot Camera.001"); now that the old
    ones are gone, give them the names they were meant to have."""
    for obj in objects:
        name = obj.get(NAME_TAG)
        if name and obj.name != name:
            obj.name = name
            if obj.data is not None and obj.data.users == 1:
                obj.data.name = name


def _apply_scene(scene, job: JobFolder, shot: Shot, parts: list[Built], result: ImportResult) -> None:
    """The scene follows the shot: frame range, fps, resolution, active clip and camera."""
    render = scene.render
    last_index = max([p.last_frame_index for p in parts if p.last_frame_index is not None], default=None)
    count = max(job.frame_count or 0, (last_index + 1) if last_index is not None else 0)
    if count:
        scene.frame_start = shot.frame_start
        scene.frame_end = shot.frame_start + count - 1
    if job.fps:
        # Blender's rate is fps / fps_base with an integer fps: 29.97 -> 30 / 1.001.
        render.fps = max(1, round(job.fps))
        render.fps_base = render.fps / job.fps
    resolution = next((p.resolution for p in parts if p.resolution), None) or job.working_size
    if resolution:
        render.resolution_x, render.resolution_y = shot_resolution(resolution, job.source_size)
        render.resolution_percentage = 100
    for part in parts:
        if part.pixel_aspect:
            render.pixel_aspect_x, render.pixel_aspect_y = part.pixel_aspect
        for key, value in part.render.items():
            setattr(render, key, value)
        if part.clip is not None:
            result.clip = part.clip
            scene.active_clip = part.clip
            if part.clip_frame_start is not None:
                part.clip.frame_start = part.clip_frame_start
        if part.camera is not None:
            result.camera = scene.camera = part.camera
    for part in parts:
        if part.scene_setup is not None:
            part.scene_setup(scene)
    scene.frame_set(shot.frame_start)


def shot_resolution(solved: tuple[int, int], source: tuple[int, int] | None) -> tuple[int, int]:
    """The render size: the footage's own size when the solved (working) size is a scaled copy of it (lens,
    shift and pixel aspect do not change with scale, so the camera fits both), else the solved size."""
    if source and abs(source[0] / source[1] - solved[0] / solved[1]) <= 0.005 * solved[0] / solved[1]:
        return source
    return solved


def _id_snapshot() -> dict[str, set]:
    return {name: {id_.as_pointer() for id_ in getattr(bpy.data, name)} for name in _ID_COLLECTIONS}


def _remove_new_ids(before: dict[str, set]) -> None:
    new = [id_ for name, seen in before.items() for id_ in getattr(bpy.data, name) if id_.as_pointer() not in seen]
    if new:
        bpy.data.batch_remove(new)


def job_path(path: str | os.PathLike) -> Path:
    """A job folder from what a user picked: the folder itself, or its camera/cameras.json."""
    path = Path(path)
    if path.suffix == ".json" and path.parent.name == "camera":
        return path.parent.parent
    return path
