"""Events from the JSON lines `nodetrace trace -o jsonl` printed (docs/events.md), back
into the decoded-event model, so diagnosis (and anything after the decoder) runs on
them as it runs live.  Fields the JSON form does not carry (the monotonic stamp, raw
kernel values that were not printed) are zero.  Each family's parse is in its module
(tracer/events/drop.py: parse_drop, ...); this is the reader and the dispatch.

Hostile input like a recording: a line that is not JSON, not an object, of an unknown
kind or with fields of the wrong type is skipped and counted, never raised.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tracer.events.common import wall_ns
from tracer.events.registry import BY_NAME, Event

__all__ = ["JsonlEvents", "event_of", "wall_ns"]


def event_of(rec: dict[str, Any]) -> Event | None:
    """One record as the model's event; None for kinds that are not events (findings)."""
    family = BY_NAME.get(rec["kind"])
    t = wall_ns(rec["time"])
    if family is None:
        return None
    ev: Event = family.parse(rec, t)
    return ev


class JsonlEvents:
    """Iterate the events of a JSON-lines file; `skipped` counts what was not usable."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines
        self.skipped = 0

    @classmethod
    def open(cls, path: Path) -> JsonlEvents:
        return cls(path.read_text(errors="replace").splitlines())

    def __iter__(self) -> Iterator[Event]:
        for line in self.lines:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                ev = event_of(rec) if isinstance(rec, dict) else None
            except (ValueError, KeyError, TypeError, AttributeError, IndexError):
                self.skipped += 1
                continue
            if ev is None:
                # findings are derived again; the summary ends every stream
                if not (isinstance(rec, dict) and rec.get("kind") in ("finding", "summary")):
                    self.skipped += 1
                continue
            yield ev
