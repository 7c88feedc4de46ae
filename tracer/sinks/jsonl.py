"""-o jsonl: one JSON object per line on stdout, nothing else on stdout."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from tracer.sinks.records import Output, event_record


class JsonlSink:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, batch: Sequence[Output]) -> None:
        if not batch:
            return
        self.out.write("".join(json.dumps(event_record(ev), separators=(",", ":")) + "\n"
                               for ev in batch))
        self.out.flush()

    def close(self) -> None:
        self.out.flush()
