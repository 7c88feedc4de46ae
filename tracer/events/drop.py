"""drop: a packet the kernel dropped (bpf/drops.c, the kfree_skb raw tracepoint).

Identical drops are aggregated in the kernel (drop_key -> drop_val, LRU table
`drop_seen`): a record carries `count`, and the remainder is read from the table at
exit (decode_unreported_drop)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracer.events.common import (
    NO_LABELS,
    Endpoint,
    Forwarding,
    Labels,
    endpoint,
    ep,
    forwarding_record,
    forwarding_text,
    marks_text,
    parse_endpoint,
    parse_family,
    parse_flags,
    parse_forwarding,
    parse_proto,
    parse_type_code,
    proto_name,
    tcp_flag_names,
)
from tracer.events.decoding import DecodeContext, Fields, addr, cstr, tuple_endpoints
from tracer.events.family import Family
from tracer.events.wire import HDR, TUPLE, EvKind, Field, WireStruct
from tracer.util.timefmt import rfc3339_ns

# --- wire layout: struct ev_drop, drop_key, drop_val ---------------------------------

DROP = WireStruct("ev_drop", HDR.nested("hdr"), TUPLE.nested("tuple"),
                  Field("location", "Q"), Field("reason_raw", "I"), Field("ifindex", "I"),
                  Field("skb_len", "I"), Field("l3_proto", "H"), Field("_pad", "H"),
                  Field("ifname", "16s"), Field("count", "I"), Field("_pad2", "I"))
DROP_KEY = WireStruct("drop_key", Field("netns_ino", "I"), Field("ifindex", "I"),
                      Field("reason", "I"), TUPLE.nested("tuple"))
DROP_VAL = WireStruct("drop_val", Field("reported_ns", "Q"), Field("unreported", "Q"))


# --- model -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DropEvent:
    ts_ns: int            # CLOCK_MONOTONIC, as the kernel stamped it
    wall_ns: int          # the same instant on the wall clock
    netns: int
    ifindex: int
    ifname: str
    reason: str           # kernel name, e.g. "NETFILTER_DROP"
    reason_raw: int
    location: str         # symbol+offset
    location_raw: int
    family: int           # 4, 6, 0 when not parsed
    proto: int
    src: Endpoint
    dst: Endpoint
    tcp_flags: int
    icmp_type: int | None
    icmp_code: int | None
    length: int
    l3_proto: int
    count: int = 1                 # identical drops this record stands for (aggregated)
    marks: tuple[str, ...] = ()    # path findings added by tracer/pipeline/path.py
    forwarding: Forwarding | None = None  # forwarded traffic: the node's sysctls

    kind = "drop"


# --- decode --------------------------------------------------------------------------

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
        count=v["count"],
    )


_DROP_KEY = DROP_KEY.struct


def decode_unreported_drop(raw_key: bytes, count: int, ts_ns: int,
                           ctx: DecodeContext) -> DropEvent:
    """The remainder of an aggregated drop storm, read from the kernel's drop table at
    exit: same tuple and reason, no location (many packets, maybe many places)."""
    v = Fields(DROP_KEY.index, _DROP_KEY.unpack_from(raw_key))
    src, dst, icmp_type, icmp_code = tuple_endpoints(v, "tuple.")
    reason_raw = v["reason"]
    return DropEvent(ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["netns_ino"],
                     ifindex=v["ifindex"], ifname=ctx.ifname_of(v["ifindex"]),
                     reason=ctx.drop_reasons.get(reason_raw, f"reason_{reason_raw}"),
                     reason_raw=reason_raw, location="", location_raw=0,
                     family=v["tuple.family"], proto=v["tuple.proto"], src=src, dst=dst,
                     tcp_flags=v["tuple.tcp_flags"], icmp_type=icmp_type, icmp_code=icmp_code,
                     length=0, l3_proto=0, count=count)


# --- JSON record, table line, parse --------------------------------------------------

def drop_record(ev: DropEvent, src: Any = None, dst: Any = None,
                flags: Callable[[int], Any] = tcp_flag_names) -> dict[str, Any]:
    """`src`, `dst`: the endpoints already rendered (the jsonl sink passes cached JSON
    fragments with their names, tracer/sinks/fragments.py); `flags` renders TCP flags."""
    rec: dict[str, Any] = {
        "kind": "drop",
        "time": rfc3339_ns(ev.wall_ns),
        "netns": ev.netns,
        "ifname": ev.ifname or None,
        "ifindex": ev.ifindex,
        "proto": proto_name(ev.proto) if ev.family else None,
        "family": f"ipv{ev.family}" if ev.family else None,
        "src": endpoint(ev.src) if src is None else src,
        "dst": endpoint(ev.dst) if dst is None else dst,
        "reason": ev.reason,
        "reason_raw": ev.reason_raw,
        "location": ev.location,
        "len": ev.length,
        "count": ev.count,
    }
    if ev.proto == 6:
        rec["tcp_flags"] = flags(ev.tcp_flags)
    if ev.icmp_type is not None:
        rec["icmp"] = {"type": ev.icmp_type, "code": ev.icmp_code}
    if ev.marks:
        rec["marks"] = list(ev.marks)
    if ev.forwarding is not None:
        rec["forwarding"] = forwarding_record(ev.forwarding)
    return rec


def drop_line(ev: DropEvent, labels: Labels = NO_LABELS) -> tuple[str, str]:
    proto = proto_name(ev.proto) if ev.family else f"l3:{ev.l3_proto:#06x}"
    return (ev.ifname or "-",
            f"{proto} {ep(ev.src, labels.get('src', ''))} → {ep(ev.dst, labels.get('dst', ''))}"
            f"  {ev.reason} at {ev.location}"
            + (f"  ({ev.count} drops)" if ev.count > 1 else "") + marks_text(ev.marks)
            + forwarding_text(ev.forwarding))


def parse_drop(rec: dict[str, Any], t: int) -> DropEvent:
    it, ic = parse_type_code(rec.get("icmp"))
    return DropEvent(0, t, rec["netns"], rec.get("ifindex") or 0, rec.get("ifname") or "",
                     rec["reason"], rec.get("reason_raw", 0), rec.get("location", ""), 0,
                     parse_family(rec.get("family")), parse_proto(rec.get("proto")),
                     parse_endpoint(rec.get("src")), parse_endpoint(rec.get("dst")),
                     parse_flags(rec.get("tcp_flags")), it, ic, rec.get("len", 0), 0,
                     rec.get("count", 1), tuple(rec.get("marks") or ()),
                     parse_forwarding(rec.get("forwarding")))


FAMILY = Family(name="drop", model=DropEvent, record=drop_record, line=drop_line,
                parse=parse_drop, ev_kind=EvKind.DROP, wire=DROP, decode=decode_drop,
                map_structs=(DROP_KEY, DROP_VAL))
