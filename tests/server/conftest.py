"""A real `shotfield serve` process on 127.0.0.1 (any free port) for the server tests, and small footage.

`ServerProcess(root, *options).start()` runs `python -m backend serve --root ROOT --port 0 ...` and reads
the address the server bound from ROOT/address. `.client()` is the add-on's own client
(blender_addon/remote.py); `.http(...)` sends a raw request and never raises, for checking status codes.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from ..backend.conftest import textured_frames, write_sequence, write_video  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[2]


def _load_remote():
    """blender_addon/remote.py on its own: importing it through its package would start the add-on (bpy)."""
    spec = importlib.util.spec_from_file_location("shotfield_remote", REPO / "blender_addon" / "remote.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


remote = _load_remote()
ShotfieldServer, ServerError = remote.ShotfieldServer, remote.ServerError
FINISHED = ("done", "failed", "cancelled")


class ServerProcess:
    def __init__(self, root: Path, *options: str):
        self.root, self.options = Path(root), [str(o) for o in options]
        self.proc: subprocess.Popen | None = None
        self.url = self.token = None
        self.log = self.root.parent / f"{self.root.name}-server.log"

    def start(self, timeout: float = 60.0) -> "ServerProcess":
        (self.root / "address").unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "backend", "serve", "--root", str(self.root),
                                          "--port", "0", *self.options], cwd=REPO, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.output()}")
            if (self.root / "address").is_file() and self.url is None:
                self.url = (self.root / "address").read_text().strip()
                self.token = (self.root / "token").read_text().strip()
            if self.url and self.http("GET", "/openapi.json")[0] == 200:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"the server did not start in {timeout} s:\n{self.output()}")

    def restart(self) -> "ServerProcess":
        self.url = None
        return self.start()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, token: str | None = None, timeout: float = 30.0) -> ShotfieldServer:
        return ShotfieldServer(self.url, self.token if token is None else token, timeout=timeout)

    def http(self, method: str, path: str, body=None, token: str | None = "", headers: dict | None = None):
        """(status, parsed JSON or raw bytes, headers). token "": the server's; None: no Authorization header."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=60) as r:
                status, data, head = r.status, r.read(), r.headers
        except urllib.error.HTTPError as exc:
            status, data, head = exc.code, exc.read(), exc.headers
        except (urllib.error.URLError, ConnectionError):
            return 0, None, {}
        try:
            return status, json.loads(data), head
        except ValueError:
            return status, data, head

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def wait_for_state(client: ShotfieldServer, job_id: str, states=FINISHED, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.status(job_id)
        if status["state"] in states:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {states}: {status}")


def wait_until(predicate, timeout: float = 60.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for a test module, default limits; stopped with SIGTERM afterwards."""
    srv = ServerProcess(tmp_path_factory.mktemp("server") / "root").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def small_video(tmp_path_factory) -> Path:
    """10 frames, 96x64, mp4: ingest + flow take about a second."""
    return write_video(tmp_path_factory.mktemp("footage") / "clip.mp4", textured_frames(n=10))


@pytest.fixture(scope="session")
def long_video(tmp_path_factory) -> Path:
    """12 frames, 320x240: the flow stage runs for a few seconds on 2 cores, long enough to catch it running."""
    return write_video(tmp_path_factory.mktemp("footage") / "long.mp4",
                       textured_frames(n=12, width=320, height=240, shift=(2.0, 1.0)))


LONG_FLOW = {"stages": ["ingest", "flow"], "flow_gaps": [1, 2, 4]}
