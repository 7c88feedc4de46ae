"""route: a routing lookup that failed, for a packet the node received (bpf/route.c,
the fib_table_lookup raw tracepoint and fib6:fib6_table_lookup).  Aggregated in the
kernel like drops (route_key): a record carries `count`."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

from tracer.events.common import (
    NO_LABELS,
    Endpoint,
    Forwarding,
    Labels,
    endpoint,
    ep,
    errno_name,
    family_text,
    forwarding_record,
    forwarding_text,
    parse_endpoint,
    parse_family,
    parse_forwarding,
    parse_proto,
    proto_name,
)
from tracer.events.decoding import DecodeContext, Fields, addr, tuple_endpoints
from tracer.events.family import Family
from tracer.events.wire import HDR, TUPLE, EvKind, Field, WireStruct
from tracer.util.timefmt import rfc3339_ns

# --- wire layout: struct ev_route, route_key -----------------------------------------

ROUTE = WireStruct("ev_route", HDR.nested("hdr"), TUPLE.nested("tuple"),
                   Field("gateway", "16s"), Field("tb_id", "I"), Field("err", "i"),
                   Field("oif", "I"), Field("iif", "I"), Field("count", "I"),
                   Field("_pad", "I"))
ROUTE_KEY = WireStruct("route_key", Field("netns_ino", "I"), Field("tb_id", "I"),
                       Field("err", "i"), Field("iif", "I"), Field("saddr", "16s"),
                       Field("daddr", "16s"), Field("family", "B"), Field("_pad", "3s"))


# --- model -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RouteEvent:
    ts_ns: int
    wall_ns: int
    netns: int
    family: int
    proto: int
    src: Endpoint
    dst: Endpoint
    gateway: str | None
    table: int
    error: str            # "ENETUNREACH": what the lookup's caller gets
    error_raw: int        # the tracepoint's err (-11 EAGAIN: a miss in the main table)
    oif: int
    iif: int              # > 1: a received packet (forwarded traffic)
    count: int = 1
    forwarding: Forwarding | None = None

    kind = "route"


# --- decode --------------------------------------------------------------------------

def route_error(err: int, table: int) -> str:
    """What the lookup's caller is told.  A miss (-EAGAIN) is only reported from the
    main table, where fib_lookup turns it into -ENETUNREACH."""
    if err == -errno.EAGAIN and table == 254:
        return "ENETUNREACH"
    return errno_name(-err) if err < 0 else errno_name(err)


def decode_route(v: Fields, ctx: DecodeContext) -> RouteEvent:
    src, dst, _, _ = tuple_endpoints(v, "tuple.")
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


# --- JSON record, table line, parse --------------------------------------------------

def route_record(ev: RouteEvent) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "kind": "route", "time": rfc3339_ns(ev.wall_ns), "netns": ev.netns,
        "family": family_text(ev.family), "proto": proto_name(ev.proto) if ev.proto else None,
        "src": endpoint(ev.src), "dst": endpoint(ev.dst), "error": ev.error,
        "error_raw": ev.error_raw, "table": ev.table, "oif": ev.oif, "iif": ev.iif,
        "gateway": ev.gateway, "count": ev.count,
    }
    if ev.forwarding is not None:
        rec["forwarding"] = forwarding_record(ev.forwarding)
    return rec


def route_line(ev: RouteEvent, labels: Labels = NO_LABELS) -> tuple[str, str]:
    via = f" via {ev.gateway}" if ev.gateway else ""
    return (f"table {ev.table}",
            f"no route {ep(ev.src, labels.get('src', ''))} → "
            f"{ep(ev.dst, labels.get('dst', ''))}{via}  {ev.error}"
            + (f"  ({ev.count} lookups)" if ev.count > 1 else "")
            + forwarding_text(ev.forwarding))


def parse_route(rec: dict[str, Any], t: int) -> RouteEvent:
    return RouteEvent(0, t, rec["netns"], parse_family(rec.get("family")),
                      parse_proto(rec.get("proto")), parse_endpoint(rec.get("src")),
                      parse_endpoint(rec.get("dst")), rec.get("gateway"), rec["table"],
                      rec["error"], rec.get("error_raw", 0), rec.get("oif", 0),
                      rec.get("iif", 0), rec.get("count", 1),
                      parse_forwarding(rec.get("forwarding")))


FAMILY = Family(name="route", model=RouteEvent, record=route_record, line=route_line,
                parse=parse_route, ev_kind=EvKind.ROUTE, wire=ROUTE, decode=decode_route,
                map_structs=(ROUTE_KEY,))
