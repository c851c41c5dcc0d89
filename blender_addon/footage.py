"""What the backend is given as FOOTAGE for a Movie Clip, and how clip frames map to footage positions.

Standard library only (no bpy): the operators pass in a clip's absolute file path and its source kind.

A Movie Clip is either a video file (`source == "MOVIE"`) or an image sequence (`"SEQUENCE"`) that Blender
opened from one numbered file (`plate.0101.png`) and continues from there. The backend takes a video file
as it is, and an image sequence as a printf pattern (`plate.%04d.png`), whose frames it numbers 0, 1, ...
in file-number order over every matching file in the folder. A clip opened from a file in the middle of a
sequence therefore starts at footage position `first_index`, not 0.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

# The last run of digits in a file name is the frame number (Blender's rule for image sequences).
_FRAME_NUMBER = re.compile(r"(\d+)(?!.*\d)")


@dataclass(frozen=True)
class Footage:
    source: str          # absolute path of the video file, or printf pattern of the image sequence
    kind: str            # "video" | "images"
    first_index: int     # footage position (0-based, as `--frames` counts) of the clip's first frame


def sequence_pattern(path: str) -> tuple[str, int] | None:
    """`/a/plate.0101.png` -> (`/a/plate.%04d.png`, 101); None when the name has no frame number."""
    folder, name = os.path.split(path)
    m = _FRAME_NUMBER.search(name)
    if m is None:
        return None
    digits = m.group(1)
    pattern = name[:m.start()] + f"%0{len(digits)}d" + name[m.end():]
    return os.path.join(folder, pattern), int(digits)


def _numbered_files(pattern: str) -> list[int]:
    """Frame numbers of the files in the pattern's folder that match it (any digit count, as the backend)."""
    folder, name = os.path.split(pattern)
    head, _, rest = name.partition("%")
    tail = rest.split("d", 1)[1]
    regex = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + "$")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in map(regex.match, names) if m)


def footage_for_clip(filepath: str, source: str) -> Footage:
    """The backend's FOOTAGE for a clip whose (absolute) file is `filepath`; `source` is the clip's
    "MOVIE" or "SEQUENCE". Raises ValueError with a plain message if it cannot be one."""
    if source == "MOVIE":
        return Footage(filepath, "video", 0)
    found = sequence_pattern(filepath)
    if found is None:
        raise ValueError(f"{os.path.basename(filepath)}: an image sequence needs numbered file names "
                         "(e.g. plate.0001.png)")
    pattern, number = found
    numbers = _numbered_files(pattern)
    first_index = numbers.index(number) if number in numbers else 0
    return Footage(pattern, "images", first_index)


def frames_argument(first_index: int, start: int | None, end: int | None, step: int = 1) -> str | None:
    """`--frames` for clip frames `start..end` (1-based, inclusive, as the Clip Editor counts; None = the
    clip's first/last) of a clip starting at footage position `first_index`; None when it is everything."""
    begin = first_index + (start - 1 if start else 0)
    stop = first_index + end if end else None
    if begin == 0 and stop is None and step == 1:
        return None
    return f"{begin}:{'' if stop is None else stop}:{step}"
