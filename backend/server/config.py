"""The server's settings (one dataclass; `shotfield serve` fills it from its options) and its folders."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = "~/.shotfield/server"
GiB = 1024 ** 3


@dataclass(frozen=True)
class ServerConfig:
    root: Path
    """The server's state folder: token, uploads/, jobs/ (DEFAULT_ROOT unless --root)."""
    host: str = "127.0.0.1"
    """Address to listen on. Loopback unless told otherwise: anything else exposes the server to the network."""
    port: int = 8000
    """TCP port; 0 picks a free one (written to ROOT/address)."""
    workers: int | None = None
    """Jobs that run at once: 1 on this machine (one GPU job at a time), 32 in flight on a Ray cluster."""
    max_upload_bytes: int = 20 * GiB
    """Largest footage upload (a video file, or a zip of an image sequence)."""
    max_jobs: int = 200
    """Jobs the server keeps (finished ones included); creating more is refused until some are deleted."""
    max_open_uploads: int = 32
    """Uploads begun but not yet turned into jobs."""
    rate_limit: float = 50.0
    """Requests per second per client address (a token bucket; 0 turns the limit off)."""
    rate_burst: int = 200
    """Requests a client may send at once before the rate limit applies."""
    upload_ttl_hours: float = 24.0
    """Unfinished or unused uploads older than this are removed."""
    ray_address: str | None = None
    """Run jobs on this Ray cluster (e.g. 'auto' or 'HOST:6379'); ROOT must be shared storage its workers see."""
    ray_gpus: float | None = None
    """GPUs per torch stage on Ray; None: 1 when the cluster has GPUs and the job's device is not cpu."""
    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "root", Path(os.path.expanduser(str(self.root))).absolute())

    @property
    def slots(self) -> int:
        if self.workers is not None:
            return max(1, self.workers)
        return 32 if self.ray_address else 1

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    @property
    def address_file(self) -> Path:
        return self.root / "address"

    def make_folders(self) -> None:
        """ROOT with user-only permissions (it holds the token and everyone's footage)."""
        for folder in (self.root, self.uploads, self.jobs):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
