"""Errors the user can act on. Their message is shown as is: one line naming the file or setting that is
wrong and what to do about it. Anything else that escapes a stage is a bug and is shown with its type."""

from exporters import job_manifest


class ShotfieldError(Exception):
    """A problem with the input, the settings or the environment, explained for the user."""


class FootageError(ShotfieldError):
    """The footage is missing, unreadable, too short or inconsistent."""


class JobFolderError(ShotfieldError, job_manifest.JobFolderError):
    """The job folder cannot be created, written, locked or read (also what exporters raise for it)."""


class Cancelled(BaseException):
    """Raised inside a stage when the run is asked to stop (SIGINT/SIGTERM).

    A BaseException, like KeyboardInterrupt, so that a stage's `except Exception` does not swallow it.
    """

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(f"cancelled by {signal_name}")
        self.signal_name = signal_name
