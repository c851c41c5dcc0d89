"""Access control: the token (made on first start, user-only file, constant-time check) and two ASGI
guards that run before any route: a per-client rate limit and a size limit on request bodies."""
from __future__ import annotations

import hmac
import json
import os
import secrets
import stat
import time
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

#: Routes that answer without a token: the API's own description (it holds no data).
PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
#: Routes whose body is footage (streamed to disk, limited by the upload's declared size instead).
UPLOAD_BODY_PREFIX = "/v1/uploads/"
MAX_JSON_BODY = 256 * 1024


class TokenFileError(RuntimeError):
    pass


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """(token, created). A new token is 32 random bytes (URL-safe text) in a file only its owner can read.
    An existing token file that others can read is refused: the token would no longer be a secret."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenFileError(f"{path}: readable by other users (mode {stat.filemode(mode)}); "
                                 f"run `chmod 600 {path}` or delete it to make a new token") from None
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < 16:
            raise TokenFileError(f"{path}: holds no usable token; delete it to make a new one")
        return token, False
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token, True


class TokenCheck:
    """FastAPI dependency: `Authorization: Bearer <token>`, compared in constant time. 401 otherwise."""

    def __init__(self, token: str):
        self._token = token.encode()
        self._bearer = HTTPBearer(auto_error=False, description="the token from the server's ROOT/token file")

    async def __call__(self, request: Request) -> None:
        credentials: HTTPAuthorizationCredentials | None = await self._bearer(request)
        given = credentials.credentials.encode() if credentials else b""
        if not hmac.compare_digest(given, self._token):
            why = "no token sent" if credentials is None else "wrong token"
            raise HTTPException(401, f"{why}: send 'Authorization: Bearer <token>' with the token from the "
                                     "server's token file", headers={"WWW-Authenticate": "Bearer"})


class RequestGuard:
    """ASGI middleware: a token bucket per client address (429 with Retry-After), and JSON bodies limited
    to MAX_JSON_BODY (413; 411 when a body comes without a Content-Length). Cheap on purpose: it runs on
    every request, before routing."""

    def __init__(self, app, rate: float, burst: int):
        self.app, self.rate, self.burst = app, rate, max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.rate > 0 and not self._take(scope):
            return await _reply(send, 429, "too many requests from this address; slow down",
                                [(b"retry-after", b"1")])
        if scope["method"] in ("POST", "PUT", "PATCH") and not scope["path"].startswith(UPLOAD_BODY_PREFIX):
            length = dict(scope["headers"]).get(b"content-length")
            if length is None and dict(scope["headers"]).get(b"transfer-encoding"):
                return await _reply(send, 411, "send a Content-Length with the request body")
            if length is not None and (not length.isdigit() or int(length) > MAX_JSON_BODY):
                return await _reply(send, 413, f"request body over {MAX_JSON_BODY // 1024} KiB")
        return await self.app(scope, receive, send)

    def _take(self, scope) -> bool:
        client = (scope.get("client") or ("?", 0))[0]
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return False
        self._buckets[client] = (tokens - 1.0, now)
        if len(self._buckets) > 10000:  # forget idle clients (full buckets) so the table stays small
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.burst - 1}
        return True


async def _reply(send, status: int, detail: str, headers: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
