"""The Python mirror of bpf/include/events.h, gathered from where each part is
declared: the shared header, tuple and enums in tracer/events/wire.py, each
family's struct in its module (tracer/events/drop.py, flow.py, ...).

tests/unit/test_schema_layout.py compiles events.h and checks every offset, size and
enum value listed in tracer/events/registry.py (docs/events.md documents both sides).
"""

from __future__ import annotations

from tracer.events.drop import DROP, DROP_KEY, DROP_VAL
from tracer.events.flow import FLOW, FLOW_KEY, FLOW_PENDING, FLOW_VAL, FlowReport
from tracer.events.icmp import ICMP, ICMP6_KEY, IcmpVia
from tracer.events.lost import LOSS_SLOTS, LossSlot
from tracer.events.nat import NAT
from tracer.events.neigh import NEIGH, NeighEv
from tracer.events.registry import BY_EV_KIND, FAMILIES
from tracer.events.route import ROUTE, ROUTE_KEY
from tracer.events.sock import SOCK, SOCK_CALL, SockOp
from tracer.events.tcp import TCP, TCP_HANDSHAKE, TcpEv
from tracer.events.wire import HDR, TUPLE, EvKind, Field, FlowDirection, WireStruct

# Every kernel record by kind; the decoder dispatches on hdr.kind.
RECORDS: dict[EvKind, WireStruct] = {kind: f.wire for kind, f in sorted(BY_EV_KIND.items())
                                     if f.wire is not None}
# Map entries user space reads directly (checked against events.h like the records).
MAP_STRUCTS: tuple[WireStruct, ...] = tuple(m for f in FAMILIES for m in f.map_structs)

__all__ = ["DROP", "DROP_KEY", "DROP_VAL", "FLOW", "FLOW_KEY", "FLOW_PENDING", "FLOW_VAL",
           "HDR", "ICMP", "ICMP6_KEY", "LOSS_SLOTS", "MAP_STRUCTS", "NAT", "NEIGH",
           "RECORDS", "ROUTE", "ROUTE_KEY", "SOCK", "SOCK_CALL", "TCP", "TCP_HANDSHAKE",
           "TUPLE", "EvKind", "Field", "FlowDirection", "FlowReport", "IcmpVia", "LossSlot",
           "NeighEv", "SockOp", "TcpEv", "WireStruct"]
