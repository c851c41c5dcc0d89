"""Atomic writes: write to a temporary name in the same folder, then rename.

A crash or a cancel therefore never leaves a half-written file under the final name: a reader sees the
old file or the new one, never a torn one. `os.replace` is atomic on POSIX and Windows within one volume.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on error removed.

    The temporary name keeps the suffix so that libraries choosing the format by extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def swap_in_folder(partial: str | os.PathLike, final: str | os.PathLike) -> None:
    """Publish a folder that was filled under the name `partial` as `final`, replacing the old one.

    The old folder is renamed away first and deleted only after the new one is in place, so a crash leaves
    either the old complete folder, or the new complete one (plus a stale `.old` that the next swap removes),
    never a mix of old and new files.
    """
    partial, final = Path(partial), Path(final)
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    partial.rename(final)
    shutil.rmtree(old, ignore_errors=True)
