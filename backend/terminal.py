"""The progress bar on the terminal (tqdm, on stderr). progress.jsonl is the machine-readable twin."""
from __future__ import annotations

import sys

from tqdm import tqdm


class StageBar:
    """One bar per stage, 0..100 %, with the stage's last message. Plain lines when stderr is not a TTY
    (a farm log or the add-on's pipe), so logs are not flooded with carriage returns."""

    def __init__(self, stage: str, enabled: bool = True):
        self.stage = stage
        self.enabled = enabled
        self._tty = sys.stderr.isatty()
        self._bar = None

    def __enter__(self) -> "StageBar":
        if self.enabled and self._tty:
            self._bar = tqdm(total=100, desc=self.stage, unit="%", leave=True, file=sys.stderr,
                             bar_format="{desc:>8} {percentage:3.0f}%|{bar}| {elapsed} {postfix}")
        elif self.enabled:
            print(f"{self.stage}: started", file=sys.stderr, flush=True)
        return self

    def update(self, fraction: float, message: str = "") -> None:
        if self._bar is not None:
            self._bar.n = round(100 * fraction)
            self._bar.set_postfix_str(message, refresh=True)

    def __exit__(self, exc_type, *_) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and exc_type is None:
            print(f"{self.stage}: done", file=sys.stderr, flush=True)
