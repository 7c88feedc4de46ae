"""Events (and findings) as JSON-ready dicts with the fixed field names of
docs/events.md.  Each family's record is defined in its module
(tracer/events/drop.py: drop_record, ...); this is the dispatch over them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tracer.events.finding import Finding, FindingUpdate, finding_record, finding_update_record
from tracer.events.registry import FAMILIES, Event

# what sinks write: events, and the findings diagnosis derives from them
Output = Event | Finding | FindingUpdate

# event type -> its record form; every model event type has one entry
RECORD_FNS: dict[type, Callable[[Any], dict[str, Any]]] = {
    **{f.model: f.record for f in FAMILIES},
    Finding: finding_record,
    FindingUpdate: finding_update_record,
}


def event_record(ev: Output) -> dict[str, Any]:
    fn = RECORD_FNS.get(type(ev))
    if fn is None:
        raise TypeError(f"no record form for {type(ev).__name__}")
    return fn(ev)
