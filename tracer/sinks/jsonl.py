"""-o jsonl: one JSON object per line on stdout, nothing else on stdout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from tracer.diagnosis.finding import Finding
from tracer.pipeline.enrich import names_of
from tracer.sinks.jsonline import float_free_line, json_line
from tracer.sinks.names import add_names
from tracer.sinks.output import OutputStream
from tracer.sinks.records import Output, event_record


class JsonlSink:
    def __init__(self, out: TextIO) -> None:
        self.out = OutputStream(out)

    def write(self, batch: Sequence[Output]) -> None:
        if not batch:
            return
        lines = [(json_line if isinstance(ev, Finding) else float_free_line)(
                    add_names(event_record(ev), ev, names))
                 for ev, names in zip(batch, names_of(batch), strict=True)]
        lines.append(b"")
        self.out.write_bytes(b"\n".join(lines))
        self.out.flush()

    def close(self) -> None:
        self.out.flush()
