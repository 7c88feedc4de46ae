"""Raw ring-buffer records -> model events, using tracer/schema.py's tables."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tracer import schema
from tracer.model import DropEvent, Endpoint, Event

_HDR = schema.HDR.struct
_DROP = schema.DROP.struct
_DROP_IDX = {name: i for i, name in enumerate(schema.DROP.names)}


@dataclass
class DecodeContext:
    """Per-kernel facts the raw records need; recorded so replay needs no kernel."""

    drop_reasons: dict[int, str]
    resolve_location: Callable[[int], str]
    mono_to_wall_ns: int  # wall = mono + this


def _addr(family: int, raw: bytes) -> str | None:
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if family == 6:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return None


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


class Decoder:
    def __init__(self, ctx: DecodeContext) -> None:
        self.ctx = ctx
        self.errors = 0
        self.unknown_kinds = 0

    def decode(self, raw: bytes) -> Event | None:
        if len(raw) < _HDR.size:
            self.errors += 1
            return None
        _ts, _ino, kind, length = _HDR.unpack_from(raw)
        if kind == schema.EvKind.DROP and length == _DROP.size and len(raw) >= _DROP.size:
            return self._drop(_DROP.unpack_from(raw))
        if kind not in schema.RECORDS:
            self.unknown_kinds += 1
        else:
            self.errors += 1
        return None

    def decode_all(self, raws: Iterable[bytes]) -> list[Event]:
        out: list[Event] = []
        for raw in raws:
            ev = self.decode(raw)
            if ev is not None:
                out.append(ev)
        return out

    def _drop(self, v: tuple[Any, ...]) -> DropEvent:
        i = _DROP_IDX
        family = int(v[i["tuple.family"]])
        proto = int(v[i["tuple.proto"]])
        sport = int(v[i["tuple.sport"]])
        dport = int(v[i["tuple.dport"]])
        is_icmp = proto in (1, 58)
        has_ports = proto in (6, 17)
        reason_raw = int(v[i["reason_raw"]])
        location_raw = int(v[i["location"]])
        ts_ns = int(v[i["hdr.ts_ns"]])
        return DropEvent(
            ts_ns=ts_ns,
            wall_ns=ts_ns + self.ctx.mono_to_wall_ns,
            netns=int(v[i["hdr.netns_ino"]]),
            ifindex=int(v[i["ifindex"]]),
            ifname=_cstr(v[i["ifname"]]),
            reason=self.ctx.drop_reasons.get(reason_raw, f"reason_{reason_raw}"),
            reason_raw=reason_raw,
            location=self.ctx.resolve_location(location_raw),
            location_raw=location_raw,
            family=family,
            proto=proto,
            src=Endpoint(_addr(family, v[i["tuple.saddr"]]),
                         sport if has_ports else None),
            dst=Endpoint(_addr(family, v[i["tuple.daddr"]]),
                         dport if has_ports else None),
            tcp_flags=int(v[i["tuple.tcp_flags"]]),
            icmp_type=sport if is_icmp else None,
            icmp_code=dport if is_icmp else None,
            length=int(v[i["skb_len"]]),
            l3_proto=int(v[i["l3_proto"]]),
        )
