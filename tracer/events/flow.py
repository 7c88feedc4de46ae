"""flow: a connection as one tc hook saw it (bpf/tc.c, on pod veths and uplinks).

Packets are aggregated per (interface, direction, 5-tuple) in the kernel's `flows`
table (flow_key -> flow_val; a per-CPU flow_pending slot in front of it); a record
is a report on a flow (`report`), and at exit the table's remainders are read back
(decode_final_flow).  A hook that sees a storm of new flows folds them by destination
(flow_agg_key -> flow_agg_val, a per-CPU flow_agg_pending slot in front): such a
record carries `aggregated` (tracer/events/storm.py), its remainder at exit
decode_final_flow_agg."""

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
from tracer.events.decoding import DecodeContext, Fields, addr, tuple_endpoints
from tracer.events.family import Family
from tracer.events.storm import (
    SKETCH_REGS,
    Aggregation,
    aggregation,
    aggregation_record,
    merge_sketch,
    parse_aggregation,
)
from tracer.events.wire import DIRECTIONS, HDR, TUPLE, EvKind, Field, WireStruct
from tracer.util.timefmt import rfc3339_ns

# --- wire layout: struct ev_flow, flow_key, flow_val, flow_pending, the storm maps ----

class FlowReport(IntEnum):
    """enum flow_report: why a flow record was emitted."""

    NEW = 1
    TCP_CONTROL = 2
    UPDATE = 3
    FINAL = 4
    AGGREGATED = 5


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
                  Field("report", "B"), Field("tcp_flags_seen", "B"), Field("_pad", "B"),
                  Field("window_ms", "I"), Field("src_multi", "B"), Field("_pad2", "3s"),
                  Field("src_regs", f"{SKETCH_REGS}s"), Field("flow_regs", f"{SKETCH_REGS}s"))
FLOW_HOOK_KEY = WireStruct("flow_hook_key", Field("ifindex", "I"), Field("direction", "I"))
STORM_BUDGET = WireStruct("storm_budget", Field("window_start_ns", "Q"),
                          Field("new_flows", "Q"), Field("agg_until_ns", "Q"))
FLOW_AGG_KEY = WireStruct("flow_agg_key", Field("daddr", "16s"), Field("ifindex", "I"),
                          Field("dport", "H"), Field("family", "B"), Field("proto", "B"),
                          Field("direction", "B"), Field("_pad", "3s"))
_SKETCHES = (Field("src_regs", f"{SKETCH_REGS}s"), Field("flow_regs", f"{SKETCH_REGS}s"))
FLOW_AGG_VAL = WireStruct("flow_agg_val", Field("first_ns", "Q"), Field("last_ns", "Q"),
                          Field("reported_ns", "Q"), Field("packets", "Q"), Field("bytes", "Q"),
                          Field("reported_packets", "Q"), Field("src_first", "16s"),
                          Field("src_multi", "I"), Field("_pad", "I"), *_SKETCHES)
FLOW_AGG_PENDING = WireStruct("flow_agg_pending", FLOW_AGG_KEY.nested("key"),
                              Field("armed", "I"), Field("agg_until_ns", "Q"),
                              Field("packets", "Q"), Field("bytes", "Q"), Field("last_ns", "Q"),
                              Field("flushed_ns", "Q"), Field("src_multi", "I"),
                              Field("_pad", "I"), Field("src_first", "16s"), *_SKETCHES)
# the fields a folded flow record keeps (the source and its port are summarised)
AGG_BY = ("ifindex", "direction", "dst", "dport", "proto")


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
    aggregated: Aggregation | None = None  # a storm's new flows folded by destination

    kind = "flow"


# --- decode --------------------------------------------------------------------------

_REPORTS = {int(r): r.name.lower() for r in FlowReport}


_AGGREGATED = int(FlowReport.AGGREGATED)


def decode_flow(v: Fields, ctx: DecodeContext) -> FlowEvent:
    src, dst, icmp_type, icmp_code = tuple_endpoints(v, "tuple.")
    ts_ns = v["hdr.ts_ns"]
    ifindex = v["ifindex"]
    agg = None
    if v["report"] == _AGGREGATED:
        agg = aggregation(AGG_BY, v["src_multi"], v["src_regs"], v["flow_regs"],
                          v["window_ms"], v["packets"])
    return FlowEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        ifindex=ifindex, ifname=ctx.ifname_of(ifindex), role=ctx.role_of(ifindex),
        direction=DIRECTIONS.get(v["direction"], str(v["direction"])),
        report=_REPORTS.get(v["report"], str(v["report"])),
        family=v["tuple.family"], proto=v["tuple.proto"], src=src, dst=dst,
        tcp_flags=v["tuple.tcp_flags"], tcp_flags_seen=v["tcp_flags_seen"],
        icmp_type=icmp_type, icmp_code=icmp_code, packets=v["packets"], bytes=v["bytes"],
        first_wall_ns=v["first_ns"] + ctx.mono_to_wall_ns,
        last_wall_ns=v["last_ns"] + ctx.mono_to_wall_ns, aggregated=agg)


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


_AGG_KEY, _AGG_VAL, _AGG_PENDING = (FLOW_AGG_KEY.struct, FLOW_AGG_VAL.struct,
                                     FLOW_AGG_PENDING.struct)


