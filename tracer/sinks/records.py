"""Events as JSON-ready dicts with the fixed field names of docs/events.md."""

from __future__ import annotations

from typing import Any

from tracer.model import DropEvent, Endpoint, Event, LostEvent, proto_name, tcp_flag_names
from tracer.timefmt import rfc3339_ns


def endpoint(ep: Endpoint) -> dict[str, Any]:
    return {"ip": ep.ip, "port": ep.port}


def event_record(ev: Event) -> dict[str, Any]:
    if isinstance(ev, DropEvent):
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
        }
        if ev.proto == 6:
            rec["tcp_flags"] = tcp_flag_names(ev.tcp_flags)
        if ev.icmp_type is not None:
            rec["icmp"] = {"type": ev.icmp_type, "code": ev.icmp_code}
        return rec
    if isinstance(ev, LostEvent):
        return {"kind": "lost", "time": rfc3339_ns(ev.wall_ns), "layer": ev.layer,
                "count": ev.count, "total": ev.total}
    raise TypeError(f"no record form for {type(ev).__name__}")
