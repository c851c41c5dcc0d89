"""`python -m backend.server.child run ...`: `shotfield run` as a child of the server (or of a Ray worker).

The same command line and exit codes as `python -m backend run`, plus one thing a child needs: when the
process that started it dies (the server is killed, a Ray worker is lost), the run gets SIGTERM, so the
running stage is marked cancelled and the job resumes cleanly when the server comes back. Linux only
(prctl PR_SET_PDEATHSIG); elsewhere the run goes on alone, and a restarted server waits for its lock.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

PARENT_ENV = "SHOTFIELD_PARENT_PID"
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        except (OSError, AttributeError):
            return
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):  # it died before the prctl took hold
        sys.exit(143)


if __name__ == "__main__":
    die_with_parent()
    from backend.cli import main

    sys.exit(main(sys.argv[1:]))
