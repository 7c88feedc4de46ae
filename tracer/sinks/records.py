"""Events as JSON-ready dicts with the fixed field names of docs/events.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tracer.model import (
    DropEvent,
    Endpoint,
    Event,
    FlowEvent,
    LostEvent,
    NatEvent,
    proto_name,
    tcp_flag_names,
)
from tracer.timefmt import rfc3339_ns


def endpoint(ep: Endpoint) -> dict[str, Any]:
    return {"ip": ep.ip, "port": ep.port}


def drop_record(ev: DropEvent) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "kind": "drop",
        "time": rfc3339_ns(ev.wall_ns),
        "netns": ev.netns,
        "ifname": ev.ifname or None,
        "ifindex": ev.ifindex,
        "proto": proto_name(ev.proto) if ev.family else None,
        "family": f"ipv{ev.family}" if ev.family else None,
        "src": endpoint(ev.src),
        "dst": endpoint(ev.dst),
        "reason": ev.reason,
        "reason_raw": ev.reason_raw,
        "location": ev.location,
        "len": ev.length,
        "count": ev.count,
    }
    if ev.proto == 6:
        rec["tcp_flags"] = tcp_flag_names(ev.tcp_flags)
    if ev.icmp_type is not None:
        rec["icmp"] = {"type": ev.icmp_type, "code": ev.icmp_code}
    if ev.marks:
        rec["marks"] = list(ev.marks)
    return rec


def flow_record(ev: FlowEvent) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "kind": "flow",
        "time": rfc3339_ns(ev.wall_ns),
        "netns": ev.netns,
        "ifname": ev.ifname or None,
        "ifindex": ev.ifindex,
        "role": ev.role or None,
        "direction": ev.direction,
        "report": ev.report,
        "proto": proto_name(ev.proto),
        "family": f"ipv{ev.family}",
        "src": endpoint(ev.src),
        "dst": endpoint(ev.dst),
        "packets": ev.packets,
        "bytes": ev.bytes,
        "first": rfc3339_ns(ev.first_wall_ns),
        "last": rfc3339_ns(ev.last_wall_ns),
    }
    if ev.proto == 6:
        rec["tcp_flags"] = tcp_flag_names(ev.tcp_flags_seen)
        rec["packet_tcp_flags"] = tcp_flag_names(ev.tcp_flags)
    if ev.marks:
        rec["marks"] = list(ev.marks)
    if ev.icmp_type is not None:
        rec["icmp"] = {"type": ev.icmp_type, "code": ev.icmp_code}
    return rec


def nat_record(ev: NatEvent) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "kind": "nat",
        "time": rfc3339_ns(ev.wall_ns),
        "netns": ev.netns,
        "proto": proto_name(ev.proto),
        "family": f"ipv{ev.family}",
        "orig": {"src": endpoint(ev.orig_src), "dst": endpoint(ev.orig_dst)},
        "reply": {"src": endpoint(ev.reply_src), "dst": endpoint(ev.reply_dst)},
        "translation": list(ev.translation),
        "replied": ev.replied,
        "origin": ev.origin,
    }
    if ev.manip is not None:
        rec["manip"] = ev.manip
    if ev.ct_event is not None:
        rec["ct_event"] = ev.ct_event
    return rec


def lost_record(ev: LostEvent) -> dict[str, Any]:
    return {"kind": "lost", "time": rfc3339_ns(ev.wall_ns), "layer": ev.layer,
            "count": ev.count, "total": ev.total}


# event type -> its record form; every model event type has one entry
RECORD_FNS: dict[type, Callable[[Any], dict[str, Any]]] = {
    DropEvent: drop_record,
    FlowEvent: flow_record,
    NatEvent: nat_record,
    LostEvent: lost_record,
}


def event_record(ev: Event) -> dict[str, Any]:
    fn = RECORD_FNS.get(type(ev))
    if fn is None:
        raise TypeError(f"no record form for {type(ev).__name__}")
    return fn(ev)
