"""Writing the output stream so that no signal loses part of it.

CPython's buffered stdout can drop the rest of a write when a signal handler runs while
the write is blocked on a full pipe (`trace -o jsonl | slow-reader`, then Ctrl-C): the
kernel returns a partial count and the remainder is lost, leaving half a JSON line.
os.write() returns the partial count to us instead, and we write the rest.
"""

from __future__ import annotations

import io
import os
from typing import TextIO


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to `fd`, however many writes a full pipe or a signal takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class OutputStream:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        try:
            self.fd: int | None = out.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            self.fd = None     # an in-memory stream (tests): no descriptor, no signals
        else:
            out.flush()        # whatever was buffered goes first

    def write(self, text: str) -> None:
        if self.fd is None:
            self.out.write(text)
            return
        self.write_bytes(text.encode())

    def write_bytes(self, data: bytes) -> None:
        """UTF-8 text, already encoded."""
        if self.fd is None:
            self.out.write(data.decode())
            return
        write_all(self.fd, data)

    def flush(self) -> None:
        if self.fd is None:
            self.out.flush()
