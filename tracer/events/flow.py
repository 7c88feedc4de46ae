"""flow: a connection as one tc hook saw it (bpf/tc.c, on pod veths and uplinks).

Packets are aggregated per (interface, direction, 5-tuple) in the kernel's `flows`
table (flow_key -> flow_val; a per-CPU flow_pending slot in front of it); a record
is a report on a flow (`report`), and at exit the table's remainders are read back
(decode_final_flow)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from tracer.events.common import (
    NO_LABELS,
    Endpoint,
    Labels,
    endpoint,
    ep,
    marks_text,
    parse_endpoint,
    parse_family,
    parse_flags,
    parse_proto,
    parse_type_code,
    proto_name,
    tcp_flag_names,
    wall_ns,
)
from tracer.events.decoding import DecodeContext, Fields, tuple_endpoints
from tracer.events.family import Family
from tracer.events.wire import DIRECTIONS, HDR, TUPLE, EvKind, Field, WireStruct
from tracer.util.timefmt import rfc3339_ns

# --- wire layout: struct ev_flow, flow_key, flow_val, flow_pending --------------------

class FlowReport(IntEnum):
    """enum flow_report: why a flow record was emitted."""

    NEW = 1
    TCP_CONTROL = 2
    UPDATE = 3
    FINAL = 4


FLOW_KEY = WireStruct("flow_key", Field("ifindex", "I"), Field("saddr", "16s"),
                      Field("daddr", "16s"), Field("sport", "H"), Field("dport", "H"),
                      Field("family", "B"), Field("proto", "B"), Field("direction", "B"),
                      Field("_pad", "B"))
FLOW_VAL = WireStruct("flow_val", Field("first_ns", "Q"), Field("last_ns", "Q"),
                      Field("reported_ns", "Q"), Field("packets", "Q"), Field("bytes", "Q"),
                      Field("tcp_flags_seen", "Q"), Field("reported_packets", "Q"))
FLOW_PENDING = WireStruct("flow_pending", FLOW_KEY.nested("key"), Field("_pad", "I"),
                          Field("packets", "Q"), Field("bytes", "Q"), Field("tcp_flags", "Q"),
                          Field("last_ns", "Q"))
FLOW = WireStruct("ev_flow", HDR.nested("hdr"), TUPLE.nested("tuple"),
                  Field("first_ns", "Q"), Field("last_ns", "Q"), Field("packets", "Q"),
                  Field("bytes", "Q"), Field("ifindex", "I"), Field("direction", "B"),
                  Field("report", "B"), Field("tcp_flags_seen", "B"), Field("_pad", "B"))


# --- model -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FlowEvent:
    """A report on one flow at one tc hook (aggregated in the kernel)."""

    ts_ns: int
    wall_ns: int
    netns: int
    ifindex: int
    ifname: str
    direction: str        # "ingress" | "egress"
    report: str           # "new" | "tcp_control" | "update" | "final"
    family: int
    proto: int
    src: Endpoint
    dst: Endpoint
    tcp_flags: int        # the reporting packet's flags
    tcp_flags_seen: int   # every packet's flags, OR-ed
    icmp_type: int | None
    icmp_code: int | None
    packets: int
    bytes: int
    first_wall_ns: int
    last_wall_ns: int
    role: str = ""                 # the hook's interface: "pod" veth or node "uplink"
    marks: tuple[str, ...] = ()    # path findings added by tracer/pipeline/path.py

    kind = "flow"


# --- decode --------------------------------------------------------------------------

_REPORTS = {int(r): r.name.lower() for r in FlowReport}


def decode_flow(v: Fields, ctx: DecodeContext) -> FlowEvent:
    src, dst, icmp_type, icmp_code = tuple_endpoints(v, "tuple.")
    ts_ns = v["hdr.ts_ns"]
    ifindex = v["ifindex"]
    return FlowEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        ifindex=ifindex, ifname=ctx.ifname_of(ifindex), role=ctx.role_of(ifindex),
        direction=DIRECTIONS.get(v["direction"], str(v["direction"])),
        report=_REPORTS.get(v["report"], str(v["report"])),
        family=v["tuple.family"], proto=v["tuple.proto"], src=src, dst=dst,
        tcp_flags=v["tuple.tcp_flags"], tcp_flags_seen=v["tcp_flags_seen"],
        icmp_type=icmp_type, icmp_code=icmp_code, packets=v["packets"], bytes=v["bytes"],
        first_wall_ns=v["first_ns"] + ctx.mono_to_wall_ns,
        last_wall_ns=v["last_ns"] + ctx.mono_to_wall_ns)


_FLOW_KEY, _FLOW_VAL = FLOW_KEY.struct, FLOW_VAL.struct


def decode_final_flow(raw_key: bytes, raw_val: bytes, netns: int,
                      ctx: DecodeContext) -> FlowEvent:
    """A flow's ending update, read from the kernel's flow table at exit: the packets
    since its last report would otherwise never be told (tc sees only the node)."""
    k = Fields(FLOW_KEY.index, _FLOW_KEY.unpack_from(raw_key))
    v = Fields(FLOW_VAL.index, _FLOW_VAL.unpack_from(raw_val))
    src, dst, icmp_type, icmp_code = tuple_endpoints(k, "")
    ifindex = k["ifindex"]
    return FlowEvent(
        ts_ns=v["last_ns"], wall_ns=v["last_ns"] + ctx.mono_to_wall_ns, netns=netns,
        ifindex=ifindex, ifname=ctx.ifname_of(ifindex), role=ctx.role_of(ifindex),
        direction=DIRECTIONS.get(k["direction"], str(k["direction"])),
        report=_REPORTS[int(FlowReport.FINAL)],
        family=k["family"], proto=k["proto"], src=src, dst=dst, tcp_flags=0,
        tcp_flags_seen=v["tcp_flags_seen"], icmp_type=icmp_type, icmp_code=icmp_code,
        packets=v["packets"], bytes=v["bytes"],
        first_wall_ns=v["first_ns"] + ctx.mono_to_wall_ns,
        last_wall_ns=v["last_ns"] + ctx.mono_to_wall_ns)


# --- JSON record, table line, parse --------------------------------------------------
# -o jsonl writes flow lines from cached parts (tracer/sinks/fragments.py), byte for
# byte this record: a change here shows in tests/unit/test_jsonl_fragments.py.

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


def flow_line(ev: FlowEvent, labels: Labels = NO_LABELS) -> tuple[str, str]:
    flags = "|".join(tcp_flag_names(ev.tcp_flags_seen)) if ev.proto == 6 else ""
    role = f" ({ev.role})" if ev.role else ""
    return (f"{ev.ifname or ev.ifindex} {ev.direction}{role}",
            f"{proto_name(ev.proto)} {ep(ev.src, labels.get('src', ''))} → "
            f"{ep(ev.dst, labels.get('dst', ''))}  {ev.packets} pkts "
            f"{ev.bytes} B {flags}".rstrip() + marks_text(ev.marks))


def parse_flow(rec: dict[str, Any], t: int) -> FlowEvent:
    it, ic = parse_type_code(rec.get("icmp"))
    return FlowEvent(0, t, rec["netns"], rec.get("ifindex") or 0, rec.get("ifname") or "",
                     rec["direction"], rec["report"], parse_family(rec.get("family")),
                     parse_proto(rec.get("proto")), parse_endpoint(rec.get("src")),
                     parse_endpoint(rec.get("dst")), parse_flags(rec.get("packet_tcp_flags")),
                     parse_flags(rec.get("tcp_flags")), it, ic, rec["packets"], rec["bytes"],
                     wall_ns(rec["first"]), wall_ns(rec["last"]), rec.get("role") or "",
                     tuple(rec.get("marks") or ()))


FAMILY = Family(name="flow", model=FlowEvent, record=flow_record, line=flow_line,
                parse=parse_flow, ev_kind=EvKind.FLOW, wire=FLOW, decode=decode_flow,
                map_structs=(FLOW_KEY, FLOW_VAL, FLOW_PENDING),
                c_enums=(("FLOW", FlowReport),))