def decode_final_flow_agg(raw_key: bytes, raw_val: bytes | None, pending: list[bytes],
                          netns: int, ctx: DecodeContext) -> FlowEvent | None:
    """A folded key's ending record at exit: its entry (`raw_val`, None when only a
    CPU's slot holds packets of it) with what each CPU still held (`pending`, raw
    struct flow_agg_pending) added.  None when nothing came since its last report."""
    k = Fields(FLOW_AGG_KEY.index, _AGG_KEY.unpack_from(raw_key))
    first_ns = last_ns = since = packets = nbytes = reported = src_multi = 0
    src, flows, first = bytes(SKETCH_REGS), bytes(SKETCH_REGS), b""
    if raw_val is not None:
        v = Fields(FLOW_AGG_VAL.index, _AGG_VAL.unpack_from(raw_val))
        first_ns, last_ns, since = v["first_ns"], v["last_ns"], v["reported_ns"]
        packets, nbytes, reported = v["packets"], v["bytes"], v["reported_packets"]
        src_multi, first, src, flows = (v["src_multi"], v["src_first"], v["src_regs"],
                                        v["flow_regs"])
    for raw in pending:
        p = Fields(FLOW_AGG_PENDING.index, _AGG_PENDING.unpack_from(raw))
        packets += p["packets"]
        nbytes += p["bytes"]
        last_ns = max(last_ns, p["last_ns"])
        first_ns = first_ns or p["flushed_ns"]
        if not first:
            first = p["src_first"]
        elif p["src_first"] != first:
            src_multi = 1
        src_multi |= p["src_multi"]
        src, flows = merge_sketch(src, p["src_regs"]), merge_sketch(flows, p["flow_regs"])
    if packets <= reported:
        return None
    family, proto, ifindex = k["family"], k["proto"], k["ifindex"]
    ports = proto in (6, 17)
    return FlowEvent(
        ts_ns=last_ns, wall_ns=last_ns + ctx.mono_to_wall_ns, netns=netns,
        ifindex=ifindex, ifname=ctx.ifname_of(ifindex), role=ctx.role_of(ifindex),
        direction=DIRECTIONS.get(k["direction"], str(k["direction"])),
        report=_REPORTS[int(FlowReport.FINAL)], family=family, proto=proto,
        src=Endpoint(addr(family, first or bytes(16)), 0 if ports else None),
        dst=Endpoint(addr(family, k["daddr"]), k["dport"] if ports else None),
        tcp_flags=0, tcp_flags_seen=0, icmp_type=None, icmp_code=None, packets=packets,
        bytes=nbytes, first_wall_ns=first_ns + ctx.mono_to_wall_ns,
        last_wall_ns=last_ns + ctx.mono_to_wall_ns,
        aggregated=aggregation(AGG_BY, src_multi, src, flows,
                               max(0, (last_ns - since) // 1_000_000), packets))


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
    if ev.aggregated is not None:
        rec["aggregated"] = aggregation_record(ev.aggregated)
    return rec


def flow_line(ev: FlowEvent, labels: Labels = NO_LABELS) -> tuple[str, str]:
    flags = "|".join(tcp_flag_names(ev.tcp_flags_seen)) if ev.proto == 6 else ""
    role = f" ({ev.role})" if ev.role else ""
    return (f"{ev.ifname or ev.ifindex} {ev.direction}{role}",
            f"{proto_name(ev.proto)} {ep(ev.src, labels.get('src', ''))} → "
            f"{ep(ev.dst, labels.get('dst', ''))}  {ev.packets} pkts "
            f"{ev.bytes} B {flags}".rstrip() + _agg_text(ev.aggregated) + marks_text(ev.marks))


def _agg_text(a: Aggregation | None) -> str:
    if a is None:
        return ""
    approx = "" if a.exact_sources else "~"
    return f"  [folded: {approx}{a.sources} sources, ~{a.flows} flows]"


def parse_flow(rec: dict[str, Any], t: int) -> FlowEvent:
    it, ic = parse_type_code(rec.get("icmp"))
    return FlowEvent(0, t, rec["netns"], rec.get("ifindex") or 0, rec.get("ifname") or "",
                     rec["direction"], rec["report"], parse_family(rec.get("family")),
                     parse_proto(rec.get("proto")), parse_endpoint(rec.get("src")),
                     parse_endpoint(rec.get("dst")), parse_flags(rec.get("packet_tcp_flags")),
                     parse_flags(rec.get("tcp_flags")), it, ic, rec["packets"], rec["bytes"],
                     wall_ns(rec["first"]), wall_ns(rec["last"]), rec.get("role") or "",
                     tuple(rec.get("marks") or ()), parse_aggregation(rec.get("aggregated")))


FAMILY = Family(name="flow", model=FlowEvent, record=flow_record, line=flow_line,
                parse=parse_flow, ev_kind=EvKind.FLOW, wire=FLOW, decode=decode_flow,
                map_structs=(FLOW_KEY, FLOW_VAL, FLOW_PENDING, FLOW_HOOK_KEY, STORM_BUDGET,
                             FLOW_AGG_KEY, FLOW_AGG_VAL, FLOW_AGG_PENDING),
                c_enums=(("FLOW", FlowReport),))
