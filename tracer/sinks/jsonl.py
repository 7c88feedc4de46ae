"""-o jsonl: one JSON object per line on stdout, nothing else on stdout."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from tracer.pipeline.enrich import names_of
from tracer.sinks.names import add_names
from tracer.sinks.output import OutputStream
from tracer.sinks.records import Output, event_record

# one encoder: json.dumps with separators builds a new JSONEncoder per call
_encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


class JsonlSink:
    def __init__(self, out: TextIO) -> None:
        self.out = OutputStream(out)

    def write(self, batch: Sequence[Output]) -> None:
        if not batch:
            return
        self.out.write("".join(
            _encode(add_names(event_record(ev), ev, names)) + "\n"
            for ev, names in zip(batch, names_of(batch), strict=True)))
        self.out.flush()

    def close(self) -> None:
        self.out.flush()
