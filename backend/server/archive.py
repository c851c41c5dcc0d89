"""Zip in (an uploaded image sequence, unpacked flat and checked) and zip out (a job folder, streamed).

Out: members are stored, not deflated. The frames are PNG or EXR (already compressed) and the server's
CPU belongs to the jobs; the zip is written to the response as it is made, so a large job needs no
temporary copy on disk. Only regular files inside the job folder go in (names.walk_regular_files).
"""
from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path
from typing import Iterator

from .names import BadName, walk_regular_files, zip_member_name

CHUNK = 1 << 20
MAX_MEMBERS = 100_000


class _Sink:
    """A write-only, unseekable file: zipfile then writes data descriptors and never seeks back."""

    def __init__(self):
        self._parts: list[bytes] = []
        self._size = 0
        self._pos = 0

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        self._size += len(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self._parts, self._size = b"".join(self._parts), [], 0
        return data

    @property
    def pending(self) -> int:
        return self._size


def folder_size(folder: Path) -> int:
    """Bytes of the files a zip of `folder` holds (the zip adds about 100 bytes a file)."""
    return sum(size for _, _, size in walk_regular_files(folder))


def zip_folder(folder: Path) -> Iterator[bytes]:
    """The zip of every regular file under `folder`, as chunks of about CHUNK bytes. Files that vanish
    while the zip is made (a running job replaces files by atomic renames) are left out."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path, arcname, size in walk_regular_files(folder):
            try:
                src = open(path, "rb")
            except FileNotFoundError:
                continue
            with src:
                info = zipfile.ZipInfo.from_file(path, arcname)
                info.compress_type = zipfile.ZIP_STORED
                with zf.open(info, "w", force_zip64=size > 0x7FFF0000) as dst:
                    while block := src.read(CHUNK):
                        dst.write(block)
                        if sink.pending >= CHUNK:
                            yield sink.take()
            if sink.pending >= CHUNK:
                yield sink.take()
    yield sink.take()


def extract_images(zip_path: Path, dest: Path, max_bytes: int) -> int:
    """Unpack the images of an uploaded zip flat into `dest`; returns how many. Raises BadName for a zip
    that is corrupt, climbs out of its folder, holds links, non-images or clashing names, or unpacks
    to more than `max_bytes`."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadName(f"not a readable zip file ({exc})") from exc
    with zf:
        members, total = [], 0
        for info in zf.infolist():
            name = zip_member_name(info.filename)
            if name is None:
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise BadName(f"{info.filename!r} in the zip: links are not accepted")
            total += info.file_size
            members.append((info, name))
        names = [n for _, n in members]
        if len(set(names)) != len(names):
            raise BadName("the zip holds two images with the same file name in different folders; "
                          "zip one image sequence")
        if len(members) > MAX_MEMBERS or total > max_bytes:
            raise BadName(f"the zip unpacks to {len(members)} files, {total} bytes: over the server's limit")
        dest.mkdir(parents=True, exist_ok=True)
        try:
            for info, name in members:
                with zf.open(info) as src, open(dest / name, "xb") as out:
                    while block := src.read(CHUNK):
                        out.write(block)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # CRC errors, truncated members
            raise BadName(f"the zip is damaged ({exc}); zip the images again") from exc
    return len(members)


def remove_tree(path: Path) -> None:
    """Remove a folder; a link in its place is unlinked, never followed (rmtree itself never follows links)."""
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)
