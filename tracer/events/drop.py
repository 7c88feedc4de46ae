"""drop: a packet the kernel dropped (bpf/drops.c, the kfree_skb raw tracepoint).

Identical drops are aggregated in the kernel (drop_key -> drop_val, LRU table
`drop_seen`): a record carries `count`, and the remainder is read from the table at
exit (decode_unreported_drop).  In a storm of new flows at one drop point the kernel
folds drops by destination instead (drop_agg_key -> drop_agg_val, with a per-CPU
drop_pending slot in front): such a record carries `aggregated` (Aggregation), and
the remainder is read at exit (decode_unreported_agg)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
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
from tracer.events.storm import (
    SKETCH_REGS,
    Aggregation,
    aggregation,
    aggregation_record,
    parse_aggregation,
)
from tracer.events.wire import HDR, TUPLE, EvKind, Field, WireStruct
from tracer.util.timefmt import rfc3339_ns

# --- wire layout: struct ev_drop, drop_key, drop_val, the storm maps ------------------

DROP = WireStruct("ev_drop", HDR.nested("hdr"), TUPLE.nested("tuple"),
                  Field("location", "Q"), Field("reason_raw", "I"), Field("ifindex", "I"),
                  Field("skb_len", "I"), Field("l3_proto", "H"), Field("_pad", "H"),
                  Field("ifname", "16s"), Field("count", "I"), Field("_pad2", "I"),
                  Field("agg", "B"), Field("src_multi", "B"), Field("_pad3", "H"),
                  Field("window_ms", "I"), Field("agg_packets", "Q"),
                  Field("src_regs", f"{SKETCH_REGS}s"), Field("flow_regs", f"{SKETCH_REGS}s"))
DROP_KEY = WireStruct("drop_key", Field("netns_ino", "I"), Field("ifindex", "I"),
                      Field("reason", "I"), TUPLE.nested("tuple"))
DROP_VAL = WireStruct("drop_val", Field("reported_ns", "Q"), Field("unreported", "Q"))
DROP_POINT_KEY = WireStruct("drop_point_key", Field("location", "Q"), Field("netns_ino", "I"),
                            Field("reason", "I"))
DROP_POINT_VAL = WireStruct("drop_point_val", Field("window_start_ns", "Q"),
                            Field("new_flows", "Q"), Field("agg_until_ns", "Q"))
DROP_AGG_KEY = WireStruct("drop_agg_key", Field("daddr", "16s"), Field("netns_ino", "I"),
                          Field("reason", "I"), Field("ifindex", "I"), Field("dport", "H"),
                          Field("family", "B"), Field("proto", "B"))
_SKETCHES = (Field("src_regs", f"{SKETCH_REGS}s"), Field("flow_regs", f"{SKETCH_REGS}s"))
DROP_AGG_VAL = WireStruct("drop_agg_val", Field("first_ns", "Q"), Field("last_ns", "Q"),
                          Field("reported_ns", "Q"), Field("packets", "Q"),
                          Field("unreported", "Q"), Field("location", "Q"),
                          Field("src_first", "16s"), Field("ifname", "16s"),
                          Field("src_multi", "I"), Field("_pad", "I"), *_SKETCHES)
DROP_PENDING = WireStruct("drop_pending", DROP_AGG_KEY.nested("key"), Field("location", "Q"),
                          Field("agg_until_ns", "Q"), Field("packets", "Q"),
                          Field("last_ns", "Q"), Field("flushed_ns", "Q"), Field("armed", "I"),
                          Field("src_multi", "I"), Field("src_first", "16s"), *_SKETCHES)


class DropAgg(IntEnum):
    """enum drop_agg: how a drop record was aggregated in the kernel."""

    NONE = 0
    DST = 1


# The fields a folded record keeps (the rest of the 5-tuple is summarised).
AGG_BY: dict[int, tuple[str, ...]] = {
    int(DropAgg.DST): ("dst", "dport", "proto", "reason", "ifindex")}


def _by(agg: int) -> tuple[str, ...]:
    return AGG_BY.get(agg, (f"agg_{agg}",))


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
    aggregated: Aggregation | None = None  # a storm's drops folded by destination

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
        aggregated=None if not v["agg"] else aggregation(
            _by(v["agg"]), v["src_multi"], v["src_regs"], v["flow_regs"], v["window_ms"],
            v["agg_packets"]),
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


_AGG_KEY, _AGG_VAL, _PENDING = DROP_AGG_KEY.struct, DROP_AGG_VAL.struct, DROP_PENDING.struct


def decode_unreported_agg(raw_key: bytes, raw_val: bytes | None, pending: list[bytes],
                          ts_ns: int, ctx: DecodeContext) -> DropEvent | None:
    """The remainder of a folded storm key at exit: its entry's unreported drops
    (`raw_val`, None when only a CPU's slot holds any) plus what each CPU still held
    for it (`pending`, raw struct drop_pending).  None when nothing is left."""
    k = Fields(DROP_AGG_KEY.index, _AGG_KEY.unpack_from(raw_key))
    count = 0
    src_multi = 0
    src = bytearray(SKETCH_REGS)
    flows = bytearray(SKETCH_REGS)
    first = b""
    location = 0
    ifname = ""
    total = 0
    since = ts_ns
    if raw_val is not None:
        v = Fields(DROP_AGG_VAL.index, _AGG_VAL.unpack_from(raw_val))
        count, total, src_multi = v["unreported"], v["packets"], v["src_multi"]
        first, location, ifname = v["src_first"], v["location"], cstr(v["ifname"])
        since, ts_ns = v["reported_ns"], max(ts_ns, v["last_ns"])
        src[:], flows[:] = v["src_regs"], v["flow_regs"]
    for raw in pending:
        p = Fields(DROP_PENDING.index, _PENDING.unpack_from(raw))
        count += p["packets"]
        total += p["packets"]
        location = location or p["location"]
        if not first:
            first = p["src_first"]
        elif p["src_multi"] or p["src_first"] != first:
            src_multi = 1
        src_multi |= p["src_multi"]
        src[:] = bytes(map(max, src, p["src_regs"]))
        flows[:] = bytes(map(max, flows, p["flow_regs"]))
    if not count:
        return None
    family, proto, dport = k["family"], k["proto"], k["dport"]
    reason_raw = k["reason"]
    return DropEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=k["netns_ino"],
        ifindex=k["ifindex"], ifname=ifname or ctx.ifname_of(k["ifindex"]),
        reason=ctx.drop_reasons.get(reason_raw, f"reason_{reason_raw}"),
        reason_raw=reason_raw, location=ctx.resolve_location(location) if location else "",
        location_raw=location, family=family, proto=proto,
        src=Endpoint(addr(family, first or bytes(16)), 0 if proto in (6, 17) else None),
        dst=Endpoint(addr(family, k["daddr"]), dport if proto in (6, 17) else None),
        tcp_flags=0, icmp_type=None, icmp_code=None, length=0, l3_proto=0, count=count,
        aggregated=aggregation(_by(int(DropAgg.DST)), src_multi, bytes(src), bytes(flows),
                               max(0, (ts_ns - since) // 1_000_000), total))


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
    if ev.aggregated is not None:
        rec["aggregated"] = aggregation_record(ev.aggregated)
    return rec


def _agg_text(a: Aggregation | None) -> str:
    if a is None:
        return ""
    approx = "" if a.exact_sources else "~"
    return f"  [folded by {','.join(a.by)}: {approx}{a.sources} sources, ~{a.flows} flows]"


def drop_line(ev: DropEvent, labels: Labels = NO_LABELS) -> tuple[str, str]:
    proto = proto_name(ev.proto) if ev.family else f"l3:{ev.l3_proto:#06x}"
    return (ev.ifname or "-",
            f"{proto} {ep(ev.src, labels.get('src', ''))} → {ep(ev.dst, labels.get('dst', ''))}"
            f"  {ev.reason} at {ev.location}"
            + (f"  ({ev.count} drops)" if ev.count > 1 else "") + _agg_text(ev.aggregated)
            + marks_text(ev.marks)
            + forwarding_text(ev.forwarding))


def parse_drop(rec: dict[str, Any], t: int) -> DropEvent:
    it, ic = parse_type_code(rec.get("icmp"))
    return DropEvent(0, t, rec["netns"], rec.get("ifindex") or 0, rec.get("ifname") or "",
                     rec["reason"], rec.get("reason_raw", 0), rec.get("location", ""), 0,
                     parse_family(rec.get("family")), parse_proto(rec.get("proto")),
                     parse_endpoint(rec.get("src")), parse_endpoint(rec.get("dst")),
                     parse_flags(rec.get("tcp_flags")), it, ic, rec.get("len", 0), 0,
                     rec.get("count", 1), tuple(rec.get("marks") or ()),
                     parse_forwarding(rec.get("forwarding")),
                     parse_aggregation(rec.get("aggregated")))


FAMILY = Family(name="drop", model=DropEvent, record=drop_record, line=drop_line,
                parse=parse_drop, ev_kind=EvKind.DROP, wire=DROP, decode=decode_drop,
                map_structs=(DROP_KEY, DROP_VAL, DROP_POINT_KEY, DROP_POINT_VAL, DROP_AGG_KEY,
                             DROP_AGG_VAL, DROP_PENDING),
                c_enums=(("DROP_AGG", DropAgg),))
