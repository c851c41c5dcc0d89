"""A client for `shotfield serve`, for the add-on: standard library only (urllib, json, zipfile).

Blender ships no HTTP packages beyond Python's own, so this needs nothing else, and it never imports
bpy either: the panel code calls it (from a timer, or from a thread for the long transfers) and shows
`ServerError`'s message as it is. Every failure becomes one ServerError whose message says what
happened and what to do: connection refused, host not found, timeout, a refused token (401), or the
server's own explanation of a refused request (4xx).

    server = ShotfieldServer("http://127.0.0.1:8000", token)
    upload_id = server.upload("/shots/plate.mp4", on_progress=lambda done, total: ...)
    job_id = server.create_job(upload_id, {"stages": ["ingest", "flow"], "quality": "preview"})
    events, offset = server.progress(job_id, 0)      # poll: pass the offset back next time
    server.status(job_id)["state"]                   # queued | running | done | failed | cancelled
    server.download(job_id, "/jobs/plate")           # the job folder, unpacked

Uploads go in chunks and resume from what the server has after a dropped connection; an image
sequence (a folder, or a pattern such as shot.%04d.png) is sent as one zip (stored, not compressed:
the frames are compressed already).
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile

CHUNK = 8 * 1024 * 1024
RETRIES = 4
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp")
_PATTERN = re.compile(r"%0?(\d*)d|#+")


class ServerError(Exception):
    """A problem talking to the server, in plain words; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ShotfieldServer:
    def __init__(self, url: str, token: str, timeout: float = 10.0):
        url = (url or "").strip().rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ServerError(f"Server URL {url!r} is not valid: it should look like http://127.0.0.1:8000")
        self.url, self.token, self.timeout = url, (token or "").strip(), timeout
        handlers = []
        if _is_loopback(parts.hostname):
            handlers.append(urllib.request.ProxyHandler({}))  # a proxy setting must not catch this machine
        self._opener = urllib.request.build_opener(*handlers)

    # -- the API --------------------------------------------------------------------------------------
    def version(self) -> dict:
        """{"version": str, "device": str, ...}: also proves the URL and the token."""
        return self._call("GET", "/v1/version")

    def upload(self, footage_path: str, on_progress=None) -> str:
        """Send footage (a video file, an image folder or a pattern); returns the upload id once the server
        has checked it. `on_progress(sent_bytes, total_bytes)` is called as bytes go out."""
        path, name, temp = self._prepare(footage_path)
        try:
            size = os.path.getsize(path)
            upload_id = self._call("POST", "/v1/uploads", {"name": name, "size": size})["id"]
            self._send(upload_id, path, size, on_progress)
            self._call("POST", f"/v1/uploads/{_q(upload_id)}/complete", timeout=max(self.timeout, 600.0))
            return upload_id
        finally:
            if temp:
                shutil.rmtree(temp, ignore_errors=True)

    def create_job(self, upload_id: str, settings: dict) -> str:
        """A queued job from a complete upload. `settings` keys mirror `shotfield run`'s options: stages
        (list or "ingest,flow"), frames ("0:40"), quality, device, long_side, fps, flow_gaps, remove."""
        return self._call("POST", "/v1/jobs", {"upload_id": upload_id, "settings": dict(settings or {})})["id"]

    def progress(self, job_id: str, offset: int) -> tuple[list[dict], int]:
        """progress.jsonl events written since byte `offset`, and the offset to pass next time."""
        data = self._call("GET", f"/v1/jobs/{_q(job_id)}/progress?offset={int(offset)}")
        return data["events"], data["offset"]

    def status(self, job_id: str) -> dict:
        """{"state": queued|running|done|failed|cancelled, "stages": {...job.json stages...}, "error": str|None,
        "queue_position": int|None, ...}"""
        return self._call("GET", f"/v1/jobs/{_q(job_id)}")

    def cancel(self, job_id: str) -> None:
        """Stop the job (finished stages are kept). A job that already ended is left as it is."""
        try:
            self._call("POST", f"/v1/jobs/{_q(job_id)}/cancel")
        except ServerError as exc:
            if exc.status != 409:
                raise

    def download(self, job_id: str, dest_dir: str, on_progress=None) -> str:
        """Unpack the job folder into `dest_dir` (replacing an earlier download there); returns its absolute
        path. `on_progress(received_bytes, total_bytes)`; the total is an estimate (the files' sizes)."""
        dest = os.path.abspath(os.path.expanduser(dest_dir))
        parent = os.path.dirname(dest)
        os.makedirs(parent, exist_ok=True)
        work = tempfile.mkdtemp(prefix=".shotfield-download-", dir=parent)
        try:
            archive = os.path.join(work, "job.zip")
            self._fetch(f"/v1/jobs/{_q(job_id)}/download", archive, on_progress)
            unpacked = os.path.join(work, "job")
            _safe_unzip(archive, unpacked)
            if os.path.isdir(dest):
                shutil.rmtree(dest)
            os.replace(unpacked, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return dest

    def list_jobs(self) -> list[dict]:
        return self._call("GET", "/v1/jobs")["jobs"]

    def resume(self, job_id: str) -> None:
        self._call("POST", f"/v1/jobs/{_q(job_id)}/resume")

    def delete(self, job_id: str) -> None:
        self._call("DELETE", f"/v1/jobs/{_q(job_id)}", timeout=max(self.timeout, 120.0))

    # -- transfers ------------------------------------------------------------------------------------
    def _prepare(self, footage_path: str) -> tuple[str, str, str | None]:
        """(file to send, name for the server, temporary folder to remove afterwards or None)."""
        path = os.path.abspath(os.path.expanduser(footage_path or ""))
        if os.path.isfile(path):
            if path.lower().endswith(IMAGE_EXTENSIONS):
                raise ServerError(f"{path} is a single image: choose the folder of the image sequence")
            return path, os.path.basename(path), None
        if os.path.isdir(path):
            files = sorted(os.path.join(path, f) for f in os.listdir(path)
                           if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
            name = os.path.basename(path.rstrip(os.sep)) or "frames"
        elif _PATTERN.search(os.path.basename(path)):
            regex = _pattern_regex(os.path.basename(path))
            folder = os.path.dirname(path)
            files = sorted(os.path.join(folder, f) for f in (os.listdir(folder) if os.path.isdir(folder) else [])
                           if regex.match(f))
            name = _PATTERN.sub("", os.path.splitext(os.path.basename(path))[0]).strip("._") or "frames"
        else:
            raise ServerError(f"{path}: no such file or folder")
        if len(files) < 2:
            raise ServerError(f"{path}: found {len(files)} image(s); a shot needs at least 2 frames")
        temp = tempfile.mkdtemp(prefix="shotfield-upload-")
        archive = os.path.join(temp, _plain(name) + ".zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for f in files:
                zf.write(f, os.path.basename(f))
        return archive, os.path.basename(archive), temp

    def _send(self, upload_id: str, path: str, size: int, on_progress) -> None:
        offset, failures = 0, 0
        with open(path, "rb") as f:
            while offset < size:
                count = min(CHUNK, size - offset)
                f.seek(offset)
                body = _Reader(f, count, lambda n, base=offset: on_progress and on_progress(base + n, size))
                try:
                    reply = self._call("PUT", f"/v1/uploads/{_q(upload_id)}?offset={offset}", raw=body,
                                       headers={"Content-Type": "application/octet-stream", "Content-Length": str(count)},
                                       timeout=max(self.timeout, 60.0))
                    offset, failures = reply["received"], 0
                except ServerError as exc:
                    if exc.status not in (None, 409) or failures >= RETRIES:
                        raise
                    failures += 1
                    time.sleep(min(2.0 ** failures, 10.0))
                    offset = self._call("GET", f"/v1/uploads/{_q(upload_id)}")["received"]  # resume where it is
                if on_progress:
                    on_progress(offset, size)

    def _fetch(self, path: str, target: str, on_progress) -> None:
        response = self._open("GET", path, timeout=max(self.timeout, 60.0))
        total = int(response.headers.get("X-Shotfield-Content-Bytes") or 0)
        done = 0
        try:
            with response, open(target, "wb") as out:
                while block := response.read(1 << 20):
                    out.write(block)
                    done += len(block)
                    if on_progress:
                        on_progress(done, max(total, done))
        except (OSError, http.client.HTTPException) as exc:
            raise self._connection_error(exc) from None

    # -- plumbing -------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, payload=None, raw=None, headers=None, timeout=None):
        body, headers = raw, dict(headers or {})
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        with self._open(method, path, body, headers, timeout) as response:
            data = response.read()
        return json.loads(data) if data else None

    def _open(self, method, path, body=None, headers=None, timeout=None):
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        request.add_header("Authorization", f"Bearer {self.token}")
        try:
            return self._opener.open(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc) from None
        except urllib.error.URLError as exc:
            raise self._connection_error(exc.reason) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._connection_error(exc) from None

    def _http_error(self, exc: urllib.error.HTTPError) -> ServerError:
        try:
            detail = json.loads(exc.read() or b"{}").get("detail")
        except (ValueError, OSError, AttributeError):
            detail = None
        if isinstance(detail, list):  # FastAPI's validation errors: [{"loc": [...], "msg": ...}]
            detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail)
        detail = detail or exc.reason
        if exc.code == 401:
            return ServerError("The server refused the token (401 Unauthorized): copy the token from the server "
                               "(`shotfield serve --show-token`) into the Shotfield preferences.", 401)
        if exc.code == 429:
            return ServerError(f"The server is busy (429): {detail}", 429)
        if exc.code >= 500:
            return ServerError(f"The server failed ({exc.code}): {detail}. Its terminal or log says more.", exc.code)
        return ServerError(f"{detail} ({exc.code})", exc.code)

    def _connection_error(self, reason) -> ServerError:
        if isinstance(reason, ConnectionRefusedError):
            text = "connection refused: is `shotfield serve` running there, on that port?"
        elif isinstance(reason, (socket.timeout, TimeoutError)):
            text = f"no answer within {self.timeout:g} s: the server or the network is busy, or the URL is wrong"
        elif isinstance(reason, socket.gaierror):
            text = "the host name is unknown: check the server URL"
        elif isinstance(reason, ssl.SSLError):
            text = f"TLS failed ({reason}): check the https URL and the server's certificate"
        else:
            text = f"{reason}"
        return ServerError(f"Cannot talk to the Shotfield server at {self.url}: {text}")


class _Reader:
    """A file window of `count` bytes for an upload body, reporting how much was read."""

    def __init__(self, f, count: int, report):
        self._f, self._left, self._done, self._report = f, count, 0, report

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        if data:
            self._done += len(data)
            self._report(self._done)
        return data


def _safe_unzip(archive: str, dest: str) -> None:
    """Unpack a job zip, refusing members that are absolute, climb out with '..' or are links."""
    root = os.path.realpath(dest)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = info.filename
            target = os.path.realpath(os.path.join(root, name))
            if (name.startswith(("/", "\\")) or ".." in re.split(r"[\\/]", name)
                    or not target.startswith(root + os.sep) or (info.external_attr >> 16) & 0o170000 == 0o120000):
                raise ServerError(f"the downloaded job holds an unsafe path {name!r}; not unpacked")
        zf.extractall(root)


def _pattern_regex(name: str) -> re.Pattern:
    """shot.%04d.png / shot.####.png -> a regex matching the numbered files."""
    regex, pos = "", 0
    for m in _PATTERN.finditer(name):
        regex += re.escape(name[pos:m.start()]) + r"\d+"
        pos = m.end()
    return re.compile(regex + re.escape(name[pos:]) + "$")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _q(segment: str) -> str:
    return urllib.parse.quote(str(segment), safe="")


def _plain(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "frames"
