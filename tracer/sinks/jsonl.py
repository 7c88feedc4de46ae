"""-o jsonl: one JSON object per line on stdout, nothing else on stdout."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from tracer.model import Event
from tracer.sinks.records import event_record

# one encoder: json.dumps with separators builds a new JSONEncoder per call
_encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


class JsonlSink:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, batch: Sequence[Event]) -> None:
        if not batch:
            return
        self.out.write("".join([_encode(event_record(ev)) + "\n" for ev in batch]))
        self.out.flush()

    def close(self) -> None:
        self.out.flush()
