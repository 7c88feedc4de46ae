"""-o jsonl: one JSON object per line on stdout, nothing else on stdout."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TextIO

from tracer.events.records import Output
from tracer.pipeline.enrich import names_of
from tracer.sinks.fragments import jsonl_line
from tracer.sinks.output import OutputStream

# Lines are encoded and written this many at a time: a whole batch of lines (1024 x
# ~700 bytes) and its join outgrow the CPU caches and the allocator's heap (freed, the
# heap is trimmed and its pages fault in again), which cost more than encoding them
# (0.5 us a line, measured).  64 lines are ~45 KB.
CHUNK = 64


def jsonl_chunks(batch: Sequence[Output]) -> Iterator[bytes]:
    """The batch's lines, CHUNK at a time, each ending in a newline."""
    names = names_of(batch)
    for i in range(0, len(batch), CHUNK):
        lines = list(map(jsonl_line, batch[i:i + CHUNK], names[i:i + CHUNK]))
        lines.append(b"")
        yield b"\n".join(lines)


class JsonlSink:
    def __init__(self, out: TextIO) -> None:
        self.out = OutputStream(out)

    def write(self, batch: Sequence[Output]) -> None:
        if not batch:
            return
        for chunk in jsonl_chunks(batch):
            self.out.write_bytes(chunk)
        self.out.flush()

    def close(self) -> None:
        self.out.flush()
