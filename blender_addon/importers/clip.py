"""The shot's footage as a Movie Clip: the one the run was started from if it is still in the file, else the
job's working frames (`frames/00000.png`, ...) loaded as an image sequence.

Which frames line up: job frame i is footage position `start + i * step` (job.json's `frames`). A clip of
the footage itself lines up with the job frame by frame only for `step == 1`; its first frame (footage
position `first_index`) then plays at scene frame `frame_start - (start - first_index)`. The working frames
are job frames 0, 1, ... exactly, and play from `frame_start`.

Re-importing reuses the clip (found by its `shotfield_job` tag or its file), so clips never pile up.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import bpy

from ..footage import footage_for_clip
from .base import JOB_TAG, Built, JobFolder, Shot

NAME = "footage"
LABEL = "Footage Clip"
ICON = "FILE_MOVIE"
REQUIRES = ()
FIRST_FRAME = "frames/00000.png"


@dataclass
class ClipData:
    frames_file: str | None     # the working frames' first file, if the job has them
    footage: str | None         # the backend's footage source (normalised), if job.json says
    start: int
    step: int


def available(job: JobFolder) -> bool:
    return job.file(FIRST_FRAME).is_file() or find_footage_clip(job) is not None


def read(job: JobFolder) -> ClipData:
    first = job.file(FIRST_FRAME)
    return ClipData(str(first) if first.is_file() else None, _norm(job.footage), job.source_start, job.source_step)


def create(data: ClipData, shot: Shot) -> Built:
    clip, offset = _choose(data, shot.job)
    if clip is None:
        # Blender reads the whole numbered series when given its first file.
        clip = bpy.data.movieclips.load(data.frames_file)
        clip.name = shot.job.name
        clip[JOB_TAG] = str(shot.job.path)
    shot.clip = clip
    return Built(clip=clip, clip_frame_start=shot.frame_start - offset)


def _choose(data: ClipData, job: JobFolder):
    """(existing clip to reuse or None, footage frames before job frame 0 in that clip)."""
    if data.step == 1:
        found = find_footage_clip(job)
        if found is not None:
            clip, first_index = found
            return clip, data.start - first_index
    if data.frames_file is not None:
        same_file = [c for c in bpy.data.movieclips if _norm(_clip_path(c)) == _norm(data.frames_file)]
        if same_file:  # ours from an earlier import first, else one the user loaded
            return sorted(same_file, key=lambda c: c.get(JOB_TAG) != str(job.path))[0], 0
    return None, 0


def find_footage_clip(job: JobFolder):
    """(clip, first_index) for a clip in this file showing the footage the job was run on, else None."""
    wanted = _norm(job.footage)
    if wanted is None:
        return None
    for clip in bpy.data.movieclips:
        try:
            footage = footage_for_clip(_clip_path(clip), clip.source)
        except ValueError:
            continue
        same = _norm(footage.source) == wanted or (footage.kind == "images" and _norm(os.path.dirname(footage.source)) == wanted)
        if same:
            return clip, footage.first_index
    return None


def _clip_path(clip) -> str:
    return bpy.path.abspath(clip.filepath, library=clip.library)


def _norm(path: str | None) -> str | None:
    return os.path.normcase(os.path.normpath(os.path.abspath(path))) if path else None
