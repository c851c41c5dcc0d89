"""Footage uploads: declared first (name, size), then received as byte ranges, then checked.

    POST /v1/uploads {"name", "size"}      -> an upload id (size over the limit: 413)
    PUT  /v1/uploads/ID?offset=N  <bytes>  -> appends at N, which must be what the server has (409 says
                                              where to go on: a dropped connection resumes there)
    POST /v1/uploads/ID/complete           -> unpacks a zip of images, probes the footage (422 if it is
                                              corrupt), and the upload is ready to become a job

Bytes go straight to `uploads/ID/data.part` as they arrive; nothing is held in memory. A request that
would pass the declared size is refused whole (the file is cut back to where it began).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from exporters.atomic import write_json

from .archive import extract_images, remove_tree
from .config import ServerConfig
from .errors import ApiError
from .names import BadName, is_id, new_id, safe_upload_name

META = "upload.json"
PART = "data.part"
FOOTAGE_DIR = "footage"
WRITE_BLOCK = 1 << 20


@dataclass
class Upload:
    id: str
    name: str
    kind: str                  # "video" | "images" (a zip of an image sequence)
    size: int                  # declared bytes
    created: float
    state: str = "receiving"   # receiving | complete
    footage: str | None = None  # once complete: the footage inside the upload folder (file or folder name)
    info: dict | None = None    # once complete: frames, width, height, fps

    def public(self, received: int) -> dict:
        return {"id": self.id, "name": self.name, "kind": self.kind, "size": self.size, "received": received,
                "state": self.state, "footage": self.info}


class UploadStore:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.root = config.uploads
        self._locks: dict[str, asyncio.Lock] = {}
        self._completing: dict[str, threading.Lock] = {}

    def _dir(self, upload_id: str) -> Path:
        if not is_id(upload_id):
            raise ApiError(404, f"no upload {upload_id!r} on this server")
        return self.root / upload_id

    def get(self, upload_id: str) -> Upload:
        try:
            return Upload(**json.loads((self._dir(upload_id) / META).read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ApiError(404, f"no upload {upload_id!r} on this server (finished uploads become jobs; "
                                "old unfinished ones are removed)") from None

    def received(self, upload: Upload) -> int:
        try:
            return (self.root / upload.id / PART).stat().st_size
        except FileNotFoundError:
            return upload.size if upload.state == "complete" else 0

    def _save(self, upload: Upload) -> None:
        write_json(self.root / upload.id / META, asdict(upload))

    def create(self, name: str, size: int) -> Upload:
        try:
            clean, kind = safe_upload_name(name)
        except BadName as exc:
            raise ApiError(400, str(exc)) from None
        limit = self.config.max_upload_bytes
        if size > limit:
            raise ApiError(413, f"{clean} is {size} bytes; this server takes uploads up to {limit} bytes "
                                "(shotfield serve --max-upload-mb)")
        if len(list(self.root.iterdir())) >= self.config.max_open_uploads:
            raise ApiError(429, "too many unfinished uploads on this server; finish or delete some first")
        if shutil.disk_usage(self.root).free < size:
            raise ApiError(507, f"the server's disk has no room for {size} bytes")
        upload = Upload(new_id(), clean, kind, size, time.time())
        (self.root / upload.id).mkdir(mode=0o700)
        (self.root / upload.id / PART).touch(mode=0o600)
        self._save(upload)
        return upload

    async def receive(self, upload_id: str, offset: int, length: int | None, chunks: AsyncIterator[bytes]) -> dict:
        upload = self.get(upload_id)
        if upload.state != "receiving":
            raise ApiError(409, f"upload {upload_id} is already complete")
        lock = self._locks.setdefault(upload_id, asyncio.Lock())
        if lock.locked():
            raise ApiError(409, f"another transfer to upload {upload_id} is running; wait for it or resume later")
        async with lock:
            part = self.root / upload_id / PART
            have = part.stat().st_size
            if offset != have:
                raise ApiError(409, f"offset {offset}, but the server has {have} bytes of this upload; "
                                    f"send from offset {have}", {"X-Upload-Offset": str(have)})
            if length is not None and have + length > upload.size:
                raise ApiError(413, f"{have} + {length} bytes is more than the {upload.size} bytes declared")
            written = await self._append(part, have, upload.size, chunks)
        return upload.public(have + written)

    async def _append(self, part: Path, have: int, size: int, chunks: AsyncIterator[bytes]) -> int:
        buffer, written = bytearray(), 0
        with open(part, "ab") as f:
            try:
                async for chunk in chunks:
                    if have + written + len(buffer) + len(chunk) > size:
                        f.truncate(have)  # a refused request changes nothing
                        raise ApiError(413, f"more bytes than the {size} bytes declared for this upload")
                    buffer += chunk
                    if len(buffer) >= WRITE_BLOCK:
                        await run_in_threadpool(f.write, bytes(buffer))
                        written += len(buffer)
                        buffer.clear()
            except ClientDisconnect:
                pass  # keep what arrived: the client resumes from the offset GET /v1/uploads/ID reports
            if buffer:
                await run_in_threadpool(f.write, bytes(buffer))
                written += len(buffer)
        return written

    def complete(self, upload_id: str) -> Upload:
        """Blocking (unzips and decodes): call it in a worker thread. Two calls for one upload take turns."""
        with self._completing.setdefault(upload_id, threading.Lock()):
            return self._complete(upload_id)

    def _complete(self, upload_id: str) -> Upload:
        upload = self.get(upload_id)
        if upload.state == "complete":
            return upload
        folder = self.root / upload_id
        have = self.received(upload)
        if have != upload.size:
            raise ApiError(409, f"upload {upload_id} has {have} of {upload.size} bytes; send the rest first",
                           {"X-Upload-Offset": str(have)})
        from backend.errors import FootageError
        from backend.footage import probe_footage

        try:
            if upload.kind == "video":
                os.replace(folder / PART, folder / upload.name)
                upload.footage = upload.name
            else:
                count = extract_images(folder / PART, folder / FOOTAGE_DIR, self.config.max_upload_bytes * 4)
                (folder / PART).unlink()
                upload.footage = FOOTAGE_DIR
                if count == 0:
                    raise BadName("the zip holds no images")
            info = probe_footage(folder / upload.footage)
        except (BadName, FootageError) as exc:
            self.delete(upload_id)
            raise ApiError(422, _client_message(str(exc), folder, upload)) from None
        upload.state = "complete"
        upload.info = {"kind": info.kind, "frames": info.frame_count, "width": info.size[0],
                       "height": info.size[1], "fps": info.fps}
        self._save(upload)
        return upload

    def take(self, upload_id: str, dest: Path) -> Upload:
        """Move a complete upload's footage to `dest` (the job's footage folder); the upload is gone after."""
        upload = self.get(upload_id)
        if upload.state != "complete":
            raise ApiError(409, f"upload {upload_id} is not complete; POST /v1/uploads/{upload_id}/complete first")
        dest.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / upload_id / upload.footage, dest / upload.footage)
        self.delete(upload_id)
        return upload

    def delete(self, upload_id: str) -> None:
        remove_tree(self._dir(upload_id))
        self._locks.pop(upload_id, None)
        self._completing.pop(upload_id, None)

    def remove_stale(self) -> int:
        """Remove uploads older than the configured time to live; returns how many."""
        cutoff, removed = time.time() - self.config.upload_ttl_hours * 3600, 0
        for folder in self.root.iterdir():
            try:
                created = json.loads((folder / META).read_text())["created"]
            except (OSError, ValueError, KeyError):
                created = folder.stat().st_mtime
            if created < cutoff:
                remove_tree(folder)
                removed += 1
        return removed


def _client_message(text: str, folder: Path, upload: Upload) -> str:
    """A footage error in the client's terms: the server's folders replaced by the uploaded name."""
    if upload.footage:
        text = text.replace(str(folder / upload.footage), upload.name)
    text = text.replace(str(folder) + os.sep, "").replace(str(folder), "")
    return text if text.startswith(upload.name) else f"{upload.name}: {text}"
