"""Raw ring-buffer records -> model events, using tracer/schema.py's tables.

One decode function per event kind, registered in DECODERS next to its wire struct;
a record whose length does not match its kind's struct is counted, never guessed at.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tracer import schema
from tracer.model import DropEvent, Endpoint, Event

_HDR = schema.HDR.struct


@dataclass
class DecodeContext:
    """Per-kernel facts the raw records need; recorded so replay needs no kernel."""

    drop_reasons: dict[int, str]
    resolve_location: Callable[[int], str]
    mono_to_wall_ns: int  # wall = mono + this


def addr(family: int, raw: bytes) -> str | None:
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if family == 6:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return None


def cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


class Fields:
    """Named access to one unpacked record (index lookups resolved once per struct)."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: tuple[Any, ...]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, name: str) -> Any:
        return self._values[self._index[name]]


DecodeFn = Callable[[Fields, DecodeContext], Event]


def decode_drop(v: Fields, ctx: DecodeContext) -> DropEvent:
    family = v["tuple.family"]
    proto = v["tuple.proto"]
    sport, dport = v["tuple.sport"], v["tuple.dport"]
    is_icmp = proto in (1, 58)
    has_ports = proto in (6, 17)
    reason_raw = v["reason_raw"]
    location_raw = v["location"]
    ts_ns = v["hdr.ts_ns"]
    return DropEvent(
        ts_ns=ts_ns,
        wall_ns=ts_ns + ctx.mono_to_wall_ns,
        netns=v["hdr.netns_ino"],
        ifindex=v["ifindex"],
        ifname=cstr(v["ifname"]),
        reason=ctx.drop_reasons.get(reason_raw, f"reason_{reason_raw}"),
        reason_raw=reason_raw,
        location=ctx.resolve_location(location_raw),
        location_raw=location_raw,
        family=family,
        proto=proto,
        src=Endpoint(addr(family, v["tuple.saddr"]), sport if has_ports else None),
        dst=Endpoint(addr(family, v["tuple.daddr"]), dport if has_ports else None),
        tcp_flags=v["tuple.tcp_flags"],
        icmp_type=sport if is_icmp else None,
        icmp_code=dport if is_icmp else None,
        length=v["skb_len"],
        l3_proto=v["l3_proto"],
    )


# kind -> (wire struct, decode function).  Add a kind here and in schema.RECORDS.
DECODERS: dict[schema.EvKind, tuple[schema.WireStruct, DecodeFn]] = {
    schema.EvKind.DROP: (schema.DROP, decode_drop),
}


class Decoder:
    def __init__(self, ctx: DecodeContext) -> None:
        self.ctx = ctx
        self.errors = 0
        self.unknown_kinds = 0
        self._table = {int(kind): (ws.struct, {n: i for i, n in enumerate(ws.names)}, fn)
                       for kind, (ws, fn) in DECODERS.items()}

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
