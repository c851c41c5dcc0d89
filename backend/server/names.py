"""Every name or path that comes from a client is checked here before it reaches the filesystem.

- Ids (uploads, jobs) are made by the server: 16 lower-case hex digits. Anything else is not an id.
- Uploaded file names become a plain file name: no folders, no `..`, no hidden names, no control
  characters; other odd characters are replaced. A name that tries to climb folders is refused, not
  silently rewritten, so the client learns what it did.
- Paths inside a job (single-file downloads) must resolve to a regular file inside the job folder.
"""
from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path, PurePosixPath

from backend.footage import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

ID_PATTERN = r"^[0-9a-f]{16}$"
_ID = re.compile(ID_PATTERN)
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._ +-]")
MAX_NAME = 120
ZIP_EXTENSION = ".zip"
#: Files a job folder holds that are not results: its lock and the temporaries of atomic writes.
PRIVATE_FILES = re.compile(r"(^\.job\.lock$)|(\.tmp(\.[^/]*)?$)|(^\.write-test-)")


class BadName(ValueError):
    """A client-supplied name or path is not acceptable; the message says why (becomes a 400)."""


def new_id() -> str:
    return secrets.token_hex(8)


def is_id(text: str) -> bool:
    return bool(_ID.match(text or ""))


def safe_upload_name(name: str) -> tuple[str, str]:
    """A client's file name -> (plain file name, kind "video" | "images"). Raises BadName."""
    if not isinstance(name, str) or not name.strip():
        raise BadName("the upload needs a file name, e.g. shot.mp4 or plates.zip")
    if "/" in name or "\\" in name or "\x00" in name or name.strip() in (".", ".."):
        raise BadName(f"{name!r}: send a plain file name without folders (no '/', '\\' or '..')")
    if name.startswith("."):
        raise BadName(f"{name!r}: hidden file names (starting with '.') are not accepted")
    if any(ord(c) < 32 for c in name):
        raise BadName(f"{name!r}: control characters are not allowed in file names")
    clean = _UNSAFE_CHARS.sub("_", name.strip())
    stem, ext = os.path.splitext(clean)
    ext = ext.lower()
    if ext == ZIP_EXTENSION:
        kind = "images"
    elif ext in VIDEO_EXTENSIONS:
        kind = "video"
    else:
        known = ", ".join(sorted(VIDEO_EXTENSIONS))
        raise BadName(f"{name!r}: send a video file ({known}) or a .zip of an image sequence")
    return stem[: MAX_NAME - len(ext)] + ext, kind


def zip_member_name(member: str) -> str | None:
    """The plain file name an image inside an uploaded zip is stored under, None to skip the member
    (folders, macOS resource forks, hidden files). Raises BadName for names that climb out or are absolute."""
    if "\x00" in member or "\\" in member:
        raise BadName(f"{member!r} in the zip: backslashes and NUL are not allowed in member names")
    path = PurePosixPath(member)
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", member):
        raise BadName(f"{member!r} in the zip: absolute paths and '..' are not allowed")
    if member.endswith("/") or not path.name:
        return None
    if path.parts[0] == "__MACOSX" or any(p.startswith(".") for p in path.parts):
        return None
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise BadName(f"{member!r} in the zip: not an image ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return _UNSAFE_CHARS.sub("_", path.name)[-MAX_NAME:]


def file_in_folder(folder: Path, relative: str) -> Path:
    """`folder/relative` if it is a regular file inside `folder` (links resolved), else raise.

    BadName for a path that is absolute, climbs with '..' or resolves outside; FileNotFoundError
    when it is simply not there (or is one of the job's private files)."""
    if not relative or "\x00" in relative or "\\" in relative:
        raise BadName(f"{relative!r}: not a path inside the job")
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or ".." in parts:
        raise BadName(f"{relative!r}: absolute paths and '..' are not allowed")
    root = folder.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise BadName(f"{relative!r}: leads outside the job folder")
    if PRIVATE_FILES.search(target.name):
        raise FileNotFoundError(relative)
    st = os.stat(target)  # FileNotFoundError when missing
    if not stat.S_ISREG(st.st_mode):
        raise FileNotFoundError(relative)
    return target


def walk_regular_files(folder: Path):
    """(path, relative POSIX name, size) of every regular file under `folder`, links and private files left
    out; sorted, so a zip of the same folder lists the same members in the same order."""
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                st = os.lstat(path)
            except FileNotFoundError:  # replaced by an atomic rename while we looked
                continue
            if not stat.S_ISREG(st.st_mode) or PRIVATE_FILES.search(name):
                continue
            yield path, path.relative_to(root).as_posix(), st.st_size
