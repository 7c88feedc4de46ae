"""The decode stage: raw ring-buffer records -> model events, a batch at a time.

Each family's wire struct and decoder live in its module (tracer/events/drop.py, ...);
this stage reads a record's header, finds the family by its kind
(tracer/events/registry.py) and calls its decoder.  A record whose length does not
match its kind's struct is counted, never guessed at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tracer.events.decoding import DecodeContext as DecodeContext  # re-exported: its users
from tracer.events.decoding import Fields
from tracer.events.registry import BY_EV_KIND, Event
from tracer.events.wire import HDR

_HDR = HDR.struct

DecodeFn = Callable[[Fields, DecodeContext], Event]


class Decoder:
    def __init__(self, ctx: DecodeContext) -> None:
        self.ctx = ctx
        self.errors = 0
        self.unknown_kinds = 0
        # kind number -> (struct, field positions, decoder): one dict look-up a record
        self._table: dict[int, tuple[Any, dict[str, int], DecodeFn]] = {
            int(kind): (f.wire.struct, f.wire.index, f.decode)
            for kind, f in BY_EV_KIND.items() if f.wire is not None and f.decode is not None}

    def decode(self, raw: bytes) -> Event | None:
        if len(raw) < _HDR.size:
            self.errors += 1
            return None
        _ts, _ino, kind, length = _HDR.unpack_from(raw)
        entry = self._table.get(kind)
        if entry is None:
            self.unknown_kinds += 1
            return None
        st, index, fn = entry
        if length != st.size or len(raw) < st.size:
            self.errors += 1
            return None
        return fn(Fields(index, st.unpack_from(raw)), self.ctx)

    def decode_all(self, raws: Iterable[bytes]) -> list[Event]:
        out: list[Event] = []
        for raw in raws:
            ev = self.decode(raw)
            if ev is not None:
                out.append(ev)
        return out
