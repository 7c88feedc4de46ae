"""Event records are packed by ormsgpack (speed, tracer/recording/writer.py); the file
format is msgpack's.  For any event, the bytes must be those msgpack-python writes
for the same record, so no reader can tell which library wrote a recording."""

from __future__ import annotations

import operator
from typing import Any

import msgpack
from hypothesis import given, settings

from tests.unit.recording_support import ANY_EVENT
from tracer.model import Endpoint, Event, FlowEvent
from tracer.recording.format import EVENT_TYPES, Rec, columns
from tracer.recording.writer import EventEncoder

KIND = {cls: i for i, cls in enumerate(EVENT_TYPES.values())}


def _columns(obj: Any) -> tuple[Any, ...]:
    """Independently of the writer's compiled getters: the documented column order."""
    return tuple(operator.attrgetter(c.name)(obj) for c in columns(type(obj)))


def reference(ev: Event) -> bytes:
    """The record as docs/recording-format.md defines it, packed by msgpack-python."""
    data: bytes = msgpack.packb((int(Rec.EVENT), KIND[type(ev)], *_columns(ev)),
                                default=_columns)
    return data


@settings(max_examples=2000, deadline=None)
@given(ANY_EVENT)
def test_any_event_record_is_what_msgpack_writes(ev: Event) -> None:
    enc = EventEncoder()
    enc.events([ev, ev])
    assert enc.take() == reference(ev) * 2


def test_records_keep_their_order_around_events() -> None:
    ev = FlowEvent(1, 2, 3, 4, "eth0", "egress", "new", 4, 6, Endpoint("10.42.0.5", 80),
                   Endpoint("10.43.0.1", 443), 2, 2, None, None, 1, 60, 2, 2, "uplink")
    sync, end = [int(Rec.SYNC), 1, 2, 3], [int(Rec.END), 4, {"reason": "stopped"}]
    enc = EventEncoder()
    enc.record(sync)
    enc.events([ev])
    enc.record(end)
    assert enc.take() == msgpack.packb(sync) + reference(ev) + msgpack.packb(end)
    assert enc.take() == b""
