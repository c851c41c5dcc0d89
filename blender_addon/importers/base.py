"""What every importer shares: the error type, the job folder as phase 1 reads it, the shot being built, and
what an importer hands back to the orchestrator (`importers/__init__.py`).

An importer module has:

    NAME: str                       # "camera", the output's identifier (operators' `outputs`, object tags)
    LABEL: str, ICON: str           # the panel's import button
    REQUIRES: tuple[str, ...]       # outputs it needs built first (the camera shows the footage clip)
    available(job: JobFolder) -> bool            # the job has this output (files only; cheap)
    read(job: JobFolder) -> data                 # phase 1: read and check; raises ImportFailed; no bpy.data changes
    create(data, shot: Shot) -> Built            # phase 2: new Blender data, not linked to any scene yet
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..shared_formats import job_manifest

OUTPUT_TAG = "shotfield_output"   # custom property on imported objects: which output made them
JOB_TAG = "shotfield_job"         # custom property on the shot's collection and clip: the job folder
NAME_TAG = "shotfield_name"       # the name an object gets once the previous import's is gone


class ImportFailed(ValueError):
    """A job output cannot become Blender data; the message says why in words for the artist."""


@dataclass
class JobFolder:
    """A job folder as phase 1 sees it: its path, name and what `job.json` says about the shot (each None
    when there is no job.json, e.g. a folder holding only camera/cameras.json)."""

    path: Path
    name: str
    manifest: dict | None = None
    fps: float | None = None
    frame_count: int | None = None
    source_start: int = 0                   # footage position of job frame 0
    source_step: int = 1
    working_size: tuple[int, int] | None = None
    source_size: tuple[int, int] | None = None
    footage: str | None = None              # the footage the backend read (video, folder or pattern)

    def file(self, relative: str) -> Path:
        return self.path / relative


def read_job_folder(path: str | os.PathLike) -> JobFolder:
    """Raises ImportFailed when the folder does not exist or its job.json is unreadable."""
    path = Path(path)
    if not path.is_dir():
        raise ImportFailed(f"{path}: job folder not found")
    job = JobFolder(path, path.name or "shot")
    if not (path / job_manifest.MANIFEST).is_file():
        return job
    try:
        manifest = job_manifest.read_manifest(path)
    except job_manifest.JobFolderError as exc:
        raise ImportFailed(str(exc)) from exc
    job.manifest = manifest
    fps, frames = manifest.get("fps"), manifest.get("frames") or {}
    if isinstance(fps, (int, float)) and fps > 0:
        job.fps = float(fps)
    if isinstance(frames.get("count"), int) and frames["count"] > 0:
        job.frame_count = frames["count"]
    if isinstance(frames.get("start"), int):
        job.source_start = frames["start"]
    if isinstance(frames.get("step"), int) and frames["step"] > 0:
        job.source_step = frames["step"]
    job.working_size = _size(manifest.get("working_size"))
    job.source_size = _size(manifest.get("source_size"))
    job.footage = (manifest.get("footage") or {}).get("source")
    return job


def _size(value) -> tuple[int, int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    return None


@dataclass
class Shot:
    """The shot being built in phase 2: where it goes in time, and what earlier importers made."""

    job: JobFolder
    frame_start: int = 1                    # scene frame of job frame 0
    clip: object = None                     # bpy.types.MovieClip, once the footage importer ran
    options: dict = field(default_factory=dict)


@dataclass
class Built:
    """What one importer made. Objects are not linked anywhere yet: the orchestrator puts them in the
    shot's collection once every importer succeeded, and applies the scene settings."""

    objects: list = field(default_factory=list)
    camera: object = None                   # becomes the scene camera
    clip: object = None                     # becomes the scene's active clip
    clip_frame_start: int | None = None     # scene frame of the clip's first frame
    resolution: tuple[int, int] | None = None
    pixel_aspect: tuple[float, float] | None = None
    last_frame_index: int | None = None     # highest job frame index it covers
    render: dict = field(default_factory=dict)   # scene.render settings (e.g. film_transparent)
    scene_setup: "Callable[[object], None] | None" = None  # called with the scene once all is built (compositor)
    warnings: list[str] = field(default_factory=list)


def tag(obj, output: str, name: str):
    """Mark an object as made by `output` (what a re-import replaces) and meant to be called `name` (Blender
    adds ".001" while an earlier import's object still has it)."""
    obj[OUTPUT_TAG] = output
    obj[NAME_TAG] = name
    return obj


def socket_identifier(group, name: str) -> str:
    """The identifier of node group `group`'s input socket `name`: what a Geometry Nodes modifier's inputs
    are keyed by (`modifier[identifier] = value`)."""
    return next(item.identifier for item in group.interface.items_tree
                if item.item_type == "SOCKET" and item.in_out == "INPUT" and item.name == name)


def attribute_emission_material(name: str, attribute: str):
    """The material `name` (made once): emission coloured by the geometry's `attribute`, so points show the
    footage's colours under any light."""
    import bpy

    material = bpy.data.materials.get(name)
    if material is not None:
        return material
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    source = nodes.new("ShaderNodeAttribute")
    source.attribute_name = attribute
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(source.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    for x, node in enumerate((source, emission, output)):
        node.location = (250 * x, 0)
    material.diffuse_color = (0.8, 0.8, 0.8, 1.0)
    return material
