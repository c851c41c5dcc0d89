"""The one error type the server's stores raise: an HTTP status and a sentence for the client."""
from __future__ import annotations


class ApiError(Exception):
    """A request the server refuses; `detail` says what to do (it becomes {"detail": ...} with `status`)."""

    def __init__(self, status: int, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers
