"""icmp: an ICMP error the node sent (IPv4, bpf/icmp.c on icmp:icmp_send) or an
ICMPv6 error that crossed one of its interfaces (bpf/tc.c).  The tc programs
aggregate ICMPv6 errors (icmp6_key -> drop_val); the remainder is read at exit
(decode_unreported_icmp6).  Names of types and codes: tracer/events/icmp_names.py."""

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
    family_text,
    parse_endpoint,
    parse_family,
    parse_proto,
    proto_name,
)
from tracer.events.decoding import DecodeContext, Fields, cstr, tuple_endpoints
from tracer.events.family import Family
from tracer.events.icmp_names import icmp_meaning
from tracer.events.wire import DIRECTIONS, HDR, TUPLE, EvKind, Field, WireStruct
from tracer.util.timefmt import rfc3339_ns

# --- wire layout: struct ev_icmp, icmp6_key -------------------------------------------

class IcmpVia(IntEnum):
    """enum icmp_via: 0 is icmp_send, as every record before the tc source."""

    ICMP_SEND = 0
    TC = 1


ICMP = WireStruct("ev_icmp", HDR.nested("hdr"), TUPLE.nested("inner"), Field("type", "B"),
                  Field("code", "B"), Field("via", "B"), Field("direction", "B"),
                  Field("ifindex", "I"), Field("ifname", "16s"), Field("skb_len", "I"),
                  Field("mtu", "I"), Field("count", "I"), Field("_pad", "I"))
ICMP6_KEY = WireStruct("icmp6_key", TUPLE.nested("inner"), Field("ifindex", "I"),
                       Field("direction", "B"), Field("type", "B"), Field("code", "B"),
                       Field("_pad", "B"))


# --- model -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IcmpEvent:
    """An ICMP error: one the node sent (IPv4, icmp_send) or an ICMPv6 error that
    crossed one of its interfaces (tc); src/dst/proto: the offending packet's."""

    ts_ns: int
    wall_ns: int
    netns: int
    icmp_type: int
    icmp_code: int
    meaning: str          # "port-unreachable"
    family: int
    proto: int
    src: Endpoint
    dst: Endpoint
    ifindex: int
    ifname: str
    length: int
    via: str = "icmp_send"         # "icmp_send" (IPv4) | "tc" (ICMPv6, seen on the wire)
    direction: str | None = None   # via tc: "ingress" | "egress"
    mtu: int | None = None         # packet-too-big: the MTU it announces
    count: int = 1                 # errors of this key this record stands for (tc)

    kind = "icmp"


# --- decode --------------------------------------------------------------------------

def decode_icmp(v: Fields, ctx: DecodeContext) -> IcmpEvent:
    src, dst, _, _ = tuple_endpoints(v, "inner.")
    ts_ns = v["hdr.ts_ns"]
    # icmp_send reports IPv4 errors, tc ICMPv6 ones: the error's own family, which
    # an unparsed offending packet (inner.family 0) would not tell
    tc = v["via"] == IcmpVia.TC
    icmp_type, code = v["type"], v["code"]
    ifindex = v["ifindex"]
    return IcmpEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        icmp_type=icmp_type, icmp_code=code,
        meaning=icmp_meaning(icmp_type, code, 6 if tc else 4),
        family=v["inner.family"], proto=v["inner.proto"], src=src, dst=dst,
        ifindex=ifindex, ifname=ctx.ifname_of(ifindex) if tc else cstr(v["ifname"]),
        length=v["skb_len"], via="tc" if tc else "icmp_send",
        direction=DIRECTIONS.get(v["direction"], str(v["direction"])) if tc else None,
        mtu=v["mtu"] if tc and icmp_type == 2 else None, count=v["count"] or 1)


_ICMP6_KEY = ICMP6_KEY.struct


def decode_unreported_icmp6(raw_key: bytes, count: int, ts_ns: int, netns: int,
                            ctx: DecodeContext) -> IcmpEvent:
    """The remainder of aggregated ICMPv6 errors, read from the tc programs' table at
    exit: the errors of this key counted since its last record."""
    v = Fields(ICMP6_KEY.index, _ICMP6_KEY.unpack_from(raw_key))
    src, dst, _, _ = tuple_endpoints(v, "inner.")
    icmp_type, code = v["type"], v["code"]
    return IcmpEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=netns,
        icmp_type=icmp_type, icmp_code=code, meaning=icmp_meaning(icmp_type, code, 6),
        family=v["inner.family"], proto=v["inner.proto"], src=src, dst=dst,
        ifindex=v["ifindex"], ifname=ctx.ifname_of(v["ifindex"]), length=0, via="tc",
        direction=DIRECTIONS.get(v["direction"], str(v["direction"])), count=count)


# --- JSON record, table line, parse --------------------------------------------------

def icmp_record(ev: IcmpEvent) -> dict[str, Any]:
    rec = {"kind": "icmp", "time": rfc3339_ns(ev.wall_ns), "netns": ev.netns,
           "icmp": {"type": ev.icmp_type, "code": ev.icmp_code}, "meaning": ev.meaning,
           "family": family_text(ev.family),
           "proto": proto_name(ev.proto) if ev.family else None,
           "src": endpoint(ev.src), "dst": endpoint(ev.dst),
           "ifname": ev.ifname or None, "ifindex": ev.ifindex, "len": ev.length,
           "via": ev.via, "count": ev.count}
    if ev.direction is not None:
        rec["direction"] = ev.direction
    if ev.mtu is not None:
        rec["mtu"] = ev.mtu
    return rec


def icmp_line(ev: IcmpEvent, labels: Labels = NO_LABELS) -> tuple[str, str]:
    what = ev.meaning + (f" (mtu {ev.mtu})" if ev.mtu is not None else "")
    # icmp_send: the node sent it; tc: an ICMPv6 error crossed the interface
    how = "sent" if ev.via == "icmp_send" else f"{ev.direction} icmpv6"
    text = (f"{how} {what} for {proto_name(ev.proto)} {ep(ev.src, labels.get('src', ''))}"
            f" → {ep(ev.dst, labels.get('dst', ''))}")
    return (ev.ifname or "-", text + (f"  ({ev.count} errors)" if ev.count > 1 else ""))


def parse_icmp(rec: dict[str, Any], t: int) -> IcmpEvent:
    icmp = rec.get("icmp") or {}
    return IcmpEvent(0, t, rec["netns"], icmp.get("type", 0), icmp.get("code", 0),
                     rec.get("meaning", ""), parse_family(rec.get("family")),
                     parse_proto(rec.get("proto")), parse_endpoint(rec.get("src")),
                     parse_endpoint(rec.get("dst")), rec.get("ifindex") or 0,
                     rec.get("ifname") or "", rec.get("len", 0), rec.get("via", "icmp_send"),
                     rec.get("direction"), rec.get("mtu"), rec.get("count", 1))


FAMILY = Family(name="icmp", model=IcmpEvent, record=icmp_record, line=icmp_line,
                parse=parse_icmp, ev_kind=EvKind.ICMP, wire=ICMP, decode=decode_icmp,
                map_structs=(ICMP6_KEY,), c_enums=(("ICMP_VIA", IcmpVia),))
