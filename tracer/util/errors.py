"""One exception hierarchy.  Library code raises; only the CLI turns these into a
message and an exit code (1 runtime, 2 usage, 3 missing prerequisite)."""

from __future__ import annotations


class TracerError(Exception):
    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix          # the command or change that resolves it
        self.detail = detail    # e.g. a compiler or verifier log


class UsageError(TracerError):
    exit_code = 2


class PrerequisiteError(TracerError):
    exit_code = 3


class BpfLoadError(TracerError):
    """Compilation or verification failed; `detail` carries the log."""


class AttachError(TracerError):
    pass


class RecordingFormatError(TracerError):
    pass


class MetadataError(TracerError):
    pass
