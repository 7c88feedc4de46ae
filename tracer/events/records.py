"""Events as JSON-ready dicts with the fixed field names of docs/events.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tracer.events.finding import Finding, finding_record
from tracer.events.model import (
    DropEvent,
    Endpoint,
    Event,
    FlowEvent,
    Forwarding,
    IcmpEvent,
    LostEvent,
    NatEvent,
    NeighEvent,
    PodRef,
    Process,
    RouteEvent,
    SockEvent,
    TcpEvent,
    proto_name,
    tcp_flag_names,
)
from tracer.util.timefmt import rfc3339_ns


def endpoint(ep: Endpoint) -> dict[str, Any]:
    return {"ip": ep.ip, "port": ep.port}


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


# --- failures that are not drops: route, neigh, icmp, tcp, sock ---------------------

def _family(family: int) -> str | None:
    return f"ipv{family}" if family else None


def forwarding_record(f: Forwarding) -> dict[str, Any]:
    return {"ip_forward": f.ip_forward, "rp_filter": f.rp_filter, "iface": f.iface}


def process_record(p: Process | None) -> dict[str, Any] | None:
    return None if p is None else {"pid": p.pid, "comm": p.comm, "cgroup_id": p.cgroup_id}


def pod_record(pod: PodRef | None) -> dict[str, Any] | None:
    if pod is None:
        return None
    return {"uid": pod.uid, "container_id": pod.container_id, "runtime": pod.runtime,
            "qos": pod.qos, "cgroup": pod.cgroup}


def route_record(ev: RouteEvent) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "kind": "route", "time": rfc3339_ns(ev.wall_ns), "netns": ev.netns,
        "family": _family(ev.family), "proto": proto_name(ev.proto) if ev.proto else None,
        "src": endpoint(ev.src), "dst": endpoint(ev.dst), "error": ev.error,
        "error_raw": ev.error_raw, "table": ev.table, "oif": ev.oif, "iif": ev.iif,
        "gateway": ev.gateway, "count": ev.count,
    }
    if ev.forwarding is not None:
        rec["forwarding"] = forwarding_record(ev.forwarding)
    return rec


def neigh_record(ev: NeighEvent) -> dict[str, Any]:
    return {"kind": "neigh", "time": rfc3339_ns(ev.wall_ns), "netns": ev.netns,
            "family": _family(ev.family), "addr": ev.addr, "ifname": ev.ifname or None,
            "ifindex": ev.ifindex, "event": ev.event, "state": ev.state,
            "old_state": ev.old_state, "probes": ev.probes}


def icmp_record(ev: IcmpEvent) -> dict[str, Any]:
    rec = {"kind": "icmp", "time": rfc3339_ns(ev.wall_ns), "netns": ev.netns,
           "icmp": {"type": ev.icmp_type, "code": ev.icmp_code}, "meaning": ev.meaning,
           "family": _family(ev.family), "proto": proto_name(ev.proto) if ev.family else None,
           "src": endpoint(ev.src), "dst": endpoint(ev.dst),
           "ifname": ev.ifname or None, "ifindex": ev.ifindex, "len": ev.length,
           "via": ev.via, "count": ev.count}
    if ev.direction is not None:
        rec["direction"] = ev.direction
    if ev.mtu is not None:
        rec["mtu"] = ev.mtu
    return rec


def tcp_record(ev: TcpEvent) -> dict[str, Any]:
    return {"kind": "tcp", "time": rfc3339_ns(ev.wall_ns), "netns": ev.netns,
            "event": ev.event, "family": _family(ev.family),
            "src": endpoint(ev.src), "dst": endpoint(ev.dst), "state": ev.state,
            "old_state": ev.old_state, "error": ev.error, "error_raw": ev.error_raw,
            "duration_ns": ev.duration_ns, "syn_retransmits": ev.syn_retransmits,
            "process": process_record(ev.process), "pod": pod_record(ev.pod)}


def sock_record(ev: SockEvent) -> dict[str, Any]:
    # bind/listen name the local end, connect the remote one: the fixed src/dst names
    where = "dst" if ev.op == "connect" else "src"
    rec: dict[str, Any] = {
        "kind": "sock", "time": rfc3339_ns(ev.wall_ns), "netns": ev.netns, "op": ev.op,
        "via": ev.via,
        "family": _family(ev.family), where: endpoint(ev.addr), "error": ev.error,
        "error_raw": ev.error_raw, "fd": ev.fd, "process": process_record(ev.process),
        "pod": pod_record(ev.pod),
    }
    if ev.holder is not None:
        h = ev.holder
        rec["holder"] = {"proto": h.proto, "addr": endpoint(h.addr), "state": h.state,
                         "pid": h.pid, "comm": h.comm, "pod": pod_record(h.pod)}
    return rec
# --- end of the failures that are not drops -------------------------------------------


# event type -> its record form; every model event type has one entry
RECORD_FNS: dict[type, Callable[[Any], dict[str, Any]]] = {
    DropEvent: drop_record,
    FlowEvent: flow_record,
    NatEvent: nat_record,
    LostEvent: lost_record,
    RouteEvent: route_record,
    NeighEvent: neigh_record,
    IcmpEvent: icmp_record,
    TcpEvent: tcp_record,
    SockEvent: sock_record,
    Finding: finding_record,
}

# what sinks write: events, and the findings diagnosis derives from them
Output = Event | Finding


def event_record(ev: Output) -> dict[str, Any]:
    fn = RECORD_FNS.get(type(ev))
    if fn is None:
        raise TypeError(f"no record form for {type(ev).__name__}")
    return fn(ev)
