"""Event blocks are built by compiled column getters (speed, tracer/recording/blocks.py
and writer.py); the format is docs/recording-format.md's.
For any batch of events, the bytes must be those of the block as that document
defines it, built here independently and packed by msgpack-python, so no reader can
tell which code or library wrote a recording."""

from __future__ import annotations

import dataclasses
import operator
import struct
from collections.abc import Sequence
from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.recording_support import ANY_EVENT, frame
from tracer.events.model import Endpoint, Event, FlowEvent
from tracer.recording.format import EVENT_TYPES, FieldType, Rec, column_types, columns
from tracer.recording.writer import EventEncoder

KIND = {cls: i for i, cls in enumerate(EVENT_TYPES.values())}


def _fields(obj: Any) -> tuple[Any, ...]:
    """An optional struct's array: its columns in the documented order."""
    return tuple(operator.attrgetter(c.name)(obj) for c in columns(type(obj)))


def _column(values: list[Any], ft: FieldType) -> Any:
    """One column as the document says: int64s when an int field's values all fit,
    else a dictionary in order of first appearance (optional structs by identity)."""
    if (ft.struct is None and int in ft.allowed and bool not in ft.allowed
            and all(type(v) is int and -(2**63) <= v < 2**63 for v in values)):
        return struct.pack(f"<{len(values)}q", *values)
    keys = [id(v) for v in values] if ft.struct is not None else values
    first: dict[Any, int] = {}
    distinct: list[Any] = []
    for key, v in zip(keys, values, strict=True):
        if key not in first:
            first[key] = len(distinct)
            distinct.append(v)
    if len(distinct) == 1:
        return [distinct, b""]
    width = "B" if len(distinct) <= 256 else "H"
    return [distinct, struct.pack(f"<{len(values)}{width}", *(first[k] for k in keys))]


def reference(batch: Sequence[Event]) -> bytes:
    """The block record of `batch`, packed by msgpack-python."""
    kinds = list(dict.fromkeys(type(ev) for ev in batch))
    entries = []
    for cls in kinds:
        evs = [ev for ev in batch if type(ev) is cls]
        cols = [[operator.attrgetter(c.name)(ev) for ev in evs] for c in columns(cls)]
        entries.append([KIND[cls], [_column(col, ft)
                                    for col, ft in zip(cols, column_types(cls), strict=True)]])
    order = bytes(KIND[type(ev)] for ev in batch)
    data: bytes = msgpack.packb([int(Rec.EVENTS), order, entries], default=_fields)
    return frame(data)


@settings(max_examples=1000, deadline=None)
@given(st.lists(ANY_EVENT, min_size=1, max_size=6), st.lists(st.integers(0, 5), max_size=6))
def test_any_block_is_what_the_format_says(events: list[Event], repeats: list[int]) -> None:
    # the same objects again: a dictionary with repeated values
    batch = events + [events[i % len(events)] for i in repeats]
    enc = EventEncoder()
    enc.events(batch)
    assert enc.take() == reference(batch)


def test_a_large_batch_is_split_into_blocks_of_1024() -> None:
    """... with two-byte indexes where a column has more than 256 values."""
    ev = FlowEvent(1, 2, 3, 4, "eth0", "egress", "new", 4, 6, Endpoint("10.42.0.5", 80),
                   Endpoint("10.43.0.1", 443), 2, 2, None, None, 1, 60, 2, 2, "uplink")
    batch = [dataclasses.replace(ev, ifname=f"veth{i % 300}") for i in range(2500)]
    enc = EventEncoder()
    enc.events(batch)
    assert enc.take() == reference(batch[:1024]) + reference(batch[1024:2048]) \
        + reference(batch[2048:])


def test_records_keep_their_order_around_events() -> None:
    ev = FlowEvent(1, 2, 3, 4, "eth0", "egress", "new", 4, 6, Endpoint("10.42.0.5", 80),
                   Endpoint("10.43.0.1", 443), 2, 2, None, None, 1, 60, 2, 2, "uplink")
    sync, end = [int(Rec.SYNC), 1, 2, 3], [int(Rec.END), 4, {"reason": "stopped"}]
    enc = EventEncoder()
    enc.record(sync)
    enc.events([ev])
    enc.record(end)
    assert enc.take() == frame(msgpack.packb(sync)) + reference([ev]) \
        + frame(msgpack.packb(end))
    assert enc.take() == b""
