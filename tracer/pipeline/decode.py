"""Raw ring-buffer records -> model events, using tracer/events/schema.py's tables.

One decode function per event kind, registered in DECODERS next to its wire struct;
a record whose length does not match its kind's struct is counted, never guessed at.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tracer.events import schema
from tracer.events.icmp_names import icmp_meaning
from tracer.events.model import (
    DropEvent,
    Endpoint,
    Event,
    FlowEvent,
    IcmpEvent,
    NatEvent,
    NeighEvent,
    Process,
    RouteEvent,
    SockEvent,
    TcpEvent,
    errno_name,
    nud_state_name,
    tcp_state_name,
)

_HDR = schema.HDR.struct


@dataclass
class DecodeContext:
    """Per-kernel facts the raw records need; recorded so replay needs no kernel."""

    drop_reasons: dict[int, str]
    resolve_location: Callable[[int], str]
    mono_to_wall_ns: int  # wall = mono + this
    # tc hooks report an ifindex of the node namespace; the attach layer knows names
    ifname_of: Callable[[int], str] = lambda _ifindex: ""
    role_of: Callable[[int], str] = lambda _ifindex: ""


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
        count=v["count"],
    )


def _endpoints(v: Fields, prefix: str) -> tuple[Endpoint, Endpoint, int | None, int | None]:
    """src, dst, icmp type, icmp code of the ev_tuple at `prefix`."""
    family, proto = v[prefix + "family"], v[prefix + "proto"]
    sport, dport = v[prefix + "sport"], v[prefix + "dport"]
    ports = proto in (6, 17)
    icmp = proto in (1, 58)
    return (Endpoint(addr(family, v[prefix + "saddr"]), sport if ports else None),
            Endpoint(addr(family, v[prefix + "daddr"]), dport if ports else None),
            sport if icmp else None, dport if icmp else None)


_DIRECTIONS = {int(d): d.name.lower() for d in schema.FlowDirection}
_REPORTS = {int(r): r.name.lower() for r in schema.FlowReport}


def decode_flow(v: Fields, ctx: DecodeContext) -> FlowEvent:
    src, dst, icmp_type, icmp_code = _endpoints(v, "tuple.")
    ts_ns = v["hdr.ts_ns"]
    ifindex = v["ifindex"]
    return FlowEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        ifindex=ifindex, ifname=ctx.ifname_of(ifindex), role=ctx.role_of(ifindex),
        direction=_DIRECTIONS.get(v["direction"], str(v["direction"])),
        report=_REPORTS.get(v["report"], str(v["report"])),
        family=v["tuple.family"], proto=v["tuple.proto"], src=src, dst=dst,
        tcp_flags=v["tuple.tcp_flags"], tcp_flags_seen=v["tcp_flags_seen"],
        icmp_type=icmp_type, icmp_code=icmp_code, packets=v["packets"], bytes=v["bytes"],
        first_wall_ns=v["first_ns"] + ctx.mono_to_wall_ns,
        last_wall_ns=v["last_ns"] + ctx.mono_to_wall_ns)


def decode_nat(v: Fields, ctx: DecodeContext) -> NatEvent:
    osrc, odst, _, _ = _endpoints(v, "orig.")
    rsrc, rdst, _, _ = _endpoints(v, "reply.")
    ts_ns = v["hdr.ts_ns"]
    return NatEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        family=v["orig.family"], proto=v["orig.proto"], orig_src=osrc, orig_dst=odst,
        reply_src=rsrc, reply_dst=rdst, status=v["status"], origin="kprobe",
        manip="dst" if v["manip"] else "src", ct_event=None)


_FLOW_KEY, _FLOW_VAL = schema.FLOW_KEY.struct, schema.FLOW_VAL.struct
_FLOW_KEY_IDX = {n: i for i, n in enumerate(schema.FLOW_KEY.names)}
_FLOW_VAL_IDX = {n: i for i, n in enumerate(schema.FLOW_VAL.names)}


def decode_final_flow(raw_key: bytes, raw_val: bytes, netns: int,
                      ctx: DecodeContext) -> FlowEvent:
    """A flow's ending update, read from the kernel's flow table at exit: the packets
    since its last report would otherwise never be told (tc sees only the node)."""
    k = Fields(_FLOW_KEY_IDX, _FLOW_KEY.unpack_from(raw_key))
    v = Fields(_FLOW_VAL_IDX, _FLOW_VAL.unpack_from(raw_val))
    src, dst, icmp_type, icmp_code = _endpoints(k, "")
    ifindex = k["ifindex"]
    return FlowEvent(
        ts_ns=v["last_ns"], wall_ns=v["last_ns"] + ctx.mono_to_wall_ns, netns=netns,
        ifindex=ifindex, ifname=ctx.ifname_of(ifindex), role=ctx.role_of(ifindex),
        direction=_DIRECTIONS.get(k["direction"], str(k["direction"])),
        report=_REPORTS[int(schema.FlowReport.FINAL)],
        family=k["family"], proto=k["proto"], src=src, dst=dst, tcp_flags=0,
        tcp_flags_seen=v["tcp_flags_seen"], icmp_type=icmp_type, icmp_code=icmp_code,
        packets=v["packets"], bytes=v["bytes"],
        first_wall_ns=v["first_ns"] + ctx.mono_to_wall_ns,
        last_wall_ns=v["last_ns"] + ctx.mono_to_wall_ns)


_DROP_KEY = schema.DROP_KEY.struct
_DROP_KEY_IDX = {n: i for i, n in enumerate(schema.DROP_KEY.names)}


def decode_unreported_drop(raw_key: bytes, count: int, ts_ns: int,
                           ctx: DecodeContext) -> DropEvent:
    """The remainder of an aggregated drop storm, read from the kernel's drop table at
    exit: same tuple and reason, no location (many packets, maybe many places)."""
    v = Fields(_DROP_KEY_IDX, _DROP_KEY.unpack_from(raw_key))
    src, dst, icmp_type, icmp_code = _endpoints(v, "tuple.")
    reason_raw = v["reason"]
    return DropEvent(ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["netns_ino"],
                     ifindex=v["ifindex"], ifname=ctx.ifname_of(v["ifindex"]),
                     reason=ctx.drop_reasons.get(reason_raw, f"reason_{reason_raw}"),
                     reason_raw=reason_raw, location="", location_raw=0,
                     family=v["tuple.family"], proto=v["tuple.proto"], src=src, dst=dst,
                     tcp_flags=v["tuple.tcp_flags"], icmp_type=icmp_type, icmp_code=icmp_code,
                     length=0, l3_proto=0, count=count)


# --- failures that are not drops: route, neigh, icmp, tcp, sock ---------------------

def route_error(err: int, table: int) -> str:
    """What the lookup's caller is told.  A miss (-EAGAIN) is only reported from the
    main table, where fib_lookup turns it into -ENETUNREACH."""
    if err == -errno.EAGAIN and table == 254:
        return "ENETUNREACH"
    return errno_name(-err) if err < 0 else errno_name(err)


def decode_route(v: Fields, ctx: DecodeContext) -> RouteEvent:
    src, dst, _, _ = _endpoints(v, "tuple.")
    family = v["tuple.family"]
    gw = addr(family, v["gateway"])
    ts_ns = v["hdr.ts_ns"]
    return RouteEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        family=family, proto=v["tuple.proto"],
        src=src, dst=dst,
        gateway=None if gw in (None, "0.0.0.0", "::") else gw,
        table=v["tb_id"], error=route_error(v["err"], v["tb_id"]), error_raw=v["err"],
        oif=v["oif"], iif=v["iif"], count=v["count"])


_NEIGH_EVENTS = {int(e): e.name.lower() for e in schema.NeighEv}


def decode_neigh(v: Fields, ctx: DecodeContext) -> NeighEvent:
    ts_ns = v["hdr.ts_ns"]
    old = v["old_state"]
    return NeighEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        family=v["family"], addr=addr(v["family"], v["addr"]), ifindex=v["ifindex"],
        ifname=cstr(v["ifname"]), event=_NEIGH_EVENTS.get(v["event"], str(v["event"])),
        state=nud_state_name(v["nud_state"]),
        old_state=nud_state_name(old) if v["event"] == schema.NeighEv.UPDATE_FAILED else None,
        probes=v["probes"])


def decode_icmp(v: Fields, ctx: DecodeContext) -> IcmpEvent:
    src, dst, _, _ = _endpoints(v, "inner.")
    ts_ns = v["hdr.ts_ns"]
    # icmp_send reports IPv4 errors, tc ICMPv6 ones: the error's own family, which
    # an unparsed offending packet (inner.family 0) would not tell
    tc = v["via"] == schema.IcmpVia.TC
    icmp_type, code = v["type"], v["code"]
    ifindex = v["ifindex"]
    return IcmpEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        icmp_type=icmp_type, icmp_code=code,
        meaning=icmp_meaning(icmp_type, code, 6 if tc else 4),
        family=v["inner.family"], proto=v["inner.proto"], src=src, dst=dst,
        ifindex=ifindex, ifname=ctx.ifname_of(ifindex) if tc else cstr(v["ifname"]),
        length=v["skb_len"], via="tc" if tc else "icmp_send",
        direction=_DIRECTIONS.get(v["direction"], str(v["direction"])) if tc else None,
        mtu=v["mtu"] if tc and icmp_type == 2 else None, count=v["count"] or 1)


_ICMP6_KEY = schema.ICMP6_KEY.struct
_ICMP6_KEY_IDX = {n: i for i, n in enumerate(schema.ICMP6_KEY.names)}


def decode_unreported_icmp6(raw_key: bytes, count: int, ts_ns: int, netns: int,
                            ctx: DecodeContext) -> IcmpEvent:
    """The remainder of aggregated ICMPv6 errors, read from the tc programs' table at
    exit: the errors of this key counted since its last record."""
    v = Fields(_ICMP6_KEY_IDX, _ICMP6_KEY.unpack_from(raw_key))
    src, dst, _, _ = _endpoints(v, "inner.")
    icmp_type, code = v["type"], v["code"]
    return IcmpEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=netns,
        icmp_type=icmp_type, icmp_code=code, meaning=icmp_meaning(icmp_type, code, 6),
        family=v["inner.family"], proto=v["inner.proto"], src=src, dst=dst,
        ifindex=v["ifindex"], ifname=ctx.ifname_of(v["ifindex"]), length=0, via="tc",
        direction=_DIRECTIONS.get(v["direction"], str(v["direction"])), count=count)


_TCP_EVENTS = {int(e): e.name.lower() for e in schema.TcpEv}
_HANDSHAKE_END = (schema.TcpEv.ESTABLISHED, schema.TcpEv.FAILED)


def decode_tcp(v: Fields, ctx: DecodeContext) -> TcpEvent:
    src, dst, _, _ = _endpoints(v, "tuple.")
    ts_ns = v["hdr.ts_ns"]
    event = v["event"]
    err = v["err"]
    pid = v["pid"]
    old = v["old_state"]
    return TcpEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        event=_TCP_EVENTS.get(event, str(event)), family=v["tuple.family"], src=src, dst=dst,
        state=tcp_state_name(v["state"]), old_state=tcp_state_name(old) if old else None,
        error=errno_name(err) if err else None, error_raw=err,
        duration_ns=v["duration_ns"] if event in _HANDSHAKE_END else None,
        syn_retransmits=v["syn_retransmits"],
        process=Process(pid, cstr(v["comm"]), v["cgroup_id"]) if pid else None)


_SOCK_OPS = {int(o): o.name.lower() for o in schema.SockOp}


def decode_sock(v: Fields, ctx: DecodeContext) -> SockEvent:
    ts_ns = v["hdr.ts_ns"]
    family = v["family"]
    is_async = v["op"] == schema.SockOp.CONNECT_ASYNC
    return SockEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        op="connect" if is_async else _SOCK_OPS.get(v["op"], str(v["op"])),
        via="so_error" if is_async else "return", family=family,
        addr=Endpoint(addr(family, v["addr"]), v["port"] if family else None),
        error=errno_name(v["err"]), error_raw=v["err"], fd=v["fd"],
        process=Process(v["pid"], cstr(v["comm"]), v["cgroup_id"]))
# --- end of the failures that are not drops -------------------------------------------


# kind -> (wire struct, decode function).  Add a kind here and in schema.RECORDS.
DECODERS: dict[schema.EvKind, tuple[schema.WireStruct, DecodeFn]] = {
    schema.EvKind.DROP: (schema.DROP, decode_drop),
    schema.EvKind.FLOW: (schema.FLOW, decode_flow),
    schema.EvKind.NAT: (schema.NAT, decode_nat),
    schema.EvKind.ROUTE: (schema.ROUTE, decode_route),
    schema.EvKind.NEIGH: (schema.NEIGH, decode_neigh),
    schema.EvKind.ICMP: (schema.ICMP, decode_icmp),
    schema.EvKind.TCP: (schema.TCP, decode_tcp),
    schema.EvKind.SOCK: (schema.SOCK, decode_sock),
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
